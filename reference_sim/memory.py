"""Reference memory module: SCALE-Sim v2's double-buffered SRAMs, computed event by event.

The same model as :mod:`reference_sim.memory_literal` (read that file for the model in plain
steps), computed without walking cycles:

* stalls change only in rows where a read buffer prefetches (USER bandwidth) or the ofmap buffer
  fills up while draining, so :func:`_service` jumps from event to event, and the ofmap buffer's
  drains are found by arithmetic on cumulative request counts;
* USER-mode prefetches come from one vectorised pass over the demand that tracks the window of
  buffer lines (:func:`_user_prefetches`);
* CALC-mode DRAM reads are distinct addresses per epoch of half a buffer.  Where no address repeats
  across operand entries, epochs follow from fold sizes alone (:func:`_epochs_from_blocks`); for an
  output-stationary ifmap, from runs of channels, one per (pixel, filter tap)
  (:func:`_epochs_from_channel_runs`); otherwise from a pass over every request
  (:func:`_epochs_from_elements`), which also records the epochs' addresses for traces.

Traces are built only when asked.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .contract import (
    NO_REQUEST,
    OPERANDS,
    READ_OPERANDS,
    Hardware,
    LayerMapping,
    MemoryResult,
    NetworkSchedule,
    OperandMatrix,
    OperandName,
    TraceSet,
    WindowOperand,
    antidiagonal_order,
    dense_block,
    dense_block_indices,
    dense_block_shape,
    prefetch_order,
)
from .errors import SimulationError

HIT_LATENCY_CYCLES = 1
ACTIVE_FRACTION = 0.5
ESTIMATE_SETS_PER_HALF = 50
PARTS_PER_BUFFER = 100
"""A buffer is cut into this many lines (USER prefetch window) or sets (CALC read estimate)."""
_BIG = np.iinfo(np.int64).max // 4


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
        self._profiles: dict[tuple[int, int], np.ndarray] = {}
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
            self._cumulative[key] = np.cumsum(self.row_profile(steps, used))
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

    def row_profile(self, steps: int, used: int) -> np.ndarray:
        """Entries in each row of a ``steps x used`` fold block (every entry counted as a request)."""
        key = (steps, used)
        if key not in self._profiles:
            t = self.timing
            r = np.arange(self.fold_cycles) - t.start_step
            if t.flip_steps:
                r = t.flip_steps - 1 - r if not t.skew else r
            if t.skew:
                if t.flip_steps:
                    lo = np.maximum(0, r - (t.flip_steps - 1))
                    hi = np.minimum(used - 1, r - (t.flip_steps - steps))
                else:
                    lo = np.maximum(0, r - steps + 1)
                    hi = np.minimum(used - 1, r)
                counts = np.maximum(0, hi - lo + 1)
            else:
                counts = np.where((r >= 0) & (r < steps), used, 0)
            self._profiles[key] = counts.astype(np.int64)
        return self._profiles[key]

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

    def folds(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(first global row of the fold, addresses, global rows)`` for every fold in order."""
        for f in range(self.num_folds):
            addr, rows = self.fold_elements(f)
            base = f * self.fold_cycles
            yield base, addr, rows + base

    def row_counts(self) -> np.ndarray:
        """Requests in every row of the layer."""
        if self.all_valid():
            shapes = self.shapes()
            width = int(shapes[:, 1].max()) + 1
            keys, inverse = np.unique(shapes[:, 0] * width + shapes[:, 1], return_inverse=True)
            profiles = np.stack([self.row_profile(int(k) // width, int(k) % width) for k in keys])
            counts: np.ndarray = profiles[inverse.reshape(-1)].reshape(-1)
            return counts
        counts = np.zeros(self.num_folds * self.fold_cycles, dtype=np.int64)
        for base, _, rows in self.folds():
            counts[base : base + self.fold_cycles] += np.bincount(rows - base, minlength=self.fold_cycles)
        return counts

    def busy_rows(self) -> tuple[int, int]:
        """First and last row with a request."""
        if self._busy is None:
            self._busy = self._find_busy_rows()
        return self._busy

    def _find_busy_rows(self) -> tuple[int, int]:
        if self.all_valid():
            last = self.num_folds - 1
            first_busy = np.flatnonzero(self.row_profile(*self.shape(0)))
            last_busy = np.flatnonzero(self.row_profile(*self.shape(last)))
            return int(first_busy[0]), int(last_busy[-1]) + last * self.fold_cycles
        first = next(f for f in range(self.num_folds) if self.fold_elements(f)[1].size)
        last = next(f for f in reversed(range(self.num_folds)) if self.fold_elements(f)[1].size)
        return (int(self.fold_elements(first)[1].min()) + first * self.fold_cycles,
                int(self.fold_elements(last)[1].max()) + last * self.fold_cycles)

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

    def address_span(self) -> tuple[int, int]:
        m = self.matrix
        if m.kind == "window":
            return m.offset, m.ifmap_h * m.ifmap_w * m.channels
        last = (m.n_rows - 1) * m.row_stride + (m.n_cols - 1) * m.col_stride
        return m.offset, last + 1


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


def _line_table(fetch: np.ndarray, words_per_line: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Unique addresses of the fetch order and, per address, the lines holding it (padded with -1).

    When the fetch order holds each address of one contiguous range once (a dense operand with no
    reuse), the table is the line of each position, scattered by address: no sort.
    """
    valid = fetch[fetch != NO_REQUEST]
    num_lines = valid.size // words_per_line + 1
    line = np.arange(valid.size, dtype=np.int64) // words_per_line
    if valid.size:
        lowest = int(valid.min())
        span = int(valid.max()) - lowest + 1
        if span == valid.size and bool((np.bincount(valid - lowest, minlength=span) == 1).all()):
            table = np.empty((span, 1), dtype=np.int64)
            table[valid - lowest, 0] = line
            return np.arange(lowest, lowest + span, dtype=np.int64), table, num_lines
    order = np.lexsort((line, valid))
    addr_s, line_s = valid[order], line[order]
    keep = np.ones(addr_s.size, dtype=bool)
    keep[1:] = (addr_s[1:] != addr_s[:-1]) | (line_s[1:] != line_s[:-1])
    addr_s, line_s = addr_s[keep], line_s[keep]
    starts = np.flatnonzero(np.r_[True, addr_s[1:] != addr_s[:-1]])
    counts = np.diff(np.r_[starts, addr_s.size])
    table = np.full((starts.size, int(counts.max()) if counts.size else 1), -1, dtype=np.int64)
    within = np.arange(addr_s.size) - np.repeat(starts, counts)
    table[np.repeat(np.arange(starts.size), counts), within] = line_s
    return addr_s[starts], table, num_lines


def _user_prefetches(stream: _Stream, fetch: np.ndarray, bw: int, latency: int, buffer: _Buffer) -> _Prefetches:
    words_per_line = math.ceil(buffer.total_words / PARTS_PER_BUFFER)
    uniq, table, num_lines = _line_table(fetch, words_per_line)
    active = min(math.ceil(buffer.active_words / words_per_line), num_lines)
    step = min(math.ceil(buffer.other_words / words_per_line), num_lines - active)
    fetch_rows = math.ceil(fetch.size / bw)
    result = _Prefetches(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                         min(math.ceil(buffer.active_words / bw), fetch_rows),
                         math.ceil(buffer.other_words / bw), latency, fetch, bw, buffer)
    if step == 0:
        return result
    shifts = 0
    event_rows: list[np.ndarray] = []
    event_counts: list[np.ndarray] = []
    dense = uniq.size > 0 and int(uniq[-1]) - int(uniq[0]) + 1 == uniq.size
    for _, addr, rows in stream.folds():
        lines = table[addr - uniq[0] if dense else np.searchsorted(uniq, addr)]
        pos = 0
        window = 1024
        while pos < addr.size:
            sub = lines[pos : pos + window]
            first_wrap = np.maximum(0, -((sub - shifts * step) // num_lines))
            unwrapped = sub + first_wrap * num_lines
            hi = unwrapped // step
            lo = -((active - 1 - unwrapped) // step)
            lo = np.where(sub < 0, _BIG, lo)
            if lo.shape[1] == 1:
                lo_e, hi_e = lo[:, 0], hi[:, 0]
            else:
                pick = np.argmin(lo, axis=1)
                lo_e = lo[np.arange(sub.shape[0]), pick]
                hi_e = hi[np.arange(sub.shape[0]), pick]
            seq = np.maximum.accumulate(np.maximum(lo_e, shifts))
            bad = np.flatnonzero(seq > hi_e)
            stop = int(bad[0]) if bad.size else seq.size
            if stop:
                seq = seq[:stop]
                prev = np.r_[shifts, seq[:-1]]
                moved = np.flatnonzero(seq > prev)
                if moved.size:
                    event_rows.append(rows[pos + moved])
                    event_counts.append(seq[moved])
                shifts = int(seq[-1])
            if stop == 0:
                raise SimulationError("USER read buffer: no window holds a demanded address")
            pos += stop
            window = window * 2 if stop == sub.shape[0] else max(256, 2 * stop)
    if event_rows:
        rows_all = np.concatenate(event_rows)
        counts_all = np.concatenate(event_counts)
        last = np.r_[rows_all[1:] != rows_all[:-1], True]
        result.rows, result.count_after = rows_all[last], counts_all[last]
    return result


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
    last_same = np.full(sizes.size, -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for f, block in enumerate(ids.tolist()):
        last_same[f] = seen.get(block, -1)
        seen[block] = f
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
        row = int(np.searchsorted(stream.row_cumulative(*stream.shape(end_fold)), end_index, side="right"))
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
    run_start = np.r_[True, groups[1:] != groups[:-1]]
    run_end = np.r_[groups[1:] != groups[:-1], True]
    prev_sorted = np.full(order.size, -1, dtype=np.int64)
    later = np.flatnonzero(~run_start)
    prev_sorted[later] = order[later - 1]
    previous = np.empty(order.size, dtype=np.int64)
    previous[order] = prev_sorted
    return previous, order[run_start], order[run_end]




@dataclass(frozen=True)
class _BlockReuse:
    """One fold block's requests (addresses relative to the operand's first) and their reuse inside the block."""

    addr: np.ndarray
    rows: np.ndarray
    local_prev: np.ndarray
    """Index of the previous request of the same address in the block, -1 for its first."""
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, addr: np.ndarray, rows: np.ndarray, lowest: int) -> _BlockReuse:
        if addr.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty, empty, empty)
        order = np.argsort(addr, kind="stable")
        return cls(addr - lowest, rows, *_previous_in_group(order, addr[order]))


def _epochs_from_elements(stream: _Stream, epoch_words: int, record: bool) -> _Epochs:
    """Epochs by a pass over every request: an address is new if not seen since the epoch began.

    Folds that read the same operand block (later passes over the operand) reuse the block's
    addresses and in-block reuse, computed once.
    """
    lowest, span = stream.address_span()
    last_seen = np.full(span, -1, dtype=np.int64)
    block_ids = stream.block_ids()
    repeats = np.unique(block_ids).size < block_ids.size
    cache: dict[int, _BlockReuse] = {}
    cached_words = 0
    epoch_start = 0
    count = 0
    base = 0
    ends: list[int] = []
    contents: list[list[float]] = []
    current: list[np.ndarray] = []
    first_row = -1
    for fold in range(stream.num_folds):
        block = cache.get(int(block_ids[fold]))
        if block is None:
            addr, rows = stream.fold_elements(fold)
            block = _BlockReuse.of(addr, rows, lowest)
            if repeats and cached_words + addr.size <= _CACHED_BLOCK_WORDS:
                cache[int(block_ids[fold])] = block
                cached_words += addr.size
        n = block.addr.size
        if n == 0:
            continue
        fold_row = fold * stream.fold_cycles
        if first_row < 0:
            first_row = int(block.rows[0]) + fold_row
        prev = np.where(block.local_prev >= 0, block.local_prev + base, -1)
        prev[block.first] = last_seen[block.addr[block.first]]
        last_seen[block.addr[block.last]] = base + block.last
        pos = 0
        while pos < n:
            new = prev[pos:] < epoch_start
            need = epoch_words - count
            found = int(np.count_nonzero(new))
            if found < need:
                count += found
                if record:
                    current.append(block.addr[pos:][new] + lowest)
                break
            k = int(np.flatnonzero(new)[need - 1])
            if record:
                current.append(block.addr[pos : pos + k + 1][new[: k + 1]] + lowest)
                contents.append(np.concatenate(current).astype(np.float64).tolist())
                current = []
            ends.append(int(block.rows[pos + k]) + fold_row)
            epoch_start = base + pos + k + 1
            count = 0
            pos += k + 1
        base += n
    if record:
        contents.append(np.concatenate(current).astype(np.float64).tolist() if current else [])
    return _Epochs(ends, count, first_row, 0, contents if record else None)


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


def _estimate_epochs(stream: _Stream, buffer: _Buffer, record: bool) -> _Epochs:
    set_words = buffer.total_words // PARTS_PER_BUFFER
    epoch_words = ESTIMATE_SETS_PER_HALF * set_words
    if not record:
        first_row = stream.busy_rows()[0]
        distinct = stream.distinct_addresses()
        if distinct is not None and distinct < epoch_words:
            return _Epochs([], distinct, first_row, set_words)
        if stream.all_distinct_and_valid():
            ends, last = _epochs_from_blocks(stream, epoch_words)
            return _Epochs(ends, last, first_row, set_words)
    if not record and _channel_runs_apply(stream):
        epochs = _epochs_from_channel_runs(stream, epoch_words)
    else:
        epochs = _epochs_from_elements(stream, epoch_words, record)
    epochs.set_words = set_words
    return epochs


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


def _service(
    stream_of: _Stream,
    write: _WriteBuffer,
    read_events: dict[int, int],
    num_rows: int,
) -> tuple[list[int], list[int], dict[int, int], int]:
    """Walk the event rows; return (rows where the stall total changes, totals after them, ofmap waits, last out)."""
    cum = np.cumsum(stream_of.row_counts())
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


def _next_ofmap_row(write: _WriteBuffer, cum: np.ndarray, row: int, stall: int, active: int) -> int:
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
            candidates.append(int(np.searchsorted(cum, idx, side="right")))
    if fill_idx < cum[-1]:
        fill_row = int(np.searchsorted(cum, fill_idx, side="right"))
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
    streams = {name: _Stream(mapping, network, name) for name in OPERANDS}
    kib: dict[OperandName, int] = {"ifmap": hardware.ifmap_sram_kib, "filter": hardware.filter_sram_kib,
                                   "ofmap": hardware.ofmap_sram_kib}
    buffers = {name: _Buffer((kib[name] * 1024) // hardware.word_bytes) for name in OPERANDS}
    num_rows = streams["ofmap"].num_folds * network.fold_cycles
    user = network.bandwidth_mode == "USER"

    prefetches: dict[OperandName, _Prefetches] = {}
    waits_by_operand: dict[OperandName, dict[int, int]] = {}
    read_events: dict[int, int] = {}
    if user:
        for name in READ_OPERANDS:
            port = network.ports[name]
            pre = _user_prefetches(streams[name], prefetch_order(mapping, name), port.words_per_cycle,
                                   port.latency_cycles, buffers[name])
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
            ep = _estimate_epochs(streams[name], buffers[name], record=traces)
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
    words = np.concatenate([addr for _, addr, _ in stream.folds()]).astype(np.float64)
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
