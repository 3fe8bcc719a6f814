"""Toy network: issue time of every pass through the unit's input port."""

from __future__ import annotations

import numpy as np

from .contract import PassPlan, PassTiming, VectorUnit


def time_passes(plan: PassPlan, unit: VectorUnit) -> PassTiming:
    """Each pass issues ``issue_width`` elements per cycle; passes follow each other without gaps."""
    pass_cycles = -(-plan.used // unit.issue_width)
    issue_cycles = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(pass_cycles)[:-1]))
    return PassTiming(
        pass_cycles=pass_cycles.astype(np.int64),
        issue_cycles=issue_cycles.astype(np.int64),
        drain_cycles=unit.pipeline_depth,
        dram_words_per_cycle=unit.dram_words_per_cycle,
    )
