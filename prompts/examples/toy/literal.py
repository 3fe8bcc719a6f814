"""The toy's literal reference: the same machine walked cycle by cycle with plain Python.

Used only to verify the example modules (``tests/unit/test_icl_examples.py``); never shown to a model.
"""

from __future__ import annotations

import math

from .contract import NO_WORD, VectorJob, VectorUnit


def literal_run(job: VectorJob, unit: VectorUnit, *, record: bool = False) -> dict[str, object]:
    """Every figure of the toy pipeline, computed one cycle at a time."""
    passes = math.ceil(job.length / unit.lanes)
    addresses = []
    used = []
    for p in range(passes):
        row = []
        for lane in range(unit.lanes):
            element = p * unit.lanes + lane
            row.append(job.x_offset + element if element < job.length else NO_WORD)
        addresses.append(row)
        used.append(sum(1 for a in row if a != NO_WORD))
    pass_cycles = [math.ceil(u / unit.issue_width) for u in used]
    half = unit.buffer_words // 2
    blocks = math.ceil(job.length / half)
    sent_total = blocks * half

    starts: list[int] = []
    cycle = 0
    sent_before = 0
    busy_until = 0
    p = 0
    while p < passes:
        last_element = p * unit.lanes + used[p] - 1
        needed = (last_element // half + 1) * half
        if cycle >= busy_until and sent_before >= needed:
            starts.append(cycle)
            busy_until = cycle + pass_cycles[p]
            p += 1
        sent_before = min(sent_total, sent_before + unit.dram_words_per_cycle)
        cycle += 1
    ideal = sum(pass_cycles[:-1])
    return {
        "utilisation": job.length / (passes * unit.lanes),
        "pass_cycles": pass_cycles,
        "total_cycles": starts[-1] + pass_cycles[-1] + unit.pipeline_depth,
        "stall_cycles": starts[-1] - ideal,
        "dram_words": sent_total,
        "trace": [[s, *row] for s, row in zip(starts, addresses)] if record else None,
    }
