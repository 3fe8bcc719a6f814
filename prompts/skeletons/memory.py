"""A literal memory module: SCALE-Sim v2's double-buffered SRAMs served one word at a time.

Slow by design: it walks every demand row and every address with plain Python containers, so its
reading of the memory model is easy to check line by line.  It implements the same contract as
:mod:`reference_sim.memory` and is kept as a cross-check of that fast implementation; the model's
constants are imported from there, so both read the same numbers.

The model, per demand row ``i`` served at cycle ``i + stalls so far``:

* read buffers (ifmap, filter) answer with hit latency 1.  In USER mode the buffer holds lines of
  the prefetch order; a missing address triggers prefetches (each ``ceil(prefetch words / bw)``
  DRAM cycles plus one) until the active window holds it, and the row waits for the last one.
  In CALC mode reads never wait; DRAM traffic is estimated from the distinct addresses seen.
* the write buffer (ofmap) drains half its size whenever it is more than half full, and the row
  waits when it fills up while a drain is still running.
* the row's stall is the largest of the three waits.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field

import numpy as np

from .contract import (
    NO_REQUEST,
    OPERANDS,
    Hardware,
    LayerMapping,
    MemoryResult,
    NetworkSchedule,
    OperandName,
    TraceSet,
    layer_demand,
    prefetch_order,
)

from .errors import SimulationError

ACTIVE_FRACTION = 0.5
ESTIMATE_SETS_PER_HALF = 50
HIT_LATENCY_CYCLES = 1
PARTS_PER_BUFFER = 100


def _sram_words(kib: int, word_bytes: int) -> int:
    """Words an SRAM of ``kib`` KiB holds (1 KiB = 1024 bytes)."""
    ...


@dataclass
class _DramLog:
    """DRAM transfers of one buffer: one row per transfer cycle, addresses padded with ``fill``."""
    cycles: list[float] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)

    def add(self, cycle: float, row: list[float]) -> None:
        ...

    def matrix(self, fill: float) -> np.ndarray:
        ...


class _UserReadBuffer:
    """USER-bandwidth read buffer: a window of lines over the prefetch order, refilled on misses."""

    def __init__(self, fetch_order: np.ndarray, total_words: int, words_per_cycle: int, latency: int):
        ...

    def _in_window(self, addr: float) -> bool:
        ...

    def _send(self, rows: np.ndarray, first_cycle: float) -> None:
        ...

    def _fill_active(self, cycle: float) -> None:
        ...

    def _prefetch(self) -> None:
        ...

    def serve(self, row: np.ndarray, cycle: float) -> float:
        ...

    def finish(self) -> None:
        ...

    def trace(self) -> np.ndarray:
        ...


class _EstimateReadBuffer:
    """CALC-mode read buffer: never stalls; counts DRAM words as distinct addresses per half-buffer epoch."""

    def __init__(self, total_words: int, latency: int, words_per_cycle: int):
        ...

    def serve(self, row: np.ndarray, cycle: float) -> float:
        ...

    def _emit(self, sets: list[list[float]], first_cycle: float, cycles: int, bw: int) -> None:
        ...

    def finish(self) -> None:
        ...

    def trace(self) -> np.ndarray:
        ...


class _WriteBuffer:
    """Ofmap write buffer: drains half its size to DRAM when more than half full."""

    def __init__(self, total_words: int, words_per_cycle: int, latency: int):
        ...

    def _close_line(self) -> None:
        ...

    def _drain(self, cycle: float) -> float:
        ...

    def serve(self, row: np.ndarray, cycle: float) -> float:
        ...

    def finish(self, cycle: float) -> None:
        ...

    def trace(self) -> np.ndarray:
        ...


def _read_buffer(
    name: OperandName, mapping: LayerMapping, network: NetworkSchedule, hardware: Hardware
) -> _UserReadBuffer | _EstimateReadBuffer:
    """The read buffer of ``name`` for the network's bandwidth mode (USER: prefetching; CALC: estimate)."""
    ...


def _start_stop(trace: np.ndarray) -> tuple[float, float]:
    """First and last cycle of a trace in which any port has a request."""
    ...


def simulate(
    mapping: LayerMapping, network: NetworkSchedule, hardware: Hardware, *, traces: bool = False
) -> MemoryResult:
    """Serve the layer's demand row by row and return cycles, stalls, DRAM traffic and traces."""
    ...
