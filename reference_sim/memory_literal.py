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
from .memory import ACTIVE_FRACTION, ESTIMATE_SETS_PER_HALF, HIT_LATENCY_CYCLES, PARTS_PER_BUFFER


def _sram_words(kib: int, word_bytes: int) -> int:
    """Words an SRAM of ``kib`` KiB holds (1 KiB = 1024 bytes)."""
    return (kib * 1024) // word_bytes


@dataclass
class _DramLog:
    """DRAM transfers of one buffer: one row per transfer cycle, addresses padded with ``fill``."""

    cycles: list[float] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)

    def add(self, cycle: float, row: list[float]) -> None:
        self.cycles.append(cycle)
        self.rows.append(row)

    def matrix(self, fill: float) -> np.ndarray:
        width = max((len(r) for r in self.rows), default=0)
        out = np.full((len(self.rows), width + 1), fill, dtype=np.float64)
        for i, (cycle, row) in enumerate(zip(self.cycles, self.rows)):
            out[i, 0] = cycle
            out[i, 1 : 1 + len(row)] = row
        return out


class _UserReadBuffer:
    """USER-bandwidth read buffer: a window of lines over the prefetch order, refilled on misses."""

    def __init__(self, fetch_order: np.ndarray, total_words: int, words_per_cycle: int, latency: int):
        self.bw = words_per_cycle
        self.latency = latency
        self.active_words = math.ceil(total_words * ACTIVE_FRACTION)
        self.prefetch_words = total_words - self.active_words
        self.fetch_rows = math.ceil(fetch_order.size / self.bw)
        self.fetch = np.full((self.fetch_rows, self.bw), float(NO_REQUEST))
        self.fetch.reshape(-1)[: fetch_order.size] = fetch_order
        words_per_line = math.ceil(total_words / PARTS_PER_BUFFER)
        valid = [float(a) for a in self.fetch.reshape(-1) if a != NO_REQUEST]
        self.lines = [set(valid[i : i + words_per_line]) for i in range(0, len(valid), words_per_line)]
        if len(valid) % words_per_line == 0:
            self.lines.append(set())
        self.num_lines = len(self.lines)
        self.active_lines = min(math.ceil(self.active_words / words_per_line), self.num_lines)
        self.prefetch_lines = min(math.ceil(self.prefetch_words / words_per_line),
                                  self.num_lines - self.active_lines)
        self.window_start = 0
        self.started = False
        self.last_fetch_cycle = 0.0
        self.next_row = 0
        self.first_row_cut = 0
        self.accesses = 0
        self.log = _DramLog()

    def _in_window(self, addr: float) -> bool:
        return any(addr in self.lines[(self.window_start + k) % self.num_lines] for k in range(self.active_lines))

    def _send(self, rows: np.ndarray, first_cycle: float) -> None:
        for i, row in enumerate(rows):
            self.log.add(first_cycle + i + self.latency, [float(a) for a in row])
        self.last_fetch_cycle = first_cycle + rows.shape[0] - 1 + self.latency

    def _fill_active(self, cycle: float) -> None:
        rows = min(math.ceil(self.active_words / self.bw), self.fetch_rows)
        self.accesses += rows * self.bw
        request = self.fetch[:rows]
        overfetch = rows * self.bw > self.active_words
        if overfetch:
            self.first_row_cut = self.active_words % self.bw
            request[rows - 1, self.first_row_cut :] = NO_REQUEST
        self._send(request, cycle - rows - self.latency)
        self.next_row = (rows if overfetch else rows + 1) % self.fetch_rows
        self.started = True

    def _prefetch(self) -> None:
        self.window_start = (self.window_start + self.prefetch_lines) % self.num_lines
        rows = math.ceil(self.prefetch_words / self.bw)
        self.accesses += rows * self.bw
        start, end = self.next_row, self.next_row + rows
        if end > self.fetch_rows:
            request = np.concatenate(
                (self.fetch[start:], self.fetch[: min(end - self.fetch_rows, start)])
            )
        else:
            request = self.fetch[start:end]
        if request.shape[0] != rows:
            raise SimulationError(
                "a prefetch asks for more DRAM rows than the operand has; SCALE-Sim v2 fails here"
            )
        request[0, : self.first_row_cut] = NO_REQUEST
        overfetch = rows * self.bw > self.active_words
        if overfetch:
            request[rows - 1, self.active_words % self.bw :] = NO_REQUEST
        self._send(request, self.last_fetch_cycle + 1)
        self.next_row = (rows if overfetch else rows + 1) % self.fetch_rows

    def serve(self, row: np.ndarray, cycle: float) -> float:
        if not self.started:
            self._fill_active(cycle)
        offset = float(HIT_LATENCY_CYCLES)
        for addr in row:
            if addr == NO_REQUEST:
                continue
            while not self._in_window(float(addr)):
                self._prefetch()
                offset = max(offset, self.last_fetch_cycle - cycle)
        return cycle + offset

    def finish(self) -> None:
        return None

    def trace(self) -> np.ndarray:
        return self.log.matrix(fill=1.0)


