"""Reference network module: systolic fill/drain skew and the SRAM<->DRAM ports of SCALE-Sim v2.

``schedule(mapping, hardware)`` returns a :class:`NetworkSchedule`: how long a fold lasts, where each
operand's dense block sits in it (streamed operands are skewed one cycle per port; stationary ones
are preloaded in reverse order; outputs drain from the bottom edge, reversed), and the DRAM ports:
read latency 1, write latency 0; USER mode uses the configured words per cycle everywhere, CALC mode
starts the read estimate at 10 words per cycle and writes ``array_cols`` words per cycle.
"""

from __future__ import annotations

from .contract import DramPort, Hardware, LayerMapping, NetworkSchedule, OperandName, OperandTiming

READ_LATENCY_CYCLES = 1

WRITE_LATENCY_CYCLES = 0

CALC_READ_WORDS_PER_CYCLE = 10


def schedule(mapping: LayerMapping, hardware: Hardware) -> NetworkSchedule:
    """Fold timing and DRAM ports for one mapped layer."""
    ...
