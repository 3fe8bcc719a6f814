"""Toy mapping: cut the vector into passes of ``lanes`` elements."""

from __future__ import annotations

import math

import numpy as np

from .contract import NO_WORD, PassPlan, VectorJob, VectorUnit


def plan_passes(job: VectorJob, unit: VectorUnit) -> PassPlan:
    """One pass per ``lanes`` consecutive elements; the last pass may be partial."""
    passes = math.ceil(job.length / unit.lanes)
    element = np.arange(passes, dtype=np.int64)[:, None] * unit.lanes + np.arange(unit.lanes, dtype=np.int64)
    addresses = np.where(element < job.length, job.x_offset + element, NO_WORD)
    used = np.minimum(unit.lanes, job.length - np.arange(passes, dtype=np.int64) * unit.lanes)
    return PassPlan(
        passes=passes,
        addresses=addresses,
        used=used,
        utilisation=job.length / (passes * unit.lanes),
    )