class _EstimateReadBuffer:
    """CALC-mode read buffer: never stalls; counts DRAM words as distinct addresses per half-buffer epoch."""

    def __init__(self, total_words: int, latency: int, words_per_cycle: int):
        self.latency = latency
        self.start_bw = words_per_cycle
        self.set_words = total_words // PARTS_PER_BUFFER
        self.seen: set[float] = set()
        self.current: list[float] = []
        self.epoch_sets: list[list[float]] = []
        self.completed: list[tuple[float, list[list[float]]]] = []
        self.first_request: float | None = None
        self.log = _DramLog()
        self.accesses = 0

    def serve(self, row: np.ndarray, cycle: float) -> float:
        if self.first_request is None and (row > NO_REQUEST).any():
            self.first_request = cycle
        for addr in row:
            a = float(addr)
            if a == NO_REQUEST or a in self.seen:
                continue
            self.seen.add(a)
            self.current.append(a)
            if len(self.current) == self.set_words:
                self.epoch_sets.append(self.current)
                self.current = []
                if len(self.epoch_sets) == ESTIMATE_SETS_PER_HALF:
                    self.completed.append((cycle, self.epoch_sets))
                    self.epoch_sets = []
                    self.seen = set()
        return cycle + HIT_LATENCY_CYCLES

    def _emit(self, sets: list[list[float]], first_cycle: float, cycles: int, bw: int) -> None:
        words = [a for s in sets for a in list(set(s))]
        self.accesses += len(words)
        words += [float(NO_REQUEST)] * (cycles * bw - len(words))
        for i in range(cycles):
            self.log.add(first_cycle + i + self.latency, words[i * bw : (i + 1) * bw])

    def finish(self) -> None:
        tail = self.epoch_sets + ([self.current] if self.current else [])
        if not self.completed:
            cycles = math.ceil(len(tail) * self.set_words / self.start_bw)
            self._emit(tail, -1 - self.latency - cycles + 1, cycles, self.start_bw)
            return
        assert self.first_request is not None
        end = self.first_request - 1 - self.latency
        cycles = math.ceil(ESTIMATE_SETS_PER_HALF * self.set_words / self.start_bw)
        start = end - cycles + 1
        self._emit(self.completed[0][1], start, cycles, self.start_bw)
        start, end = end + 1, self.completed[0][0]
        for cycle, sets in [*self.completed[1:], (0.0, tail)]:
            cycles = int(end - start + 1)
            if cycles <= 0:
                raise SimulationError("two read-estimate epochs end in one cycle; SCALE-Sim v2 fails here")
            bw = math.ceil(len(sets) * self.set_words / cycles)
            self._emit(sets, start, cycles, bw)
            start, end = end + 1, cycle

    def trace(self) -> np.ndarray:
        return self.log.matrix(fill=1.0)


class _WriteBuffer:
    """Ofmap write buffer: drains half its size to DRAM when more than half full."""

    def __init__(self, total_words: int, words_per_cycle: int, latency: int):
        self.total = total_words
        self.active_words = math.ceil(total_words * ACTIVE_FRACTION)
        self.drain_words = total_words - self.active_words
        self.bw = words_per_cycle
        self.latency = latency
        self.free = total_words
        self.drain_end = 0.0
        self.lines: list[list[float]] = []
        self.line: list[float] = []
        self.next_drain_line = 0
        self.accesses = 0
        self.log = _DramLog()

    def _close_line(self) -> None:
        self.lines.append(self.line + [float(NO_REQUEST)] * (self.bw - len(self.line)))
        self.line = []

    def _drain(self, cycle: float) -> float:
        lines_per_drain = math.ceil(self.drain_words / self.bw)
        chunk = self.lines[self.next_drain_line : self.next_drain_line + lines_per_drain]
        words = len(chunk) * self.bw - chunk[-1].count(float(NO_REQUEST))
        self.accesses += words
        self.free += words
        for i, line in enumerate(chunk):
            self.log.add(cycle + i + self.latency, line)
        self.next_drain_line += len(chunk)
        return cycle + len(chunk) - 1 + self.latency

    def serve(self, row: np.ndarray, cycle: float) -> float:
        current = cycle
        for addr in row:
            if addr == NO_REQUEST:
                continue
            self.line.append(float(addr))
            self.free -= 1
            if len(self.line) == self.bw:
                self._close_line()
            if current < self.drain_end:
                if self.free <= 0:
                    current = self.drain_end
            elif self.free < self.active_words:
                if self.line:
                    self._close_line()
                self.drain_end = self._drain(current)
        return current

    def finish(self, cycle: float) -> None:
        if self.line:
            self._close_line()
        while self.next_drain_line < len(self.lines):
            self.drain_end = self._drain(cycle)
            cycle = self.drain_end + 1

    def trace(self) -> np.ndarray:
        return self.log.matrix(fill=float(NO_REQUEST))


