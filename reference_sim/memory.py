"""Reference memory module: SCALE-Sim v2's double-buffered SRAMs, computed event by event.

The same model as :mod:`reference_sim.memory_literal` (read that file for the model in plain
steps), computed without walking cycles:

* stalls change only in rows where a read buffer prefetches (USER bandwidth) or the ofmap buffer
  fills up while draining, so :func:`_service` jumps from event to event, and the ofmap buffer's
  drains are found by arithmetic on cumulative request counts;
* USER-mode prefetches come from checking the demand against the window of buffer lines a chunk
  at a time; a miss moves the window straight to the first shift that holds the address, found
  from per-address line bookkeeping instead of a search over every line (:func:`_prefetch_events`);
* CALC-mode DRAM reads are distinct addresses per epoch of half a buffer.  Where no address repeats
  across operand entries, epochs follow from fold sizes alone (:func:`_epochs_from_blocks`); for an
  output-stationary ifmap, from runs of channels, one per (pixel, filter tap)
  (:func:`_epochs_from_channel_runs`); otherwise from a pass over every request
  (:func:`_epochs_from_elements`), which also records the epochs' addresses for traces.

Traces are built only when asked.  :class:`LayerDemand` serves one layer under many SRAM sizes (a
sweep), working each read buffer out once per size it takes.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .contract import (
    NO_REQUEST,
    OPERANDS,
    READ_OPERANDS,
    Hardware,
    Layer,
    LayerMapping,
    MemoryResult,
    NetworkSchedule,
    OperandMatrix,
    OperandName,
    TraceSet,
    WindowOperand,
    _axis_lengths,
    antidiagonal_order,
    dense_block,
    dense_block_indices,
    dense_block_shape,
    prefetch_chunks,
    prefetch_order,
)
from .errors import SimulationError

HIT_LATENCY_CYCLES = 1
ACTIVE_FRACTION = 0.5
ESTIMATE_SETS_PER_HALF = 50
PARTS_PER_BUFFER = 100
"""A buffer is cut into this many lines (USER prefetch window) or sets (CALC read estimate)."""
_CHUNK_ENTRIES = 1 << 19
"""Operand entries handled at once when a CALC pass walks a fold block: a bigger block goes in chunks of rows."""


@dataclass(frozen=True)
class _Buffer:
    """Sizes of one double-buffered SRAM, in words."""

    total_words: int

    @property
    def active_words(self) -> int:
        return math.ceil(self.total_words * ACTIVE_FRACTION)

    @property
    def other_words(self) -> int:
        """The prefetch half of a read buffer, the drain half of the write buffer."""
        return self.total_words - self.active_words


class _Stream:
    """One operand's demand stream: per fold, the requested addresses in (row, port) order."""

    def __init__(self, mapping: LayerMapping, network: NetworkSchedule, name: OperandName):
        self.mapping = mapping
        self.name = name
        self.matrix: OperandMatrix = mapping.operand(name)
        self.timing = network.timing[name]
        self.lanes = mapping.tilings[name].lanes
        self.fold_cycles = network.fold_cycles
        self.row_folds, self.col_folds = mapping.fold_order
        self.num_folds = int(self.row_folds.size)
        self._orders: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._cumulative: dict[tuple[int, int], np.ndarray] = {}
        self._shapes: np.ndarray | None = None
        self._busy: tuple[int, int] | None = None

    def block_ids(self) -> np.ndarray:
        """An id per fold naming the operand block it reads (folds with one id read the same entries)."""
        tiling = self.mapping.tilings[self.name]
        pick = {"row": self.row_folds, "col": self.col_folds, "none": np.zeros_like(self.row_folds)}
        ids: np.ndarray = pick[tiling.lane_fold] * (1 + int(max(self.row_folds.max(), self.col_folds.max())))
        ids += pick[tiling.step_fold]
        return ids

    def shape(self, fold: int) -> tuple[int, int]:
        return self.shape_of(int(self.row_folds[fold]), int(self.col_folds[fold]))

    def row_cumulative(self, steps: int, used: int) -> np.ndarray:
        """Entries in rows ``0..r`` of a ``steps x used`` fold block, for every ``r``."""
        key = (steps, used)
        if key not in self._cumulative:
            self._cumulative[key] = np.cumsum(self.row_profile(steps, used), dtype=np.int64)
        return self._cumulative[key]

    def shapes(self) -> np.ndarray:
        """``(steps, lanes used)`` of every fold, one row per fold."""
        if self._shapes is None:
            tiling = self.mapping.tilings[self.name]
            n_rows, n_cols = self.matrix.shape
            lane_len, step_len = (n_rows, n_cols) if tiling.lane_axis == "row" else (n_cols, n_rows)
            sizes = {"row": self.mapping.array_rows, "col": self.mapping.array_cols}
            index = {"row": self.row_folds, "col": self.col_folds}

            def extent(axis: str, length: int) -> np.ndarray:
                if axis == "none":
                    return np.full(self.num_folds, length, dtype=np.int64)
                start = index[axis] * sizes[axis]
                extents: np.ndarray = np.minimum(start + sizes[axis], length) - start
                return extents

            self._shapes = np.stack((extent(tiling.step_fold, step_len), extent(tiling.lane_fold, lane_len)), axis=1)
        shapes: np.ndarray = self._shapes
        return shapes

    def shape_of(self, row_fold: int, col_fold: int) -> tuple[int, int]:
        return dense_block_shape(self.mapping, self.name, row_fold, col_fold)

    def fold_sizes(self) -> np.ndarray:
        """Entries (requests plus invalid ones) in each fold's dense block."""
        shapes = self.shapes()
        sizes: np.ndarray = shapes[:, 0] * shapes[:, 1]
        return sizes

    def row_profile(self, steps: int, used: int, first_row: int = 0, end_row: int | None = None) -> np.ndarray:
        """Entries in each fold row ``first_row .. end_row - 1`` (default: every row) of a ``steps x used``
        fold block (every entry counted as a request).

        Not kept: a fold can last millions of rows; :meth:`row_cumulative` keeps the running sum.
        """
        t = self.timing
        small = self.fold_cycles + t.start_step + t.flip_steps + steps + used < 2**31
        end = self.fold_cycles if end_row is None else end_row
        r: np.ndarray = np.arange(first_row, end, dtype=np.int32 if small else np.int64) - t.start_step
        if t.flip_steps:
            r = t.flip_steps - 1 - r if not t.skew else r
        if t.skew:
            if t.flip_steps:
                lo = np.maximum(0, r - (t.flip_steps - 1))
                hi = np.minimum(used - 1, r - (t.flip_steps - steps))
            else:
                lo = np.maximum(0, r - steps + 1)
                hi = np.minimum(used - 1, r)
            counts: np.ndarray = np.maximum(0, hi - lo + 1)
        else:
            counts = np.where((r >= 0) & (r < steps), used, 0).astype(r.dtype)
        return counts

    def order(self, steps: int, used: int) -> tuple[np.ndarray, np.ndarray]:
        """Permutation of a ``steps x used`` block into stream order (by fold row, then port) and the fold
        row of each entry.

        Without skew the rows are the steps (reversed when flipped); with skew, step ``s`` of lane ``l``
        is in row ``s + l``, so stream order reads the block along anti-diagonals, lanes ascending.
        """
        key = (steps, used)
        if key not in self._orders:
            t = self.timing
            perm = antidiagonal_order(steps, used) if t.skew else np.arange(steps * used, dtype=np.int64)
            if t.skew and not t.flip_steps:
                diagonal = np.arange(steps + used - 1, dtype=np.int64)
                per_row = np.minimum(np.minimum(diagonal + 1, steps + used - 1 - diagonal), min(steps, used))
                self._orders[key] = (perm, np.repeat(diagonal + t.start_step, per_row))
                return self._orders[key]
            step, lane = np.divmod(perm, used)
            if t.flip_steps:
                step = steps - 1 - step
                perm = step * used + lane
            rows = t.start_step + (t.flip_steps - 1 - step if t.flip_steps else step) + (lane if t.skew else 0)
            self._orders[key] = (perm, rows)
        return self._orders[key]

    def fold_elements(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Requested addresses of one fold in stream order, and their rows within the fold."""
        block = dense_block(self.mapping, self.name, int(self.row_folds[fold]), int(self.col_folds[fold]))
        perm, rows = self.order(*block.shape)
        addr = block.reshape(-1)[perm]
        valid = addr != NO_REQUEST
        if valid.all():
            return addr, rows
        return addr[valid], rows[valid]

    def chunk_rows(self, fold: int) -> tuple[int, int, int]:
        """First fold row with an entry, one past the last, and the rows per chunk of ``fold``.

        A fold block of at most ``_CHUNK_ENTRIES`` entries is one chunk; a bigger one is cut into
        runs of whole fold rows of about ``_CHUNK_ENTRIES`` entries each.
        """
        steps, used = (int(v) for v in self.shapes()[fold])
        t = self.timing
        first = t.start_step + (t.flip_steps - steps if t.flip_steps else 0)
        end = first + steps + (used - 1 if t.skew else 0) if steps and used else first
        per_chunk = end - first if steps * used <= _CHUNK_ENTRIES else max(1, _CHUNK_ENTRIES // max(1, used))
        return first, end, max(1, per_chunk)

    def chunk_count(self, fold: int) -> int:
        first, end, per_chunk = self.chunk_rows(fold)
        return max(1, -(-(end - first) // per_chunk))

    def fold_chunk(self, fold: int, part: int) -> tuple[np.ndarray, np.ndarray]:
        """Requested addresses of fold rows ``part * per_chunk ..`` (see :meth:`chunk_rows`) in stream order,
        and their rows within the fold; the chunks of a fold, in order, are :meth:`fold_elements`."""
        if self.chunk_count(fold) == 1:
            return self.fold_elements(fold)
        first, end, per_chunk = self.chunk_rows(fold)
        lo = first + part * per_chunk
        addr, rows = self.grid(np.array([fold]), lo, min(end, lo + per_chunk))
        return addr, rows - fold * self.fold_cycles

    def grid(self, folds: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Requested addresses of fold rows ``lo .. hi - 1`` of each of ``folds`` (one block shape), in
        stream order, and their layer rows.

        The step of lane ``l`` in fold row ``r`` is ``c0 + sr*r + sl*l``; every term of the address is
        computed once per step and once per lane, and the steps' terms are laid over the rows x lanes
        grid as strided views, so no per-entry division is made.
        """
        steps, used = self.shape(int(folds[0]))
        t = self.timing
        sign = -1 if t.flip_steps else 1
        c0 = t.flip_steps - 1 + t.start_step if t.flip_steps else -t.start_step
        sr, sl = sign, -sign * int(t.skew)
        corners = [c0 + sr * r + sl * lane for r in (lo, hi - 1) for lane in (0, used - 1)]
        low = min(corners)
        step = np.arange(low, max(corners) + 1, dtype=np.int64)
        first_cell = c0 + sr * lo - low

        def over_grid(terms: np.ndarray) -> np.ndarray:
            per_fold = np.ascontiguousarray(np.broadcast_to(terms, (terms.shape[0], step.size)))
            item = per_fold.itemsize
            return np.ndarray((folds.size, hi - lo, used), per_fold.dtype, per_fold, first_cell * item,
                              (per_fold.strides[0] if per_fold.shape[0] > 1 else 0, sr * item, sl * item))

        def over_lanes(terms: np.ndarray) -> np.ndarray:
            placed: np.ndarray = terms[:, None, :]
            return placed

        tiling = self.mapping.tilings[self.name]
        sizes = {"row": self.mapping.array_rows, "col": self.mapping.array_cols}
        index = {"row": self.row_folds[folds], "col": self.col_folds[folds]}

        def start(axis: str) -> np.ndarray:
            begin: np.ndarray = np.zeros(1, dtype=np.int64) if axis == "none" else index[axis] * sizes[axis]
            return begin[:, None]

        lane_index = start(tiling.lane_fold) + np.arange(used, dtype=np.int64)[None, :]
        step_index = start(tiling.step_fold) + step[None, :]
        m = self.matrix
        if tiling.lane_axis == "row":
            cells = m.placed(m.row_terms(lane_index), m.col_terms(step_index), over_lanes, over_grid)
        else:
            cells = m.placed(m.row_terms(step_index), m.col_terms(lane_index), over_grid, over_lanes)
        in_block = over_grid(((step >= 0) & (step < steps))[None, :])
        addr = cells[np.broadcast_to(in_block, cells.shape)]
        per_row = self.row_profile(steps, used, lo, hi)
        layer_rows = folds[:, None] * self.fold_cycles + np.arange(lo, hi, dtype=np.int64)[None, :]
        rows = np.repeat(layer_rows.reshape(-1), np.tile(per_row, folds.size))
        valid = addr != NO_REQUEST
        if valid.all():
            return addr, rows
        return addr[valid], rows[valid]

    def fold_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(addresses, global rows)`` of every request of every fold in stream order, a run of consecutive
        folds with one block shape at a time, up to :data:`_BATCH_WORDS` entries (or one fold) each."""
        shapes = self.shapes()
        changes = np.flatnonzero((shapes[1:] != shapes[:-1]).any(axis=1)) + 1
        bounds = np.r_[0, changes, self.num_folds].tolist()
        for run_start, run_end in itertools.pairwise(bounds):
            steps, used = (int(v) for v in shapes[run_start])
            if steps * used > _CHUNK_ENTRIES:
                for fold in range(run_start, run_end):
                    for part in range(self.chunk_count(fold)):
                        addr, rows = self.fold_chunk(fold, part)
                        yield addr, rows + fold * self.fold_cycles
                continue
            first, end, _ = self.chunk_rows(run_start)
            per_batch = max(1, _BATCH_WORDS // max(1, steps * used))
            for lo in range(run_start, run_end, per_batch):
                yield self.grid(np.arange(lo, min(run_end, lo + per_batch), dtype=np.int64), first, end)

    def fold_rows(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(fold, global rows)`` of every request of every fold in stream order (every entry a request),
        a chunk of fold rows (see :meth:`chunk_rows`) at a time."""
        for f in range(self.num_folds):
            shape = self.shape(f)
            if self.chunk_count(f) == 1:
                yield f, self.order(*shape)[1] + f * self.fold_cycles
                continue
            first, end, per_chunk = self.chunk_rows(f)
            profile = self.row_profile(*shape)
            for lo in range(first, end, per_chunk):
                hi = min(end, lo + per_chunk)
                yield f, np.repeat(np.arange(lo, hi, dtype=np.int64) + f * self.fold_cycles, profile[lo:hi])

    def row_counts(self) -> np.ndarray:
        """Requests in every row of the layer."""
        if self.all_valid():
            shapes = self.shapes()
            width = int(shapes[:, 1].max()) + 1
            keys, inverse = _unique(shapes[:, 0] * width + shapes[:, 1])
            profiles = np.stack([self.row_profile(int(k) // width, int(k) % width) for k in keys])
            counts: np.ndarray = profiles[inverse].reshape(-1)
            return counts
        counts = np.zeros(self.num_folds * self.fold_cycles, dtype=np.int64)
        for _, rows in self.fold_batches():
            if rows.size:
                lo = int(rows.min())
                counts[lo : int(rows.max()) + 1] += np.bincount(rows - lo)
        return counts

    def busy_rows(self) -> tuple[int, int]:
        """First and last row with a request."""
        if self._busy is None:
            self._busy = self._find_busy_rows()
        return self._busy

    def _find_busy_rows(self) -> tuple[int, int]:
        if self.all_valid():
            last = self.num_folds - 1
            first_busy, end_busy = self.chunk_rows(0)[0], self.chunk_rows(last)[1]
            if end_busy > self.chunk_rows(last)[0]:
                return first_busy, end_busy - 1 + last * self.fold_cycles
        return self._edge_busy_row(last=False), self._edge_busy_row(last=True)

    def _edge_busy_row(self, last: bool) -> int:
        """The first (or last) row with a request, found chunk by chunk from that end."""
        folds = reversed(range(self.num_folds)) if last else range(self.num_folds)
        for f in folds:
            parts = range(self.chunk_count(f))
            for p in reversed(parts) if last else parts:
                rows = self.fold_chunk(f, p)[1]
                if rows.size:
                    return int(rows.max() if last else rows.min()) + f * self.fold_cycles
        raise SimulationError(f"{self.name}: the layer requests no {self.name} entry")

    def all_valid(self) -> bool:
        """True when every operand entry is a request (no window hangs over the ifmap edge)."""
        return self.matrix.kind != "window" or _window_all_valid(self.matrix)

    def all_distinct_and_valid(self) -> bool:
        """True when every operand entry is a request with its own address (no reuse across entries)."""
        m = self.matrix
        if m.kind == "affine":
            return (m.row_stride >= 1 and m.col_stride >= m.n_rows * m.row_stride) or (
                m.col_stride >= 1 and m.row_stride >= m.n_cols * m.col_stride
            )
        return _window_no_overlap(m) and self.all_valid()

    def distinct_addresses(self) -> int | None:
        """Distinct requested addresses of the whole layer, when cheap to know."""
        m = self.matrix
        if m.kind == "window":
            return _covered(m.ifmap_h, m.filter_h, m.stride_h, m.ofmap_h) * _covered(
                m.ifmap_w, m.filter_w, m.stride_w, m.ofmap_w) * m.channels
        if self.all_distinct_and_valid():
            return m.n_rows * m.n_cols
        return None


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values and where each value is among them: ``np.unique(values,
    return_inverse=True)`` without its first call's import of ``numpy.ma`` (15 ms of every run)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.ones(ordered.size, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    inverse = np.empty(values.size, dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return ordered[starts], inverse


def _window_no_overlap(m: WindowOperand) -> bool:
    return (m.stride_h >= m.filter_h or m.ofmap_h == 1) and (m.stride_w >= m.filter_w or m.ofmap_w == 1)


def _window_all_valid(m: WindowOperand) -> bool:
    return (m.ofmap_h - 1) * m.stride_h + m.filter_h <= m.ifmap_h and (
        (m.ofmap_w - 1) * m.stride_w + m.filter_w <= m.ifmap_w
    )


def _covered(size: int, window: int, stride: int, outputs: int) -> int:
    """How many of ``size`` positions some window covers."""
    y = np.arange(size)
    lo = np.maximum(0, -((window - 1 - y) // stride))
    hi = np.minimum(outputs - 1, y // stride)
    return int(np.count_nonzero(lo <= hi))


# --------------------------------------------------------------------------- USER read buffer


@dataclass
class _Prefetches:
    """Where a USER read buffer prefetches: rows (ascending) and the prefetch count after each."""

    rows: np.ndarray
    count_after: np.ndarray
    first_rows: int
    rows_per_prefetch: int
    latency: int
    fetch: np.ndarray
    bw: int
    buffer: _Buffer

    @property
    def total(self) -> int:
        return int(self.count_after[-1]) if self.count_after.size else 0

    def dram_time(self, count: int) -> int:
        """Cycle at which the ``count``-th prefetch's last word arrives (the initial fill ends at -1)."""
        return -1 + count * (self.rows_per_prefetch + self.latency)


_BATCH_WORDS = 1 << 18
"""Requests computed at a time by :meth:`_Stream.fold_batches`."""
_WINDOW_CHUNK_WORDS = 1 << 22
"""Fetch-order words converted at a time when a line window is built (bounds the temporaries)."""
_Indices = np.ndarray[tuple[int], np.dtype[np.signedinteger[Any]]]


@dataclass(frozen=True)
class _FetchIndices:
    """The fetch order without idle ports, each address as an index from the lowest one."""

    index: _Indices
    lowest: int
    span: int

    @classmethod
    def of(cls, fetch: np.ndarray) -> _FetchIndices:
        """From a whole fetch order, its span taken from its requested addresses."""
        ends = [(int(kept.min()), int(kept.max())) for part in _chunks(fetch)
                if (kept := part[part != NO_REQUEST]).size]
        lowest = min((low for low, _ in ends), default=0)
        highest = max((high for _, high in ends), default=0)
        return cls.of_chunks(_chunks(fetch), lowest, highest - lowest + 1, fetch.size)

    @classmethod
    def of_chunks(cls, chunks: Iterable[np.ndarray], lowest: int, span: int, entries: int) -> _FetchIndices:
        """From the fetch order in pieces (at most ``entries`` in all) whose requested addresses lie in
        ``lowest .. lowest + span - 1``; 32-bit indices where the span allows."""
        index: _Indices = np.empty(entries, dtype=_index_type(span))
        position = 0
        for part in chunks:
            kept = part[part != NO_REQUEST]
            index[position : position + kept.size] = kept - lowest
            position += kept.size
        index.resize(position, refcheck=False)
        return cls(index, lowest, span)


def _index_type(size: int) -> type[np.signedinteger[Any]]:
    """The narrowest of int32 and int64 that holds ``-1 .. size``."""
    return np.int32 if size < 2**31 - 1 else np.int64


def _chunks(array: np.ndarray) -> Iterator[np.ndarray]:
    for lo in range(0, array.size, _WINDOW_CHUNK_WORDS):
        yield array[lo : lo + _WINDOW_CHUNK_WORDS]


class _LineWindow:
    """The USER read buffer's window of lines over the fetch order, in unwrapped line numbers.

    Line ``u`` of the unwrapped sequence is buffer line ``u % num_lines`` of turn ``u // num_lines``;
    the window at ``start`` holds lines ``start .. start + active - 1``.  ``latest`` holds, per
    address, the highest unwrapped line holding it among the lines that have entered the window so
    far, so an address is in the window exactly when its ``latest`` is at least ``start``.  Lines
    skipped by a jump never enter; their addresses read as older lines, which is right because
    those are behind the new window.
    """

    def __init__(self, fetch: _FetchIndices, words_per_line: int, num_lines: int, active: int):
        self.words_per_line = words_per_line
        self.num_lines = num_lines
        self.active = active
        self.lowest = fetch.lowest
        self.fetch = fetch.index
        position_type = _index_type(self.fetch.size)
        self.first = np.full(fetch.span, self.fetch.size, dtype=position_type)
        self.last = np.full(fetch.span, -1, dtype=position_type)
        for lo in range(0, self.fetch.size, _WINDOW_CHUNK_WORDS):
            part = self.fetch[lo : lo + _WINDOW_CHUNK_WORDS]
            positions = np.arange(lo, lo + part.size, dtype=position_type)
            np.minimum.at(self.first, part, positions)
            np.maximum.at(self.last, part, positions)
        self.latest = np.full(fetch.span, -1, dtype=np.int32)
        self.enter(0, active)

    def relative(self, addr: np.ndarray) -> np.ndarray:
        """Demanded addresses as indices into the per-address arrays.

        Demand and fetch order read the same operand matrix, so every demanded address is in the
        fetch order's range; one that is not in the fetch order at all is refused by :meth:`next_line`.
        """
        rel: np.ndarray = addr - self.lowest
        return rel

    def held(self, rel: np.ndarray, start: int) -> np.ndarray:
        """Which of the addresses (indices from :meth:`relative`) the window at ``start`` holds."""
        inside: np.ndarray = self.latest[rel] >= start
        return inside

    def enter(self, first_line: int, end_line: int) -> None:
        """Let unwrapped lines ``first_line .. end_line - 1`` (at most one turn) into the window."""
        wpl, n = self.words_per_line, self.num_lines
        if end_line > np.iinfo(self.latest.dtype).max:
            self.latest = self.latest.astype(np.int64)
        line = first_line
        while line < end_line:
            turn, within = divmod(line, n)
            stop_within = min(n, within + end_line - line)
            lo, hi = within * wpl, min(stop_within * wpl, self.fetch.size)
            if lo < hi:
                lines = np.arange(lo, hi, dtype=self.latest.dtype) // wpl + turn * n
                np.maximum.at(self.latest, self.fetch[lo:hi], lines)
            line += stop_within - within

    def next_line(self, rel: int, from_line: int) -> int:
        """The first unwrapped line at or after ``from_line`` that holds the address at index ``rel``."""
        if self.last[rel] < 0:
            raise SimulationError("USER read buffer: no window holds a demanded address")
        wpl, n = self.words_per_line, self.num_lines
        turn, within = divmod(from_line, n)
        position = within * wpl
        last = int(self.last[rel])
        if position > last:
            return (turn + 1) * n + int(self.first[rel]) // wpl
        chunk = 4096
        while True:
            stop = min(last + 1, position + chunk)
            hit = np.flatnonzero(self.fetch[position:stop] == rel)
            if hit.size:
                return turn * n + (position + int(hit[0])) // wpl
            position, chunk = stop, chunk * 4


class _DistinctLineWindow(_LineWindow):
    """The window over a fetch order that holds every address once: each address has one line, so
    membership and the next line holding it are arithmetic on that line."""

    def __init__(self, fetch: _FetchIndices, words_per_line: int, num_lines: int, active: int):
        self.words_per_line = words_per_line
        self.num_lines = num_lines
        self.active = active
        self.lowest = fetch.lowest
        line_type = _index_type(fetch.index.size)
        self.line_of = np.full(fetch.span, -1, dtype=line_type)
        for lo in range(0, fetch.index.size, _WINDOW_CHUNK_WORDS):
            part = fetch.index[lo : lo + _WINDOW_CHUNK_WORDS]
            self.line_of[part] = np.arange(lo, lo + part.size, dtype=line_type) // words_per_line

    def lines(self, rel: np.ndarray) -> np.ndarray:
        """The one line holding each address."""
        held: np.ndarray = self.line_of[rel]
        return held

    def held(self, rel: np.ndarray, start: int) -> np.ndarray:
        first = start % self.num_lines
        ahead = self.lines(rel) - first
        inside: np.ndarray = ahead.view(f"u{ahead.itemsize}") < self.active
        if first + self.active > self.num_lines:
            inside |= ahead < self.active - self.num_lines
        return inside

    def enter(self, first_line: int, end_line: int) -> None:
        return None

    def next_line(self, rel: int, from_line: int) -> int:
        line = int(self.lines(np.array([rel]))[0])
        if line < 0:
            raise SimulationError("USER read buffer: no window holds a demanded address")
        return from_line + (line - from_line) % self.num_lines


class _PositionWindow(_DistinctLineWindow):
    """The window when every fold's demand is the fetch order itself: demand is given as fetch positions,
    and position ``p`` is in line ``p // words_per_line``; no addresses are needed."""

    def __init__(self, words_per_line: int, num_lines: int, active: int):
        self.words_per_line = words_per_line
        self.num_lines = num_lines
        self.active = active
        self.lowest = 0

    def lines(self, rel: np.ndarray) -> np.ndarray:
        held: np.ndarray = rel // self.words_per_line
        return held


def _demand_is_fetch_order(stream: _Stream) -> bool:
    """True when every fold requests the whole operand, each address once, in its fetch order.

    That holds for a single lane block read whole by every fold (all steps, all lanes), when the
    stream order and the fetch order are both row by row (no skew, no rollout) or both along
    anti-diagonals (skew and rollout; idle ports drop out of the fetch order's diagonals).
    """
    tiling = stream.mapping.tilings[stream.name]
    t = stream.timing
    lane_len, step_len = _axis_lengths(stream.mapping, stream.name)
    return (lane_len <= tiling.lanes and t.flip_steps == 0 and t.skew == tiling.prefetch_rollout
            and stream.all_distinct_and_valid()
            and bool((stream.shapes() == np.array([step_len, lane_len])).all()))


class _PrefetchInputs:
    """What a stream's USER prefetches take whatever the buffer size, kept for the stream's next buffer size
    where each holds at most ``_CACHED_BLOCK_WORDS`` entries: the fetch order as indices, and the demand's
    ``(addresses, rows)`` pieces."""

    def __init__(self, stream: _Stream):
        self.stream = stream
        self._indices: _FetchIndices | None = None
        self._demand: list[tuple[np.ndarray, np.ndarray]] | None = None

    def indices(self, fetch_words: int) -> _FetchIndices:
        """The fetch order (``fetch_words`` entries with idle ports) as indices."""
        if self._indices is not None:
            return self._indices
        stream = self.stream
        indices = _FetchIndices.of_chunks(prefetch_chunks(stream.mapping, stream.name),
                                          *_address_span(stream.matrix), fetch_words)
        if indices.index.size <= _CACHED_BLOCK_WORDS:
            self._indices = indices
        return indices

    def demand(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._demand is not None:
            yield from self._demand
            return
        kept: list[tuple[np.ndarray, np.ndarray]] | None = []
        words = 0
        for piece in self.stream.fold_batches():
            words += piece[0].size
            if words > _CACHED_BLOCK_WORDS:
                kept = None
            elif kept is not None:
                kept.append(piece)
            yield piece
        self._demand = kept


def _user_prefetches(stream: _Stream, bw: int, latency: int, buffer: _Buffer, *, keep_fetch: bool,
                     inputs: _PrefetchInputs | None = None) -> _Prefetches:
    """Where a USER read buffer prefetches; ``keep_fetch`` keeps the fetch order for the DRAM trace.
    ``inputs`` (traces off) keeps the fetch indices and the demand for the stream's other buffer sizes."""
    words_per_line = math.ceil(buffer.total_words / PARTS_PER_BUFFER)
    by_position = _demand_is_fetch_order(stream)
    lane_len, step_len = _axis_lengths(stream.mapping, stream.name)
    lanes = stream.mapping.tilings[stream.name].lanes
    fetch_words = math.ceil(lane_len / lanes) * lanes * step_len
    fetch = prefetch_order(stream.mapping, stream.name) if keep_fetch else None
    indices: _FetchIndices | None = None
    if not by_position:
        indices = (_FetchIndices.of(fetch) if fetch is not None else
                   (inputs or _PrefetchInputs(stream)).indices(fetch_words))
    valid_words = indices.index.size if indices is not None else lane_len * step_len
    num_lines = valid_words // words_per_line + 1
    active = min(math.ceil(buffer.active_words / words_per_line), num_lines)
    step = min(math.ceil(buffer.other_words / words_per_line), num_lines - active)
    fetch_rows = math.ceil(fetch_words / bw)
    result = _Prefetches(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                         min(math.ceil(buffer.active_words / bw), fetch_rows),
                         math.ceil(buffer.other_words / bw), latency,
                         fetch if keep_fetch and fetch is not None else np.zeros(0, dtype=np.int64), bw, buffer)
    del fetch
    if step == 0:
        return result
    if indices is None:
        window: _LineWindow = _PositionWindow(words_per_line, num_lines, active)
        demand: Iterable[tuple[np.ndarray, np.ndarray]] = _position_demand(stream)
    else:
        kind = _DistinctLineWindow if stream.all_distinct_and_valid() else _LineWindow
        window = kind(indices, words_per_line, num_lines, active)
        demand = inputs.demand() if inputs is not None else stream.fold_batches()
    del indices
    result.rows, result.count_after = _prefetch_events(window, step, demand)
    return result


def _position_demand(stream: _Stream) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(fetch positions, global rows)`` of every request when each fold's demand is the fetch order."""
    fold, position = -1, 0
    for f, rows in stream.fold_rows():
        if f != fold:
            fold, position = f, 0
        yield np.arange(position, position + rows.size, dtype=np.int64), rows
        position += rows.size


def _prefetch_events(window: _LineWindow, step: int,
                     demand: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows in which the window moves and the prefetch count after each, for demand given as
    ``(addresses, rows)`` pieces in order.

    The demand is checked against the window a chunk at a time; a miss moves the window straight
    to the first shift (a multiple of ``step`` lines) whose window holds the missing address.
    """
    active = window.active
    shifts = 0
    event_rows: list[int] = []
    event_counts: list[int] = []
    for addr, rows in demand:
        rel = window.relative(addr)
        pos = 0
        chunk = 1024
        while pos < rel.size:
            held = window.held(rel[pos : pos + chunk], shifts * step)
            miss = int(np.argmin(held))
            if held[miss]:
                pos += held.size
                chunk *= 2
                continue
            at = pos + miss
            start = shifts * step
            line = window.next_line(int(rel[at]), start + active)
            shifts = -((active - 1 - line) // step)
            window.enter(max(start + active, shifts * step), shifts * step + active)
            event_rows.append(int(rows[at]))
            event_counts.append(shifts)
            pos = at + 1
            chunk = max(256, 2 * miss)
    rows_all = np.array(event_rows, dtype=np.int64)
    counts_all = np.array(event_counts, dtype=np.int64)
    last = np.r_[rows_all[1:] != rows_all[:-1], True] if rows_all.size else np.zeros(0, dtype=bool)
    return rows_all[last], counts_all[last]


# --------------------------------------------------------------------------- CALC read estimate


@dataclass
class _Epochs:
    """Where a CALC read estimate closes its epochs of ``50 * set_words`` distinct addresses."""

    end_rows: list[int]
    last_distinct: int
    first_row: int
    set_words: int
    contents: list[list[float]] | None = None
    """With traces: the new addresses of each epoch in arrival order, the open epoch last."""


_FOLD_WINDOW = 64
"""Folds looked at first when an epoch runs past its fold; doubled until the epoch ends inside."""


def _epochs_from_blocks(stream: _Stream, epoch_words: int) -> tuple[list[int], int]:
    """Epochs of a stream whose fold blocks repeat entries of disjoint, all-distinct blocks."""
    sizes = stream.fold_sizes()
    ids = stream.block_ids()
    by_block = np.argsort(ids, kind="stable")
    last_same = _previous_in_group(by_block, ids[by_block])[0]
    shapes = stream.shapes()
    ends: list[int] = []
    fold, start = 0, 0
    while True:
        rest = int(sizes[fold]) - start
        if rest >= epoch_words:
            end_fold, end_index = fold, start + epoch_words - 1
        else:
            need = epoch_words - rest
            found = None
            width = _FOLD_WINDOW
            lo = fold + 1
            while lo < sizes.size:
                hi = min(sizes.size, lo + width)
                ls = last_same[lo:hi]
                gain = np.where(ls < fold, sizes[lo:hi], np.where(ls == fold, start, 0))
                total = np.cumsum(gain)
                if total.size and total[-1] >= need:
                    k = int(np.searchsorted(total, need))
                    before = int(total[k - 1]) if k else 0
                    found = (lo + k, need - before - 1)
                    break
                need -= int(total[-1]) if total.size else 0
                lo, width = hi, width * 2
            if found is None:
                return ends, epoch_words - need
            end_fold, end_index = found
        steps, used = shapes[end_fold]
        row = int(np.searchsorted(stream.row_cumulative(int(steps), int(used)), end_index, side="right"))
        ends.append(end_fold * stream.fold_cycles + row)
        fold, start = end_fold, end_index + 1
        if start == sizes[fold]:
            fold, start = fold + 1, 0
            if fold == sizes.size:
                return ends, 0


_CACHED_BLOCK_WORDS = 4_000_000
"""Requests (or channel runs) kept from one pass over an operand for the next: about 200 MB at most."""


def _previous_in_group(order: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For items sorted by ``order`` into ``groups`` (group, then stream order): each item's previous item of
    its group (-1 for the first), and the indices of every group's first and last item."""
    same = groups[1:] == groups[:-1]
    previous = np.full(order.size, -1, dtype=np.int64)
    if not same.any():
        return previous, order, order
    previous[order[1:]] = np.where(same, order[:-1], -1)
    ends = np.flatnonzero(~same)
    return previous, order[np.concatenate(([0], ends + 1))], order[np.concatenate((ends, [order.size - 1]))]




@dataclass(frozen=True)
class _BlockReuse:
    """One chunk of a fold block's requests and their reuse inside the chunk."""

    addr: np.ndarray
    rows: np.ndarray
    local_prev: np.ndarray
    """Index of the previous request of the same address in the chunk, -1 for its first (32 bits: a chunk
    has at most ``_CHUNK_ENTRIES`` requests)."""
    first: np.ndarray
    """Index of each address's first request in the chunk, and (``first_addr``) the address."""
    last: np.ndarray
    first_addr: np.ndarray
    last_addr: np.ndarray
    distinct: bool
    """No address repeats in the chunk: every request is its address's first and last."""

    @classmethod
    def of(cls, addr: np.ndarray, rows: np.ndarray,
           all_distinct: Callable[[np.ndarray], bool] | None = None) -> _BlockReuse:
        """In-chunk reuse by a stable sort of the addresses, skipped where ``all_distinct`` (by default
        :func:`_all_distinct`) finds no repeat."""
        if addr.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty, empty, empty, empty, empty, True)
        if (all_distinct or _all_distinct)(addr):
            return cls.without_repeats(addr, rows)
        order = np.argsort(addr, kind="stable")
        previous, first, last = _previous_in_group(order, addr[order])
        return cls(addr, rows, previous.astype(np.int32), first, last, addr[first], addr[last], False)

    @classmethod
    def without_repeats(cls, addr: np.ndarray, rows: np.ndarray) -> _BlockReuse:
        every = np.arange(addr.size, dtype=np.int64)
        return cls(addr, rows, np.full(addr.size, -1, dtype=np.int32), every, every, addr, addr, True)


def _all_distinct(addr: np.ndarray) -> bool:
    """True when no address repeats, found by counting where the addresses span at most four values per
    request (else False: the caller sorts)."""
    lowest = int(addr.min())
    if int(addr.max()) - lowest >= 4 * addr.size:
        return False
    return int(np.bincount(addr - lowest).max()) == 1


class _DistinctCheck:
    """Whether a chunk's addresses are all distinct, whatever their spread, through a scratch table over
    the operand's addresses: each requested address's cell is given the index of one of its requests
    (which one is left to numpy), so the addresses are distinct exactly when every request reads back
    its own index.  Cells are read only after being written, so the table is never cleared."""

    def __init__(self, lowest: int, span: int):
        self.lowest = lowest
        self.cells = np.empty(span, dtype=np.int32)

    def __call__(self, addr: np.ndarray) -> bool:
        rel = addr - self.lowest
        index = np.arange(addr.size, dtype=np.int32)
        self.cells[rel] = index
        return bool(np.array_equal(self.cells[rel], index))


_SEEN_BEFORE_CHUNK = -1
_NEW_BEFORE_CHUNK = -2
_FIRST_WINDOW = 4096
"""Requests looked at first when searching for an epoch's end in a chunk; doubled until the epoch ends inside."""
_SEEN_TABLE_ENTRIES = 1 << 24
"""Operands spanning at most this many addresses keep a table of where each was last requested (128 MiB)."""


def _address_span(m: OperandMatrix) -> tuple[int, int]:
    """Lowest address of an operand and how many addresses from there its entries can reach."""
    if m.kind == "window":
        return m.offset, m.ifmap_h * m.ifmap_w * m.channels
    return m.offset, (m.n_rows - 1) * m.row_stride + (m.n_cols - 1) * m.col_stride + 1


@dataclass
class _EpochScan:
    """Epochs of ``epoch_words`` new requests, closed run by run.  A request is new when the previous request
    of its address (``prev``, in the index space of the runs) is before the open epoch's start."""

    epoch_words: int
    record: bool
    epoch_start: int = 0
    count: int = 0
    """New requests of the open epoch so far."""
    end_rows: list[int] = field(default_factory=list)
    contents: list[list[float]] = field(default_factory=list)
    current: list[np.ndarray] = field(default_factory=list)
    """With ``record``: the open epoch's new addresses so far, run by run."""

    def run(self, prev: np.ndarray, rows: np.ndarray, first_row: int, addr: np.ndarray, offset: int,
            tail: bool) -> np.ndarray:
        """Close the epochs ending in one run of requests (request ``i`` has index ``offset + i`` and is in
        row ``first_row + rows[i]``); with ``tail``, returns the new addresses of the epoch left open in
        this run (else possibly none)."""
        pos, n = 0, prev.size
        while pos < n:
            need = self.epoch_words - self.count
            stop = min(n, pos + need + max(need // 8, _FIRST_WINDOW))
            while True:
                new = prev[pos:stop] < self.epoch_start
                found = int(np.count_nonzero(new))
                if found >= need or stop == n:
                    break
                stop = min(n, pos + 2 * (stop - pos))
            if found < need:
                self.count += found
                if not (tail or self.record):
                    return addr[:0]
                left: np.ndarray = addr[pos:stop][new]
                if self.record:
                    self.current.append(left)
                return left
            k = int(np.flatnonzero(new)[need - 1])
            if self.record:
                self.current.append(addr[pos : pos + k + 1][new[: k + 1]])
                self.contents.append(np.concatenate(self.current).astype(np.float64).tolist())
                self.current = []
            self.end_rows.append(int(rows[pos + k]) + first_row)
            self.epoch_start = offset + pos + k + 1
            self.count = 0
            pos += k + 1
        return np.zeros(0, dtype=np.int64)


def _epochs_from_elements(stream: _Stream, epoch_words: Sequence[int], record: bool) -> list[_Epochs]:
    """Epochs by a pass over every request, for each of ``epoch_words`` (the pass is shared): an address
    is new if not seen since the epoch began.

    Fold blocks are walked in chunks of rows (:meth:`_Stream.fold_chunk`).  What is carried from chunk
    to chunk is, for an operand spanning at most ``_SEEN_TABLE_ENTRIES`` addresses, a table of where
    each address was last requested; for a bigger one, per epoch size, the sorted set of addresses seen
    in the open epoch (fewer than its ``epoch_words``), so memory does not grow with the operand.  Folds
    that read the same operand block (later passes over the operand) reuse the chunks' addresses and
    in-chunk reuse, computed once.  When the folds read one sequence of blocks over and over
    (:func:`_pass_period`), every pass after the second is the second one shifted by a pass, so only the
    epoch ends are searched there.
    """
    lowest, span = _address_span(stream.matrix)
    index_type = _index_type(int(stream.fold_sizes().sum()))
    table = np.full(span, -1, dtype=index_type) if span <= _SEEN_TABLE_ENTRIES else None
    block_ids = stream.block_ids()
    repeats = _unique(block_ids)[0].size < block_ids.size
    scans = [_EpochScan(words, record) for words in epoch_words]
    open_epochs = [np.zeros(0, dtype=np.int64) for _ in scans]
    base = 0
    first_row = -1
    period = _pass_period(stream) if table is not None else None
    template: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    second_pass = 0
    check = _DistinctCheck(lowest, span) if table is not None else None
    for block, fold_row, fold in _reuse_chunks(stream, repeats, check, period):
        n = block.addr.size
        if first_row < 0:
            first_row = int(block.rows[0]) + fold_row
        if table is not None:
            if block.distinct:
                rel = block.addr - lowest
                prev = table[rel]
                table[rel] = np.arange(base, base + n, dtype=index_type)
            else:
                prev = block.local_prev.astype(index_type, copy=False) + base
                prev[block.first] = table[block.first_addr - lowest]
                table[block.last_addr - lowest] = base + block.last
            for scan in scans:
                scan.run(prev, block.rows, fold_row, block.addr, base, tail=False)
            if period is not None and fold >= period:
                second_pass = second_pass if template else base
                template.append((prev - second_pass, block.rows + (fold_row - period * stream.fold_cycles),
                                 block.addr))
            base += n
            continue
        local = np.where(block.local_prev >= 0, block.local_prev, _NEW_BEFORE_CHUNK)
        for i, scan in enumerate(scans):
            prev, open_epoch = local.copy(), open_epochs[i]
            if open_epoch.size:
                firsts = block.first_addr
                at = np.minimum(np.searchsorted(open_epoch, firsts), open_epoch.size - 1)
                prev[block.first[open_epoch[at] == firsts]] = _SEEN_BEFORE_CHUNK
            scan.epoch_start = _SEEN_BEFORE_CHUNK
            closed = len(scan.end_rows)
            tail = scan.run(prev, block.rows, fold_row, block.addr, 0, tail=True)
            kept = open_epoch if len(scan.end_rows) == closed else open_epoch[:0]
            open_epochs[i] = _unique(np.concatenate((kept, tail)))[0]
    if period is not None and template:
        prev, rows, addr = (np.concatenate(parts) for parts in zip(*template, strict=True))
        for scan in scans:
            later_base = base
            for later in range(2, stream.num_folds // period):
                scan.epoch_start -= later_base
                scan.run(prev, rows, later * period * stream.fold_cycles, addr, 0, tail=False)
                scan.epoch_start += later_base
                later_base += prev.size
    if record:
        for scan in scans:
            scan.contents.append(np.concatenate(scan.current).astype(np.float64).tolist() if scan.current else [])
    return [_Epochs(scan.end_rows, scan.count, first_row, 0, scan.contents if record else None) for scan in scans]


def _reuse_chunks(stream: _Stream, repeats: bool, check: _DistinctCheck | None,
                  period: int | None) -> Iterator[tuple[_BlockReuse, int, int]]:
    """The requests of every fold in stream order as non-empty chunks with their in-chunk reuse, each with
    the first row of its fold and the fold (up to the end of the second pass when ``period`` is given).

    With ``repeats`` (folds that read the same block), chunks are cached for the next pass over the
    operand, up to ``_CACHED_BLOCK_WORDS`` requests.  Otherwise, given ``check`` (the caller keeps a table
    over the operand's addresses) and folds of at most ``_BATCH_WORDS`` requests, consecutive folds come
    together (:meth:`_Stream.fold_batches`; rows global, fold ``-1``).  ``check`` finds the chunks without
    a repeated address.
    """
    if check is not None and not repeats and int(stream.fold_sizes().max()) <= _BATCH_WORDS:
        for addr, rows in stream.fold_batches():
            if addr.size:
                for block in _batch_reuse(addr, rows, check, stream.fold_cycles):
                    yield block, 0, -1
        return
    block_ids = stream.block_ids()
    cache: dict[tuple[int, int], _BlockReuse] = {}
    cached_words = 0
    for fold in range(stream.num_folds if period is None else 2 * period):
        for part in range(stream.chunk_count(fold)):
            key = (int(block_ids[fold]), part)
            reuse = cache.get(key)
            if reuse is None:
                reuse = _BlockReuse.of(*stream.fold_chunk(fold, part), check)
                if repeats and cached_words + reuse.addr.size <= _CACHED_BLOCK_WORDS:
                    cache[key] = reuse
                    cached_words += reuse.addr.size
            if reuse.addr.size:
                yield reuse, fold * stream.fold_cycles, fold


_SPLIT_FOLD_WORDS = 2048
"""Folds of a batch that repeats addresses are taken one by one when they average at least this many
requests: each may still be free of repeats, and the sort is saved."""


def _batch_reuse(addr: np.ndarray, rows: np.ndarray, check: _DistinctCheck,
                 fold_cycles: int) -> Iterator[_BlockReuse]:
    """A batch of folds (global ``rows``) in one block, or, when it repeats addresses and its folds are
    big enough, one block per fold: folds that each read an address once, as a window's channels do,
    repeat it only across folds, so no fold needs the sort."""
    fold = rows // fold_cycles
    cuts = np.flatnonzero(fold[1:] != fold[:-1]) + 1
    if cuts.size == 0 or addr.size < _SPLIT_FOLD_WORDS * (cuts.size + 1):
        yield _BlockReuse.of(addr, rows, check)
    elif check(addr):
        yield _BlockReuse.without_repeats(addr, rows)
    else:
        for piece_addr, piece_rows in zip(np.split(addr, cuts), np.split(rows, cuts), strict=True):
            yield _BlockReuse.of(piece_addr, piece_rows, check)


def _pass_period(stream: _Stream) -> int | None:
    """Folds per pass when the folds read one sequence of operand blocks at least three times over (the
    operand streamed again for every fold of the other axis) and a pass fits the block cache, else None."""
    block_ids = stream.block_ids()
    again = np.flatnonzero(block_ids[1:] == block_ids[0])
    if again.size == 0:
        return None
    period = int(again[0]) + 1
    if block_ids.size % period or block_ids.size // period < 3:
        return None
    if not np.array_equal(block_ids[period:], block_ids[:-period]):
        return None
    if int(stream.fold_sizes()[:period].sum()) > _CACHED_BLOCK_WORDS:
        return None
    return period


_NEVER = -(1 << 62)
_MIN_RUN_CHANNELS = 3
"""Below this many channels a run is too short to beat the word-by-word pass."""


@dataclass(frozen=True)
class _ChannelRuns:
    """One fold block of a window operand as runs: a (pixel, filter tap) pair covers all channels.

    Every run of one ifmap pixel ``(y, x)`` (a *family*) requests its channels ``0..C-1`` in
    consecutive rows on one port, so the run's first key and its family are enough to know, for
    every channel, where that address was requested before.
    """

    family: np.ndarray
    row0: np.ndarray
    lane: np.ndarray
    key0: np.ndarray
    local_prev: np.ndarray
    first: np.ndarray
    last: np.ndarray


def _channel_runs_apply(stream: _Stream) -> bool:
    """Run compression applies to a window operand streamed on skewed ports, pixels on lanes, window in time."""
    tiling = stream.mapping.tilings[stream.name]
    t = stream.timing
    return (stream.matrix.kind == "window" and stream.matrix.channels >= _MIN_RUN_CHANNELS
            and tiling.lane_axis == "row" and tiling.step_fold == "none" and t.skew and not t.flip_steps)


def _channel_runs(stream: _Stream, first_fold: int, end_fold: int) -> _ChannelRuns:
    """Runs of row folds ``first_fold..end_fold-1``; rows count from the first fold's first row."""
    m = stream.matrix
    assert m.kind == "window"
    lanes, taps = stream.lanes, m.filter_h * m.filter_w
    pixels = np.arange(first_fold * lanes, min(end_fold * lanes, m.ofmap_h * m.ofmap_w), dtype=np.int64)
    fold = pixels // lanes - first_fold
    lane = np.repeat(pixels % lanes, taps)
    fold = np.repeat(fold, taps)
    tap = np.tile(np.arange(taps, dtype=np.int64), pixels.size)
    pr, pc = np.divmod(np.repeat(pixels, taps), m.ofmap_w)
    kr, kc = np.divmod(tap, m.filter_w)
    y = pr * m.stride_h + kr
    x = pc * m.stride_w + kc
    valid = (y < m.ifmap_h) & (x < m.ifmap_w)
    lane, tap, fold, family = lane[valid], tap[valid], fold[valid], (y * m.ifmap_w + x)[valid]
    row0 = fold * stream.fold_cycles + stream.timing.start_step + lane + tap * m.channels
    key0 = row0 * lanes + lane
    if family.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _ChannelRuns(empty, empty, empty, empty, empty, empty, empty)
    by_key = np.argsort(key0)
    family, row0, lane, key0 = family[by_key], row0[by_key], lane[by_key], key0[by_key]
    order = np.argsort(family * (int(key0[-1]) + 1) + key0)
    return _ChannelRuns(family, row0, lane, key0, *_previous_in_group(order, family[order]))


_RUNS_PER_BATCH = 200_000
_RUN_WINDOW = 4096
"""Runs looked at first when searching for an epoch's end; doubled until the epoch ends inside."""


def _epochs_from_channel_runs(stream: _Stream, epoch_words: int) -> _Epochs:
    """Epochs of a window operand computed per (pixel, tap) run instead of per word, folds in batches."""
    m = stream.matrix
    assert m.kind == "window"
    lanes, channels, fold_cycles = stream.lanes, m.channels, stream.fold_cycles
    row_folds = stream.mapping.row_folds
    per_batch = max(1, _RUNS_PER_BATCH // (lanes * m.filter_h * m.filter_w))
    batches = [(f, min(f + per_batch, row_folds)) for f in range(0, row_folds, per_batch)]
    last_seen = np.full(m.ifmap_h * m.ifmap_w, _NEVER, dtype=np.int64)
    cache: dict[tuple[int, int], _ChannelRuns] = {}
    cached_runs = 0
    start = 0
    count = 0
    ends: list[int] = []
    first_row = -1
    for pass_index in range(stream.mapping.col_folds):
        for first_fold, end_fold in batches:
            runs = cache.get((first_fold, end_fold))
            if runs is None:
                runs = _channel_runs(stream, first_fold, end_fold)
                if stream.mapping.col_folds > 1 and cached_runs + runs.family.size <= _CACHED_BLOCK_WORDS:
                    cache[(first_fold, end_fold)] = runs
                    cached_runs += runs.family.size
            if runs.family.size == 0:
                continue
            base_row = (pass_index * row_folds + first_fold) * fold_cycles
            rows = runs.row0 + base_row
            if first_row < 0:
                first_row = int(rows.min())
            key0 = runs.key0 + base_row * lanes
            prev = np.where(runs.local_prev >= 0, key0[runs.local_prev], 0)
            prev[runs.first] = last_seen[runs.family[runs.first]]
            last_seen[runs.family[runs.last]] = key0[runs.last]
            end_rows = rows + (channels - 1)
            while True:
                pos = int(np.searchsorted(end_rows, start // lanes))
                need = epoch_words - count
                window = _RUN_WINDOW
                while True:
                    stop = min(rows.size, pos + window)
                    lo = np.maximum(0, -((key0[pos:stop] - start) // lanes))
                    hi = np.minimum(channels - 1, -((prev[pos:stop] - start) // lanes) - 1)
                    sub_rows = rows[pos:stop]
                    limit = int(rows[stop]) - 1 if stop < rows.size else int(end_rows[-1])
                    reach = int(np.maximum(0, np.minimum(hi, limit - sub_rows) - lo + 1).sum())
                    if reach >= need or stop == rows.size:
                        break
                    window *= 2
                if reach < need:
                    count += reach
                    break
                active = hi >= lo
                lo_a, hi_a, rows_a = lo[active], hi[active], sub_rows[active]

                def upto(row: int, lo: np.ndarray = lo_a, hi: np.ndarray = hi_a, rows: np.ndarray = rows_a) -> int:
                    return int(np.maximum(0, np.minimum(hi, row - rows) - lo + 1).sum())

                low, high = int((rows_a + lo_a).min()), limit
                while low < high:
                    mid = (low + high) // 2
                    if upto(mid) >= need:
                        high = mid
                    else:
                        low = mid + 1
                within = need - upto(low - 1)
                ch = low - rows_a
                hit = (ch >= lo_a) & (ch <= hi_a)
                lane = int(np.sort(runs.lane[pos:stop][active][hit])[within - 1])
                ends.append(low)
                start = low * lanes + lane + 1
                count = 0
    return _Epochs(ends, count, first_row, 0)


def estimate_set_words(name: str, total_words: int) -> int:
    """Words per set of SCALE-Sim's CALC read estimate; a buffer of fewer than 100 words has empty sets,
    on which SCALE-Sim v2 fails (and an epoch of no words would never end)."""
    if total_words < PARTS_PER_BUFFER:
        raise SimulationError(f"the {name} SRAM holds {total_words} words, fewer than {PARTS_PER_BUFFER}: SCALE-Sim "
                              "v2's CALC read estimate has empty sets and fails here")
    return total_words // PARTS_PER_BUFFER


def _estimate_epochs(stream: _Stream, buffer: _Buffer, record: bool) -> _Epochs:
    if record:
        set_words = estimate_set_words(stream.name, buffer.total_words)
        epochs = _epochs_from_elements(stream, [ESTIMATE_SETS_PER_HALF * set_words], record=True)[0]
        epochs.set_words = set_words
        return epochs
    return _estimate_epochs_of_sizes(stream, [buffer])[0]


def _estimate_epochs_of_sizes(stream: _Stream, buffers: Sequence[_Buffer]) -> list[_Epochs]:
    """The CALC read estimate (traces off) of one stream under each buffer; the buffers that need a pass
    over every request share it."""
    found: dict[int, _Epochs] = {}
    walk: list[tuple[int, int]] = []
    first_row = stream.busy_rows()[0]
    distinct = stream.distinct_addresses()
    for i, buffer in enumerate(buffers):
        set_words = estimate_set_words(stream.name, buffer.total_words)
        epoch_words = ESTIMATE_SETS_PER_HALF * set_words
        if distinct is not None and distinct < epoch_words:
            found[i] = _Epochs([], distinct, first_row, set_words)
        elif stream.all_distinct_and_valid():
            ends, last = _epochs_from_blocks(stream, epoch_words)
            found[i] = _Epochs(ends, last, first_row, set_words)
        elif _channel_runs_apply(stream):
            found[i] = _epochs_from_channel_runs(stream, epoch_words)
            found[i].set_words = set_words
        else:
            walk.append((i, set_words))
    if walk:
        words = [ESTIMATE_SETS_PER_HALF * set_words for _, set_words in walk]
        for (i, set_words), epochs in zip(walk, _epochs_from_elements(stream, words, record=False), strict=True):
            epochs.set_words = set_words
            found[i] = epochs
    return [found[i] for i in range(len(buffers))]


FOLD_REQUESTS = 1000
"""What one fold costs, counted in requests walked: per-fold arrays and Python steps."""


def estimate_requests(layer: Layer, hardware: Hardware, *, traces: bool = False) -> int:
    """About how many requests this module walks one by one for ``layer``, from its sizes alone.

    Each fold counts as :data:`FOLD_REQUESTS`.  In CALC mode without traces a read operand is
    walked only when no shortcut applies: then an output-stationary ifmap of three channels or more
    counts one per channel run (and one per ifmap pixel), any other ifmap one per request.  USER
    mode walks every read request; traces add every request of all three operands.
    """
    m, n, k = layer.ofmap_pixels, layer.num_filters, layer.window
    spatial_rows, spatial_cols, temporal = {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[hardware.dataflow]
    row_folds = -(-spatial_rows // hardware.array_rows)
    col_folds = -(-spatial_cols // hardware.array_cols)
    ifmap_reads = temporal * spatial_rows * col_folds if hardware.dataflow != "is" else spatial_rows * spatial_cols
    filter_reads = {"os": temporal * spatial_cols * row_folds, "ws": spatial_rows * spatial_cols,
                    "is": temporal * spatial_rows * col_folds}[hardware.dataflow]
    estimate = row_folds * col_folds * FOLD_REQUESTS
    if traces:
        return estimate + ifmap_reads + filter_reads + m * n
    if hardware.bandwidth_mode == "USER":
        return estimate + ifmap_reads + filter_reads
    ifmap = WindowOperand(hardware.ifmap_offset, layer.ifmap_h, layer.ifmap_w, layer.channels, layer.filter_h,
                          layer.filter_w, layer.stride_h, layer.stride_w, layer.ofmap_h, layer.ofmap_w)
    epoch_words = ESTIMATE_SETS_PER_HALF * (_buffer_words(hardware, "ifmap") // PARTS_PER_BUFFER)
    distinct = _covered(ifmap.ifmap_h, ifmap.filter_h, ifmap.stride_h, ifmap.ofmap_h) * _covered(
        ifmap.ifmap_w, ifmap.filter_w, ifmap.stride_w, ifmap.ofmap_w) * ifmap.channels
    if distinct < epoch_words or (_window_no_overlap(ifmap) and _window_all_valid(ifmap)):
        return estimate
    if hardware.dataflow == "os" and ifmap.channels >= _MIN_RUN_CHANNELS:
        return estimate + ifmap_reads // ifmap.channels + ifmap.ifmap_h * ifmap.ifmap_w
    return estimate + ifmap_reads


# --------------------------------------------------------------------------- ofmap write buffer


@dataclass
class _WriteBuffer:
    """Ofmap write buffer state; lines are ``bw`` words, cut short where a drain flushed them."""

    buffer: _Buffer
    bw: int
    latency: int
    free: int = 0
    drain_end: int = 0
    stored: int = 0
    lines_closed: int = 0
    open_words: int = 0
    partial_lines: list[int] = field(default_factory=list)
    """Index of every line cut short, ascending, and (in ``partial_sizes``) its word count."""
    partial_sizes: list[int] = field(default_factory=list)
    next_line: int = 0
    accesses: int = 0
    drains: list[tuple[int, int, int]] = field(default_factory=list)
    """``(first cycle, first line, line count)`` of every drain."""
    flush_points: list[int] = field(default_factory=list)
    """Words stored when each partial line was cut."""

    def store(self, words: int) -> None:
        self.stored += words
        self.free -= words
        self.open_words += words
        self.lines_closed += self.open_words // self.bw
        self.open_words %= self.bw

    def flush(self) -> None:
        if self.open_words:
            self.partial_lines.append(self.lines_closed)
            self.partial_sizes.append(self.open_words)
            self.flush_points.append(self.stored)
            self.lines_closed += 1
            self.open_words = 0

    def drain(self, cycle: int) -> int:
        per_drain = math.ceil(self.buffer.other_words / self.bw)
        first = self.next_line
        count = min(per_drain, self.lines_closed - first)
        last = first + count - 1
        k = bisect.bisect_left(self.partial_lines, last)
        last_words = self.partial_sizes[k] if k < len(self.partial_lines) and self.partial_lines[k] == last else self.bw
        words = (count - 1) * self.bw + last_words
        self.accesses += words
        self.free += words
        self.next_line += count
        self.drains.append((cycle, first, count))
        return cycle + count - 1 + self.latency


# --------------------------------------------------------------------------- the layer


class _RowCumulative:
    """Requests of one stream in rows ``0..r`` for every row ``r``, stored per fold (memory grows with folds, not rows).

    ``cum[r]`` and ``cum.search(i)`` equal ``np.cumsum(stream.row_counts())[r]`` and its
    ``np.searchsorted(.., i, side="right")``.
    """

    def __init__(self, stream: _Stream):
        self.stream = stream
        self.fold_cycles = stream.fold_cycles
        self.size = stream.num_folds * stream.fold_cycles
        self.all_valid = stream.all_valid()
        if self.all_valid:
            per_fold = stream.fold_sizes()
        else:
            per_fold = np.array([sum(stream.fold_chunk(f, p)[0].size for p in range(stream.chunk_count(f)))
                                 for f in range(stream.num_folds)], dtype=np.int64)
        self.fold_ends = np.cumsum(per_fold)
        self._last: tuple[int, np.ndarray] | None = None

    def in_fold(self, fold: int) -> np.ndarray:
        """Requests in rows ``0..r`` of ``fold``, for every ``r`` of the fold."""
        if self.all_valid:
            steps, used = self.stream.shapes()[fold]
            return self.stream.row_cumulative(int(steps), int(used))
        if self._last is None or self._last[0] != fold:
            counts = np.zeros(self.fold_cycles, dtype=np.int64)
            for part in range(self.stream.chunk_count(fold)):
                counts += np.bincount(self.stream.fold_chunk(fold, part)[1], minlength=self.fold_cycles)
            self._last = (fold, np.cumsum(counts))
        return self._last[1]

    def __getitem__(self, row: int) -> int:
        if row < 0:
            row += self.size
        fold, within = divmod(row, self.fold_cycles)
        return (int(self.fold_ends[fold - 1]) if fold else 0) + int(self.in_fold(fold)[within])

    def search(self, requests: int) -> int:
        """First row whose cumulative count exceeds ``requests`` (``size`` if none)."""
        fold = int(np.searchsorted(self.fold_ends, requests, side="right"))
        if fold == self.fold_ends.size:
            return self.size
        before = int(self.fold_ends[fold - 1]) if fold else 0
        return fold * self.fold_cycles + int(np.searchsorted(self.in_fold(fold), requests - before, side="right"))


def _service(
    stream_of: _Stream,
    write: _WriteBuffer,
    read_events: dict[int, int],
    num_rows: int,
) -> tuple[list[int], list[int], dict[int, int], int]:
    """Walk the event rows; return (rows where the stall total changes, totals after them, ofmap waits, last out)."""
    cum = _RowCumulative(stream_of)
    read_rows = sorted(read_events)
    ri = 0
    stall = 0
    change_rows: list[int] = []
    change_totals: list[int] = []
    ofmap_waits: dict[int, int] = {}
    row = 0
    active = write.buffer.active_words
    while row < num_rows:
        next_read = read_rows[ri] if ri < len(read_rows) else num_rows
        nxt = _next_ofmap_row(write, cum, row, stall, active)
        target = min(next_read, nxt)
        if target >= num_rows:
            write.store(int(cum[-1]) - write.stored)
            break
        row = target
        before = int(cum[row - 1]) if row else 0
        write.store(before - write.stored)
        cycle = row + stall
        current = cycle
        left = int(cum[row]) - before
        while left:
            if current < write.drain_end:
                fill_at = max(0, write.free - 1)
                if fill_at < left:
                    write.store(fill_at + 1)
                    left -= fill_at + 1
                    current = write.drain_end
                else:
                    write.store(left)
                    left = 0
            else:
                trigger_at = max(0, write.free - active)
                if trigger_at < left:
                    write.store(trigger_at + 1)
                    left -= trigger_at + 1
                    write.flush()
                    write.drain_end = write.drain(current)
                else:
                    write.store(left)
                    left = 0
        own = current - cycle
        if own:
            ofmap_waits[row] = own
        read = max(0, read_events[row] - cycle - HIT_LATENCY_CYCLES) if row in read_events else 0
        wait = max(own, read)
        if row == next_read:
            ri += 1
        if wait:
            stall += wait
            change_rows.append(row)
            change_totals.append(stall)
        row += 1
    last_row = num_rows - 1
    last_out = last_row + _stall_before(change_rows, change_totals, last_row) + ofmap_waits.get(last_row, 0)
    return change_rows, change_totals, ofmap_waits, last_out


def _next_ofmap_row(write: _WriteBuffer, cum: _RowCumulative, row: int, stall: int, active: int) -> int:
    """First row at or after ``row`` in which the ofmap buffer drains or makes the array wait.

    ``cum[r]`` is the number of ofmap requests in rows ``0..r``.
    """
    done = int(cum[row - 1]) if row else 0
    waiting_from = write.drain_end - stall
    fill_idx = done + max(0, write.free - 1)
    trigger_idx = done + max(0, write.free - active)
    candidates = []
    first_free_row = max(row, waiting_from)
    if first_free_row < cum.size:
        idx = max(trigger_idx, int(cum[first_free_row - 1]) if first_free_row else 0)
        if idx < cum[-1]:
            candidates.append(cum.search(idx))
    if fill_idx < cum[-1]:
        fill_row = cum.search(fill_idx)
        if fill_row < first_free_row:
            candidates.append(fill_row)
    return max(row, min(candidates)) if candidates else cum.size


def _stall_before(change_rows: list[int], change_totals: list[int], row: int) -> int:
    k = bisect.bisect_left(change_rows, row)
    return change_totals[k - 1] if k else 0


def _stalls_by_row(change_rows: list[int], change_totals: list[int], num_rows: int) -> np.ndarray:
    out = np.zeros(num_rows, dtype=np.int64)
    for r, total in zip(change_rows, change_totals):
        if r + 1 < num_rows:
            out[r + 1 :] = total
    return out


def _read_waits(pre: _Prefetches) -> dict[int, int]:
    """Row -> DRAM arrival cycle of the last prefetch made in that row."""
    return {row: pre.dram_time(count) for row, count in zip(pre.rows.tolist(), pre.count_after.tolist())}


def simulate(
    mapping: LayerMapping, network: NetworkSchedule, hardware: Hardware, *, traces: bool = False
) -> MemoryResult:
    """Serve one layer's demand; see the module docstring for the model."""
    return LayerDemand(mapping, network).serve(hardware, traces=traces)


class LayerDemand:
    """One mapped and scheduled layer's demand, served under any SRAM sizes.

    A read buffer's USER prefetches or CALC read estimate depend on the size of that buffer alone,
    so :meth:`serve` works each one out once per size and keeps it (traces off) for later calls
    with other sizes of the other buffers; only the ofmap buffer and the stalls are worked out per
    configuration.  :meth:`prepare` finds the CALC estimates of several sizes of a buffer in one
    pass over its requests.  Results equal :func:`simulate`'s for every configuration.
    """

    def __init__(self, mapping: LayerMapping, network: NetworkSchedule):
        self.network = network
        self.streams = {name: _Stream(mapping, network, name) for name in OPERANDS}
        self._prefetches: dict[tuple[OperandName, int], _Prefetches] = {}
        self._epochs: dict[tuple[OperandName, int], _Epochs] = {}
        self._inputs: dict[OperandName, _PrefetchInputs] = {}

    def prepare(self, hardwares: Iterable[Hardware]) -> None:
        """Work out, traces off, each read buffer's CALC estimate for every size ``hardwares`` give it (sizes
        SCALE-Sim cannot estimate are left for :meth:`serve` to refuse).  Under USER bandwidth, a read
        buffer given more than one size keeps what its prefetches take whatever the size
        (:class:`_PrefetchInputs`) from one size to the next."""
        hardwares = list(hardwares)
        if self.network.bandwidth_mode == "USER":
            for name in READ_OPERANDS:
                if len({_buffer_words(hw, name) for hw in hardwares}) > 1:
                    self._inputs.setdefault(name, _PrefetchInputs(self.streams[name]))
            return
        for name in READ_OPERANDS:
            sizes = {_buffer_words(hw, name) for hw in hardwares}
            words = sorted({w for w in sizes if w >= PARTS_PER_BUFFER} - {w for n, w in self._epochs if n == name})
            if words:
                found = _estimate_epochs_of_sizes(self.streams[name], [_Buffer(w) for w in words])
                self._epochs.update(((name, w), ep) for w, ep in zip(words, found, strict=True))

    def _user_prefetches(self, name: OperandName, buffer: _Buffer, traces: bool) -> _Prefetches:
        key = (name, buffer.total_words)
        pre = None if traces else self._prefetches.get(key)
        if pre is None:
            port = self.network.ports[name]
            pre = _user_prefetches(self.streams[name], port.words_per_cycle, port.latency_cycles, buffer,
                                   keep_fetch=traces, inputs=None if traces else self._inputs.get(name))
            if not traces:
                self._prefetches[key] = pre
        return pre

    def _estimate(self, name: OperandName, buffer: _Buffer, traces: bool) -> _Epochs:
        key = (name, buffer.total_words)
        ep = None if traces else self._epochs.get(key)
        if ep is None:
            ep = _estimate_epochs(self.streams[name], buffer, record=traces)
            if not traces:
                self._epochs[key] = ep
        return ep

    def serve(self, hardware: Hardware, *, traces: bool = False) -> MemoryResult:
        """The layer's figures (and with ``traces`` its traces) under ``hardware``'s SRAM sizes."""
        network, streams = self.network, self.streams
        buffers = {name: _Buffer(_buffer_words(hardware, name)) for name in OPERANDS}
        num_rows = streams["ofmap"].num_folds * network.fold_cycles
        user = network.bandwidth_mode == "USER"

        prefetches: dict[OperandName, _Prefetches] = {}
        waits_by_operand: dict[OperandName, dict[int, int]] = {}
        read_events: dict[int, int] = {}
        if user:
            for name in READ_OPERANDS:
                pre = self._user_prefetches(name, buffers[name], traces)
                prefetches[name] = pre
                waits_by_operand[name] = _read_waits(pre)
                for r, t in waits_by_operand[name].items():
                    read_events[r] = max(read_events.get(r, t), t)

        of_port = network.ports["ofmap"]
        write = _WriteBuffer(buffers["ofmap"], of_port.words_per_cycle, of_port.latency_cycles,
                             free=buffers["ofmap"].total_words)
        change_rows, change_totals, ofmap_waits, last_out = _service(streams["ofmap"], write, read_events, num_rows)
        write.flush()
        cycle = last_out
        while write.next_line < write.lines_closed:
            write.drain_end = write.drain(cycle)
            cycle = write.drain_end + 1

        def stall_at(row: int) -> int:
            return _stall_before(change_rows, change_totals, row)

        def served(name: OperandName, row: int) -> int:
            cycle = row + stall_at(row)
            if name == "ofmap":
                return cycle + ofmap_waits.get(row, 0)
            arrival = waits_by_operand.get(name, {}).get(row)
            return cycle + max(HIT_LATENCY_CYCLES, arrival - cycle if arrival is not None else 0)

        sram_start_stop: dict[OperandName, tuple[float, float]] = {}
        for name, stream in streams.items():
            first, last = stream.busy_rows()
            sram_start_stop[name] = (float(served(name, first)), float(served(name, last)))

        dram_start_stop: dict[OperandName, tuple[float, float]] = {}
        dram_accesses: dict[OperandName, int] = {}
        epochs: dict[OperandName, _Epochs] = {}
        for name in READ_OPERANDS:
            if user:
                pre = prefetches[name]
                dram_accesses[name] = (pre.first_rows + pre.total * pre.rows_per_prefetch) * pre.bw
                dram_start_stop[name] = (float(-pre.first_rows), float(pre.dram_time(pre.total)))
            else:
                ep = self._estimate(name, buffers[name], traces)
                epochs[name] = ep
                start, stop, words = _estimate_summary(ep, stall_at, network.ports[name].latency_cycles,
                                                       network.ports[name].words_per_cycle)
                dram_accesses[name] = words
                dram_start_stop[name] = (float(start), float(stop))
        dram_accesses["ofmap"] = write.accesses
        first_drain, last_drain = write.drains[0], write.drains[-1]
        dram_start_stop["ofmap"] = (float(first_drain[0] + write.latency),
                                    float(last_drain[0] + last_drain[2] - 1 + write.latency))

        trace_set = None
        if traces:
            stalls = _stalls_by_row(change_rows, change_totals, num_rows)
            trace_set = _traces(streams, network, stalls, waits_by_operand, ofmap_waits, prefetches, epochs, write)
        return MemoryResult(
            total_cycles=int(last_out),
            stall_cycles=int(change_totals[-1]) if change_totals else 0,
            sram_start_stop=sram_start_stop,
            dram_start_stop=dram_start_stop,
            dram_accesses=dram_accesses,
            traces=trace_set,
        )


def _buffer_words(hardware: Hardware, name: OperandName) -> int:
    kib = {"ifmap": hardware.ifmap_sram_kib, "filter": hardware.filter_sram_kib, "ofmap": hardware.ofmap_sram_kib}
    return (kib[name] * 1024) // hardware.word_bytes


def _estimate_summary(ep: _Epochs, stall_at: Callable[[int], int], latency: int, start_bw: int) -> tuple[int, int, int]:
    """DRAM start cycle, stop cycle and words of a CALC read estimate."""
    set_words = ep.set_words
    epoch_words = ESTIMATE_SETS_PER_HALF * set_words
    if any(a == b for a, b in zip(ep.end_rows, ep.end_rows[1:])):
        raise SimulationError("two read-estimate epochs end in one cycle; SCALE-Sim v2 fails here")
    if not ep.end_rows:
        cycles = math.ceil(math.ceil(ep.last_distinct / set_words) * set_words / start_bw)
        return -cycles, -1, ep.last_distinct
    first_request = ep.first_row + stall_at(ep.first_row)
    last_epoch_end = ep.end_rows[-1] + stall_at(ep.end_rows[-1])
    return (first_request - math.ceil(epoch_words / start_bw), last_epoch_end + latency,
            len(ep.end_rows) * epoch_words + ep.last_distinct)


# --------------------------------------------------------------------------- traces


def _traces(
    streams: dict[OperandName, _Stream],
    network: NetworkSchedule,
    stalls: np.ndarray,
    read_waits: dict[OperandName, dict[int, int]],
    ofmap_waits: dict[int, int],
    prefetches: dict[OperandName, _Prefetches],
    epochs: dict[OperandName, _Epochs],
    write: _WriteBuffer,
) -> TraceSet:
    num_rows = stalls.size
    cycles = np.arange(num_rows, dtype=np.int64) + stalls
    sram: dict[str, np.ndarray] = {}
    for name, stream in streams.items():
        demand = np.full((num_rows, stream.lanes), NO_REQUEST, dtype=np.int64)
        for f in range(stream.num_folds):
            rows_idx, cols_idx = dense_block_indices(stream.mapping, name, int(stream.row_folds[f]),
                                                     int(stream.col_folds[f]))
            perm, rows = stream.order(*rows_idx.shape)
            addr = stream.matrix.addresses(rows_idx, cols_idx).reshape(-1)[perm]
            lanes = np.broadcast_to(np.arange(rows_idx.shape[1]), rows_idx.shape).reshape(-1)[perm]
            demand[rows + f * stream.fold_cycles, lanes] = addr
        out = cycles.copy()
        if name == "ofmap":
            for r, w in ofmap_waits.items():
                out[r] += w
        else:
            out += HIT_LATENCY_CYCLES
            for r, t in read_waits.get(name, {}).items():
                out[r] = max(out[r], t)
        sram[name] = np.concatenate((out[:, None], demand), axis=1).astype(np.float64)

    dram: dict[str, np.ndarray] = {}
    for name in READ_OPERANDS:
        lat = network.ports[name].latency_cycles
        if name in prefetches:
            dram[name] = _user_dram_trace(prefetches[name])
        else:
            dram[name] = _estimate_dram_trace(epochs[name], cycles, lat, network.ports[name].words_per_cycle)
    dram["ofmap"] = _write_dram_trace(streams["ofmap"], write)
    return TraceSet(
        ifmap_sram=sram["ifmap"], filter_sram=sram["filter"], ofmap_sram=sram["ofmap"],
        ifmap_dram=dram["ifmap"], filter_dram=dram["filter"], ofmap_dram=dram["ofmap"],
    )


def _user_dram_trace(pre: _Prefetches) -> np.ndarray:
    bw = pre.bw
    fetch_rows = math.ceil(pre.fetch.size / bw)
    matrix = np.full((fetch_rows, bw), float(NO_REQUEST))
    matrix.reshape(-1)[: pre.fetch.size] = pre.fetch
    active = pre.buffer.active_words
    first = matrix[: pre.first_rows]
    over = pre.first_rows * bw > active
    cut = active % bw if over else 0
    if over:
        first[-1, cut:] = NO_REQUEST
    blocks = [first.copy()]
    next_row = (pre.first_rows if over else pre.first_rows + 1) % fetch_rows
    total = pre.total
    n = pre.rows_per_prefetch
    over_p = n * bw > active
    repeated = None
    for _ in range(min(total, 2)):
        start, end = next_row, next_row + n
        if end > fetch_rows:
            req = np.concatenate((matrix[start:], matrix[: min(end - fetch_rows, start)]))
        else:
            req = matrix[start:end]
        if req.shape[0] != n:
            raise SimulationError("a prefetch asks for more DRAM rows than the operand has; SCALE-Sim v2 fails here")
        req[0, :cut] = NO_REQUEST
        if over_p:
            req[-1, active % bw :] = NO_REQUEST
        blocks.append(req.copy())
        repeated = req.copy()
        next_row = (n if over_p else n + 1) % fetch_rows
    if total > 2 and repeated is not None:
        blocks.extend([repeated] * (total - 2))
    body = np.concatenate(blocks)
    later = np.arange(total * n)
    cyc = np.r_[np.arange(pre.first_rows) - pre.first_rows,
                -1 + (later // n) * (n + pre.latency) + later % n + 1 + pre.latency].astype(np.float64)
    return np.concatenate((cyc[:, None], body), axis=1)


def _estimate_dram_trace(ep: _Epochs, cycles: np.ndarray, latency: int, start_bw: int) -> np.ndarray:
    assert ep.contents is not None
    set_words = ep.set_words
    blocks: list[tuple[float, int, int, list[float]]] = []

    def words_of(content: list[float]) -> list[float]:
        return [a for i in range(0, len(content), set_words) for a in list(set(content[i : i + set_words]))]

    tail = ep.contents[-1]
    if not ep.end_rows:
        sets = math.ceil(len(tail) / set_words)
        n = math.ceil(sets * set_words / start_bw)
        blocks.append((-1 - latency - n + 1, n, start_bw, words_of(tail)))
    else:
        end = int(cycles[ep.first_row]) - 1 - latency
        n = math.ceil(ESTIMATE_SETS_PER_HALF * set_words / start_bw)
        blocks.append((end - n + 1, n, start_bw, words_of(ep.contents[0])))
        start, end = end + 1, int(cycles[ep.end_rows[0]])
        follow = [(int(cycles[r]), c) for r, c in zip(ep.end_rows[1:], ep.contents[1:-1])] + [(0, tail)]
        for epoch_end, content in follow:
            n = end - start + 1
            if n <= 0:
                raise SimulationError("two read-estimate epochs end in one cycle; SCALE-Sim v2 fails here")
            sets = math.ceil(len(content) / set_words)
            bw = math.ceil(sets * set_words / n)
            blocks.append((start, n, bw, words_of(content)))
            start, end = end + 1, epoch_end
    width = max(b[2] for b in blocks)
    out = np.ones((sum(b[1] for b in blocks), width + 1))
    r = 0
    for first, n, bw, words in blocks:
        padded = np.full(n * bw, float(NO_REQUEST))
        padded[: len(words)] = words
        out[r : r + n, 0] = first + np.arange(n) + latency
        out[r : r + n, 1 : 1 + bw] = padded.reshape(n, bw) if bw else padded.reshape(n, 0)
        r += n
    return out


def _write_dram_trace(stream: _Stream, write: _WriteBuffer) -> np.ndarray:
    words = np.concatenate([addr for addr, _ in stream.fold_batches()]).astype(np.float64)
    bw = write.bw
    pieces = []
    prev = 0
    for cut in [*write.flush_points, words.size]:
        seg = words[prev:cut]
        padded = np.full(math.ceil(seg.size / bw) * bw, float(NO_REQUEST))
        padded[: seg.size] = seg
        pieces.append(padded.reshape(-1, bw))
        prev = cut
    lines = np.concatenate(pieces)
    rows = []
    for cycle, first, count in write.drains:
        block = lines[first : first + count]
        rows.append(np.concatenate(((cycle + np.arange(count) + write.latency)[:, None], block), axis=1))
    return np.concatenate(rows)
