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
    rows, cols, temporal = mapping.array_rows, mapping.array_cols, mapping.temporal
    if mapping.dataflow == "os":
        fold_cycles = temporal + rows + cols - 2
        timing: dict[OperandName, OperandTiming] = {
            "ifmap": OperandTiming(start_step=0, flip_steps=0, skew=True),
            "filter": OperandTiming(start_step=0, flip_steps=0, skew=True),
            "ofmap": OperandTiming(start_step=temporal - 1, flip_steps=rows, skew=True),
        }
    else:
        fold_cycles = temporal + 2 * rows + cols - 2
        stationary = OperandTiming(start_step=0, flip_steps=rows, skew=False)
        streamed = OperandTiming(start_step=rows, flip_steps=0, skew=True)
        timing = {
            "ifmap": streamed if mapping.dataflow == "ws" else stationary,
            "filter": stationary if mapping.dataflow == "ws" else streamed,
            "ofmap": OperandTiming(start_step=2 * rows - 1, flip_steps=0, skew=True),
        }
    if hardware.bandwidth_mode == "USER":
        words: dict[OperandName, int] = dict.fromkeys(("ifmap", "filter", "ofmap"), hardware.dram_words_per_cycle)
    else:
        words = {"ifmap": CALC_READ_WORDS_PER_CYCLE, "filter": CALC_READ_WORDS_PER_CYCLE, "ofmap": cols}
    ports: dict[OperandName, DramPort] = {
        "ifmap": DramPort(words["ifmap"], READ_LATENCY_CYCLES),
        "filter": DramPort(words["filter"], READ_LATENCY_CYCLES),
        "ofmap": DramPort(words["ofmap"], WRITE_LATENCY_CYCLES),
    }
    return NetworkSchedule(
        fold_cycles=fold_cycles, timing=timing, ports=ports, bandwidth_mode=hardware.bandwidth_mode
    )