def _read_buffer(
    name: OperandName, mapping: LayerMapping, network: NetworkSchedule, hardware: Hardware
) -> _UserReadBuffer | _EstimateReadBuffer:
    """The read buffer of ``name`` for the network's bandwidth mode (USER: prefetching; CALC: estimate)."""
    kib = hardware.ifmap_sram_kib if name == "ifmap" else hardware.filter_sram_kib
    words = _sram_words(kib, hardware.word_bytes)
    port = network.ports[name]
    if network.bandwidth_mode == "USER":
        return _UserReadBuffer(prefetch_order(mapping, name), words, port.words_per_cycle, port.latency_cycles)
    if words < PARTS_PER_BUFFER:
        raise SimulationError(f"the {name} SRAM holds {words} words, fewer than {PARTS_PER_BUFFER}: SCALE-Sim v2's "
                              "CALC read estimate has empty sets and fails here")
    return _EstimateReadBuffer(words, port.latency_cycles, port.words_per_cycle)


def _start_stop(trace: np.ndarray) -> tuple[float, float]:
    """First and last cycle of a trace in which any port has a request."""
    busy = np.flatnonzero((trace[:, 1:] != NO_REQUEST).any(axis=1))
    return float(trace[busy[0], 0]), float(trace[busy[-1], 0])


def simulate(
    mapping: LayerMapping, network: NetworkSchedule, hardware: Hardware, *, traces: bool = False
) -> MemoryResult:
    """Serve the layer's demand row by row and return cycles, stalls, DRAM traffic and traces."""
    demand = {name: layer_demand(mapping, network, name) for name in OPERANDS}
    ifmap_buf = _read_buffer("ifmap", mapping, network, hardware)
    filter_buf = _read_buffer("filter", mapping, network, hardware)
    ofmap_port = network.ports["ofmap"]
    ofmap_buf = _WriteBuffer(
        _sram_words(hardware.ofmap_sram_kib, hardware.word_bytes), ofmap_port.words_per_cycle,
        ofmap_port.latency_cycles,
    )
    n_rows = demand["ofmap"].shape[0]
    served = {name: np.zeros(n_rows) for name in demand}
    stalls = 0
    for i in range(n_rows):
        cycle = float(i + stalls)
        served["ifmap"][i] = ifmap_buf.serve(demand["ifmap"][i], cycle)
        served["filter"][i] = filter_buf.serve(demand["filter"][i], cycle)
        served["ofmap"][i] = ofmap_buf.serve(demand["ofmap"][i], cycle)
        stalls += int(max(served["ifmap"][i] - cycle - HIT_LATENCY_CYCLES,
                          served["filter"][i] - cycle - HIT_LATENCY_CYCLES,
                          served["ofmap"][i] - cycle))
    ifmap_buf.finish()
    filter_buf.finish()
    ofmap_buf.finish(served["ofmap"][-1])

    sram = {name: np.concatenate((served[name][:, None], demand[name].astype(np.float64)), axis=1)
            for name in demand}
    dram: dict[OperandName, np.ndarray] = {"ifmap": ifmap_buf.trace(), "filter": filter_buf.trace(),
                                           "ofmap": ofmap_buf.trace()}
    return MemoryResult(
        total_cycles=int(served["ofmap"][-1]),
        stall_cycles=stalls,
        sram_start_stop={name: _start_stop(sram[name]) for name in sram},
        dram_start_stop={name: (float(dram[name][0, 0]), float(dram[name][-1, 0])) for name in OPERANDS},
        dram_accesses={"ifmap": ifmap_buf.accesses, "filter": filter_buf.accesses,
                       "ofmap": ofmap_buf.accesses},
        traces=TraceSet(
            ifmap_sram=sram["ifmap"], filter_sram=sram["filter"], ofmap_sram=sram["ofmap"],
            ifmap_dram=dram["ifmap"], filter_dram=dram["filter"], ofmap_dram=dram["ofmap"],
        ) if traces else None,
    )
