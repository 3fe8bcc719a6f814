"""Toy contract: a 1-D vector unit that streams a vector ``x`` from DRAM, pass by pass.

A toy simulator is three modules, each exposing one function:

* ``mapping.py`` -- ``plan_passes(job, unit) -> PassPlan``: cuts the vector into passes of
  ``lanes`` elements and gives the word address each lane reads in each pass.
* ``network.py`` -- ``time_passes(plan, unit) -> PassTiming``: how many cycles each pass takes to
  issue and when it would start if nothing ever waited.
* ``memory.py``  -- ``run_passes(plan, timing, unit, *, record=False) -> RunOutcome``: feeds the
  passes from DRAM through a double-buffered input buffer and counts the cycles the unit waits.

Numpy and the standard library only; modules exchange the plain data below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NO_WORD = -1
"""Address value meaning 'this lane reads nothing in this pass'."""


@dataclass(frozen=True)
class VectorJob:
    """One vector operation over ``length`` elements; element ``i`` lives at word ``x_offset + i``."""

    name: str
    length: int
    x_offset: int


@dataclass(frozen=True)
class VectorUnit:
    """The toy machine."""

    lanes: int
    """Elements one pass handles."""
    issue_width: int
    """Elements the unit accepts per cycle."""
    pipeline_depth: int
    """Cycles from the end of the last pass's issue until its results are out."""
    buffer_words: int
    """Input buffer size in words; two halves of ``buffer_words // 2`` words each."""
    dram_words_per_cycle: int


@dataclass(frozen=True)
class PassPlan:
    """The mapping module's output."""

    passes: int
    addresses: np.ndarray
    """``passes x lanes`` int64 word addresses, ``NO_WORD`` where a lane is idle."""
    used: np.ndarray
    """int64, lanes in use in each pass."""
    utilisation: float
    """Fraction of lane slots doing work: ``length / (passes * lanes)``."""


@dataclass(frozen=True)
class PassTiming:
    """The network module's output."""

    pass_cycles: np.ndarray
    """int64, cycles each pass takes to issue: ``ceil(used / issue_width)``."""
    issue_cycles: np.ndarray
    """int64, the cycle each pass would start when nothing waits: passes start back to back from 0."""
    drain_cycles: int
    dram_words_per_cycle: int


@dataclass(frozen=True)
class RunOutcome:
    """The memory module's output."""

    total_cycles: int
    stall_cycles: int
    dram_words: int
    trace: np.ndarray | None = field(default=None, compare=False)
    """With ``record``: ``passes x (1 + lanes)`` int64, the real start cycle of each pass, then its addresses."""
