"""Toy memory: the vector arrives from DRAM in half-buffer blocks; a pass waits for its last block.

DRAM streams the vector in address order, ``dram_words_per_cycle`` words per cycle from cycle 0,
in blocks of ``half = buffer_words // 2`` words.  Every block is sent whole, the last one too (its
missing words are padding), so block ``b`` has fully arrived once ``(b + 1) * half`` words were sent:
from cycle ``ceil((b + 1) * half / bw)`` on.  A pass starts when the previous pass has finished
issuing and the block holding its last element has arrived.
"""

from __future__ import annotations

import numpy as np

from .contract import PassPlan, PassTiming, RunOutcome, VectorUnit


def _ready_cycles(plan: PassPlan, lanes: int, half: int, bw: int) -> np.ndarray:
    """First cycle at which every block a pass reads has fully arrived."""
    last_element = np.arange(plan.passes, dtype=np.int64) * lanes + plan.used - 1
    words_needed = (last_element // half + 1) * half
    ready: np.ndarray = -(-words_needed // bw)
    return ready


def run_passes(plan: PassPlan, timing: PassTiming, unit: VectorUnit, *, record: bool = False) -> RunOutcome:
    """Start each pass as early as its data and the previous pass allow; no per-cycle loop.

    ``start[p] = max(start[p-1] + pass_cycles[p-1], ready[p])``; with ``start = issue + stall`` that
    is a running maximum: ``stall[p] = max(stall[p-1], ready[p] - issue[p], 0)``.
    """
    half = unit.buffer_words // 2
    ready = _ready_cycles(plan, unit.lanes, half, timing.dram_words_per_cycle)
    stall = np.maximum.accumulate(np.maximum(ready - timing.issue_cycles, 0))
    start = timing.issue_cycles + stall
    length = int(plan.used.sum())
    blocks = -(-length // half)
    trace = None
    if record:
        trace = np.concatenate((start[:, None], plan.addresses), axis=1).astype(np.int64)
    return RunOutcome(
        total_cycles=int(start[-1] + timing.pass_cycles[-1] + timing.drain_cycles),
        stall_cycles=int(stall[-1]),
        dram_words=blocks * half,
        trace=trace,
    )
