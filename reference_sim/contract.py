"""The module contract: the types the mapping, network and memory modules exchange.

A simulator is three modules, each a Python file exposing one function:

* ``mapping.py``  -- ``map_layer(layer, hardware) -> LayerMapping``: cuts the layer's operand
  matrices into folds and says, per fold and operand, which operand entries the array ports need
  in which order (the *dense block*), *without* any systolic skew; it also reports the ideal
  compute figures (mapping efficiency, compute utilisation, SRAM access counts).
* ``network.py``  -- ``schedule(mapping, hardware) -> NetworkSchedule``: moves data through the
  array and to DRAM: the fold length in cycles, where each operand's dense block sits in a fold,
  whether it is flipped and skewed (fill and drain), and the SRAM<->DRAM ports (latency, words per
  cycle in USER and CALC bandwidth mode).
* ``memory.py``   -- ``simulate(mapping, network, hardware, *, traces) -> MemoryResult``: services
  the skewed demand with double-buffered SRAMs, counts stalls, DRAM traffic and, when asked,
  produces the six traces.

Any mix of implementations runs together because modules only exchange the plain data below.
This file imports numpy and the standard library only and is self-contained: a generated
candidate carries a verbatim copy of it.  Compare values, never classes (no ``isinstance``
across modules): a candidate's copy defines its own classes with the same fields.

Coordinates.  Every operand is a matrix of word addresses: ifmap ``M x K`` (ofmap pixels x window
elements), filter ``K x N``, ofmap ``M x N``.  Each dataflow maps two operand axes onto the array:
``spatial_rows`` (Sr) onto array rows, ``spatial_cols`` (Sc) onto array columns, and ``temporal``
(T) onto time.  Folds cut Sr into ``row_folds`` blocks of ``array_rows`` and Sc into
``col_folds`` blocks of ``array_cols``.  Within a fold an operand's dense block has *steps*
(rows, one per cycle before skew) and *lanes* (array ports).  A cycle row of fold ``f`` holds,
for each lane, one address or ``-1`` (no request).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Dataflow = Literal["os", "ws", "is"]
"""Output, weight or input stationary."""
OperandName = Literal["ifmap", "filter", "ofmap"]
BandwidthMode = Literal["CALC", "USER"]
"""``USER``: DRAM words per cycle as configured.  ``CALC``: SCALE-Sim's bandwidth estimate mode."""
FoldAxis = Literal["row", "col", "none"]
"""Which fold index selects a block along an operand axis: row fold, column fold, or the whole axis."""

OPERANDS: tuple[OperandName, ...] = ("ifmap", "filter", "ofmap")
READ_OPERANDS: tuple[OperandName, ...] = ("ifmap", "filter")
NO_REQUEST = -1
"""Address value meaning 'no request on this port in this cycle'."""


def _require_positive(obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{type(obj).__name__.lower()}: {name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Layer:
    """One convolution layer in SCALE-Sim's terms (a GEMM ``M, N, K`` is a 1xK filter on an M x K ifmap)."""

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride_h: int
    stride_w: int

    def __post_init__(self) -> None:
        _require_positive(self, ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters",
                                 "stride_h", "stride_w"))
        if self.filter_h > self.ifmap_h or self.filter_w > self.ifmap_w:
            raise ValueError(f"layer {self.name!r}: filter {self.filter_h}x{self.filter_w} is larger than "
                             f"ifmap {self.ifmap_h}x{self.ifmap_w}")

    @property
    def ofmap_h(self) -> int:
        return math.ceil((self.ifmap_h - self.filter_h + self.stride_h) / self.stride_h)

    @property
    def ofmap_w(self) -> int:
        return math.ceil((self.ifmap_w - self.filter_w + self.stride_w) / self.stride_w)

    @property
    def ofmap_pixels(self) -> int:
        """Output pixels per filter (M)."""
        return self.ofmap_h * self.ofmap_w

    @property
    def window(self) -> int:
        """Words in one convolution window (K)."""
        return self.filter_h * self.filter_w * self.channels

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer."""
        return self.ofmap_pixels * self.num_filters * self.window


@dataclass(frozen=True)
class Hardware:
    """The accelerator: a systolic array with three double-buffered SRAMs and a DRAM interface."""

    array_rows: int
    array_cols: int
    dataflow: Dataflow
    ifmap_sram_kib: int
    filter_sram_kib: int
    ofmap_sram_kib: int
    ifmap_offset: int = 0
    filter_offset: int = 10_000_000
    ofmap_offset: int = 20_000_000
    bandwidth_mode: BandwidthMode = "CALC"
    dram_words_per_cycle: int = 10
    """DRAM bandwidth of every interface in USER mode (ignored in CALC mode)."""
    word_bytes: int = 1

    def __post_init__(self) -> None:
        _require_positive(self, ("array_rows", "array_cols", "ifmap_sram_kib", "filter_sram_kib",
                                 "ofmap_sram_kib", "dram_words_per_cycle", "word_bytes"))
        if self.dataflow not in ("os", "ws", "is"):
            raise ValueError(f"hardware: dataflow must be 'os', 'ws' or 'is', got {self.dataflow!r}")
        if self.bandwidth_mode not in ("CALC", "USER"):
            raise ValueError(f"hardware: bandwidth_mode must be 'CALC' or 'USER', got {self.bandwidth_mode!r}")
        for name in ("ifmap_offset", "filter_offset", "ofmap_offset"):
            if not isinstance(getattr(self, name), numbers.Integral) or getattr(self, name) < 0:
                raise ValueError(f"hardware: {name} must be a non-negative integer, got {getattr(self, name)!r}")


Placement = Callable[[np.ndarray], np.ndarray]
"""Puts a vector of per-row (or per-column) terms in place against the other axis' terms."""


@dataclass(frozen=True)
class WindowOperand:
    """The ifmap operand: row ``i`` is an ofmap pixel, column ``j`` an element of its window.

    ``address(i, j) = offset + ((pr*stride_h + kr) * ifmap_w + pc*stride_w + kc) * channels + ch``
    with ``(pr, pc) = divmod(i, ofmap_w)``, ``(kr, kc, ch)`` the row-major split of ``j`` over
    ``(filter_h, filter_w, channels)``; ``-1`` where the window hangs over the ifmap edge.
    """

    offset: int
    ifmap_h: int
    ifmap_w: int
    channels: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    ofmap_h: int
    ofmap_w: int
    kind: Literal["window"] = "window"

    @property
    def shape(self) -> tuple[int, int]:
        return self.ofmap_h * self.ofmap_w, self.filter_h * self.filter_w * self.channels

    def addresses(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Addresses of entries ``(rows, cols)`` (broadcast together), ``-1`` outside the ifmap.

        A 1x1 window at stride 1 reads ifmap pixel ``i`` itself: ``offset + i * channels + j``.
        """
        if (self.filter_h == self.filter_w == self.stride_h == self.stride_w == 1
                and self.ofmap_w == self.ifmap_w and self.ofmap_h <= self.ifmap_h):
            pixel_major: np.ndarray = (self.offset + np.asarray(rows, dtype=np.int64) * self.channels
                                       + np.asarray(cols, dtype=np.int64))
            return pixel_major
        return self.placed(self.row_terms(rows), self.col_terms(cols))

    def row_terms(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per row: its part of the address, and the rows and columns of ifmap left below and right of
        its window's corner."""
        pr, pc = np.divmod(np.asarray(rows, dtype=np.int64), self.ofmap_w)
        base = (pr * self.stride_h * self.ifmap_w + pc * self.stride_w) * self.channels + self.offset
        return base, self.ifmap_h - pr * self.stride_h, self.ifmap_w - pc * self.stride_w

    def col_terms(self, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per column: its part of the address, and its window row and column ``(kr, kc)``."""
        kr, rest = np.divmod(np.asarray(cols, dtype=np.int64), self.filter_w * self.channels)
        kc, ch = np.divmod(rest, self.channels)
        return (kr * self.ifmap_w + kc) * self.channels + ch, kr, kc

    def placed(self, row: tuple[np.ndarray, ...], col: tuple[np.ndarray, ...],
               place_rows: Placement = np.asarray, place_cols: Placement = np.asarray) -> np.ndarray:
        """Addresses from :meth:`row_terms` and :meth:`col_terms`, each term put in place (broadcast
        against the other) by ``place_rows`` or ``place_cols``; the edge test is skipped when every
        window given lies inside the ifmap."""
        base_r, room_h, room_w = row
        base_c, kr, kc = col
        total: np.ndarray = place_rows(base_r) + place_cols(base_c)
        if not (room_h.size and kr.size) or (room_h.min() > kr.max() and room_w.min() > kc.max()):
            return total
        inside = (place_cols(kr) < place_rows(room_h)) & (place_cols(kc) < place_rows(room_w))
        addresses: np.ndarray = np.where(inside, total, NO_REQUEST)
        return addresses


@dataclass(frozen=True)
class AffineOperand:
    """A dense operand: ``address(i, j) = offset + i*row_stride + j*col_stride`` (filter, ofmap)."""

    offset: int
    n_rows: int
    n_cols: int
    row_stride: int
    col_stride: int
    kind: Literal["affine"] = "affine"

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, self.n_cols

    def addresses(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Addresses of entries ``(rows, cols)`` (broadcast together)."""
        return self.placed(self.row_terms(rows), self.col_terms(cols))

    def row_terms(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        return (self.offset + np.asarray(rows, dtype=np.int64) * self.row_stride,)

    def col_terms(self, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        return (np.asarray(cols, dtype=np.int64) * self.col_stride,)

    def placed(self, row: tuple[np.ndarray, ...], col: tuple[np.ndarray, ...],
               place_rows: Placement = np.asarray, place_cols: Placement = np.asarray) -> np.ndarray:
        """Addresses from :meth:`row_terms` and :meth:`col_terms`, each put in place as for a window."""
        total: np.ndarray = place_rows(row[0]) + place_cols(col[0])
        return total


OperandMatrix = WindowOperand | AffineOperand


@dataclass(frozen=True)
class OperandTiling:
    """How one operand matrix is cut into per-fold dense blocks of ``steps x lanes``.

    ``lane_axis`` names the operand axis laid across array ports, blocked by ``lane_fold``; the
    other axis runs over steps, blocked by ``step_fold`` (``"none"``: the whole axis every fold).
    A ``"row"`` fold block is ``array_rows`` long, a ``"col"`` block ``array_cols``.  Within a
    block, operand index ``start + s`` is step ``s`` and ``start + l`` is lane ``l``.
    ``prefetch_rollout``: the USER-mode prefetch order walks the stacked lane blocks along
    anti-diagonals (for operands whose demand is skewed) instead of row by row.
    """

    lane_axis: Literal["row", "col"]
    lane_fold: FoldAxis
    step_fold: FoldAxis
    lanes: int
    prefetch_rollout: bool


@dataclass(frozen=True)
class LayerMapping:
    """The mapping module's output for one layer: operands, folds, tilings and ideal compute figures."""

    layer: Layer
    dataflow: Dataflow
    array_rows: int
    array_cols: int
    spatial_rows: int
    spatial_cols: int
    temporal: int
    row_folds: int
    col_folds: int
    fold_order: tuple[np.ndarray, np.ndarray]
    """Row-fold and column-fold index of each fold, in execution order."""
    ifmap: OperandMatrix
    filter: OperandMatrix
    ofmap: OperandMatrix
    tilings: dict[OperandName, OperandTiling]
    mapping_efficiency: float
    """Mean over folds of the fraction of MAC units mapped."""
    compute_utilisation: float
    """Mean over folds of busy MAC-cycles over available MAC-cycles."""
    sram_reads_ifmap: int
    sram_reads_filter: int
    sram_writes_ofmap: int

    def operand(self, name: OperandName) -> OperandMatrix:
        return {"ifmap": self.ifmap, "filter": self.filter, "ofmap": self.ofmap}[name]

    @property
    def num_folds(self) -> int:
        return int(self.fold_order[0].size)


@dataclass(frozen=True)
class OperandTiming:
    """Where an operand's dense block sits in a fold's cycles.

    Step ``s`` of lane ``l`` is requested in fold cycle
    ``start_step + (flip_steps - 1 - s if flip_steps else s) + (l if skew else 0)``.
    """

    start_step: int
    flip_steps: int
    skew: bool


@dataclass(frozen=True)
class DramPort:
    """One SRAM<->DRAM interface."""

    words_per_cycle: int
    latency_cycles: int


@dataclass(frozen=True)
class NetworkSchedule:
    """The network module's output: fold timing and the DRAM ports."""

    fold_cycles: int
    timing: dict[OperandName, OperandTiming]
    ports: dict[OperandName, DramPort]
    bandwidth_mode: BandwidthMode


@dataclass(frozen=True)
class TraceSet:
    """A layer's six traces; column 0 of each is the cycle, the rest addresses or ``-1``."""

    ifmap_sram: np.ndarray
    filter_sram: np.ndarray
    ofmap_sram: np.ndarray
    ifmap_dram: np.ndarray
    filter_dram: np.ndarray
    ofmap_dram: np.ndarray

    NAMES = ("ifmap_sram", "filter_sram", "ofmap_sram", "ifmap_dram", "filter_dram", "ofmap_dram")

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.NAMES}


@dataclass(frozen=True)
class MemoryResult:
    """The memory module's output for one layer (cycles are SCALE-Sim's: SRAM from 1, DRAM may be negative)."""

    total_cycles: int
    stall_cycles: int
    sram_start_stop: dict[OperandName, tuple[float, float]]
    dram_start_stop: dict[OperandName, tuple[float, float]]
    dram_accesses: dict[OperandName, int]
    """Words read from DRAM (ifmap, filter) and written to it (ofmap)."""
    traces: TraceSet | None = field(default=None, compare=False)


def fold_axis_size(axis: FoldAxis, mapping: LayerMapping) -> int:
    """Block length along an axis selected by ``axis``."""
    return {"row": mapping.array_rows, "col": mapping.array_cols}.get(axis, 0)


def _axis_lengths(mapping: LayerMapping, name: OperandName) -> tuple[int, int]:
    """Operand length along the lane axis and along the step axis."""
    n_rows, n_cols = mapping.operand(name).shape
    return (n_rows, n_cols) if mapping.tilings[name].lane_axis == "row" else (n_cols, n_rows)


def dense_block_shape(mapping: LayerMapping, name: OperandName, row_fold: int, col_fold: int) -> tuple[int, int]:
    """``(steps, lanes used)`` of one fold's dense block."""
    tiling = mapping.tilings[name]
    lane_len, step_len = _axis_lengths(mapping, name)

    def extent(axis: FoldAxis, length: int) -> int:
        if axis == "none":
            return length
        size = fold_axis_size(axis, mapping)
        start = size * (row_fold if axis == "row" else col_fold)
        return max(0, min(start + size, length) - start)

    return extent(tiling.step_fold, step_len), extent(tiling.lane_fold, lane_len)


def _block_vectors(
    mapping: LayerMapping, name: OperandName, row_fold: int, col_fold: int
) -> tuple[np.ndarray, np.ndarray]:
    """Operand row and column indices of one fold's dense block, shaped to broadcast to ``steps x lanes``."""
    tiling = mapping.tilings[name]
    lane_len, step_len = _axis_lengths(mapping, name)

    def block(axis: FoldAxis, length: int) -> np.ndarray:
        if axis == "none":
            return np.arange(length, dtype=np.int64)
        size = fold_axis_size(axis, mapping)
        start = size * (row_fold if axis == "row" else col_fold)
        return np.arange(start, min(start + size, length), dtype=np.int64)

    lanes = block(tiling.lane_fold, lane_len)[None, :]
    steps = block(tiling.step_fold, step_len)[:, None]
    return (lanes, steps) if tiling.lane_axis == "row" else (steps, lanes)


def dense_block_indices(
    mapping: LayerMapping, name: OperandName, row_fold: int, col_fold: int
) -> tuple[np.ndarray, np.ndarray]:
    """Operand row and column indices (``steps x lanes_used`` each) of one fold's dense block."""
    rows, cols = _block_vectors(mapping, name, row_fold, col_fold)
    shape = np.broadcast_shapes(rows.shape, cols.shape)
    return np.broadcast_to(rows, shape), np.broadcast_to(cols, shape)


def dense_block(mapping: LayerMapping, name: OperandName, row_fold: int, col_fold: int) -> np.ndarray:
    """Addresses of one fold's dense block, ``steps x lanes_used`` (no padding, no skew)."""
    rows, cols = _block_vectors(mapping, name, row_fold, col_fold)
    block: np.ndarray = np.broadcast_to(mapping.operand(name).addresses(rows, cols),
                                        np.broadcast_shapes(rows.shape, cols.shape))
    return block


def fold_demand(
    mapping: LayerMapping, network: NetworkSchedule, name: OperandName, row_fold: int, col_fold: int
) -> np.ndarray:
    """One fold's demand for one operand: ``fold_cycles x lanes`` addresses, ``-1`` where idle."""
    block = dense_block(mapping, name, row_fold, col_fold)
    timing = network.timing[name]
    lanes = mapping.tilings[name].lanes
    out = np.full((network.fold_cycles, lanes), NO_REQUEST, dtype=np.int64)
    steps, used = block.shape
    s = np.arange(steps)[:, None]
    lane = np.arange(used)[None, :]
    rows = timing.start_step + (timing.flip_steps - 1 - s if timing.flip_steps else s)
    rows = rows + (lane if timing.skew else 0)
    out[rows, np.broadcast_to(lane, block.shape)] = block
    return out


def layer_demand(mapping: LayerMapping, network: NetworkSchedule, name: OperandName) -> np.ndarray:
    """The whole layer's demand for one operand, folds in execution order (for small layers and traces)."""
    row_folds, col_folds = mapping.fold_order
    if row_folds.size == 0:
        return np.full((0, mapping.tilings[name].lanes), NO_REQUEST, dtype=np.int64)
    return np.concatenate(
        [fold_demand(mapping, network, name, int(r), int(c)) for r, c in zip(row_folds, col_folds)]
    )


_FILL_CHUNK_ENTRIES = 1 << 18
"""Entries of the fetch order :func:`prefetch_chunks` computes at a time (bounds its temporaries)."""


def prefetch_chunks(mapping: LayerMapping, name: OperandName) -> Iterator[np.ndarray]:
    """:func:`prefetch_order` in consecutive pieces of about :data:`_FILL_CHUNK_ENTRIES` entries each,
    so a caller can walk the fetch order of a huge operand without holding it whole.

    Entry ``c`` of row ``r`` of the stacked lane blocks is step ``r % steps`` of lane
    ``(r // steps) * lanes + c``; a rollout reads diagonal ``d`` as rows ``d - c`` for ``c`` ascending.
    """
    tiling = mapping.tilings[name]
    matrix = mapping.operand(name)
    n_rows, n_cols = matrix.shape
    lane_len, step_len = (n_rows, n_cols) if tiling.lane_axis == "row" else (n_cols, n_rows)
    width = tiling.lanes
    height = math.ceil(lane_len / width) * step_len

    def entries(row: np.ndarray, col: np.ndarray) -> np.ndarray:
        block, step = np.divmod(row, step_len)
        lane = block * width + col
        inside = lane < lane_len
        lane = np.minimum(lane, lane_len - 1)
        addr = matrix.addresses(lane, step) if tiling.lane_axis == "row" else matrix.addresses(step, lane)
        return addr if inside.all() else np.where(inside, addr, NO_REQUEST)

    if not tiling.prefetch_rollout:
        rows_per_chunk = max(1, _FILL_CHUNK_ENTRIES // width)
        cols = np.arange(width, dtype=np.int64)[None, :]
        for first in range(0, height, rows_per_chunk):
            rows = np.arange(first, min(height, first + rows_per_chunk), dtype=np.int64)[:, None]
            yield entries(rows, cols).reshape(-1)
        return
    diagonals = height + width - 1
    per_chunk = max(1, _FILL_CHUNK_ENTRIES // min(height, width))
    for first in range(0, diagonals, per_chunk):
        d = np.arange(first, min(diagonals, first + per_chunk), dtype=np.int64)
        c_lo, c_hi = np.maximum(0, d - height + 1), np.minimum(width - 1, d)
        counts = c_hi - c_lo + 1
        starts = np.cumsum(counts) - counts
        col = np.repeat(c_lo - starts, counts) + np.arange(int(counts.sum()), dtype=np.int64)
        yield entries(np.repeat(d, counts) - col, col)


def prefetch_order(mapping: LayerMapping, name: OperandName) -> np.ndarray:
    """The USER-mode DRAM fetch order of a read operand: addresses with ``-1`` padding, flattened.

    The lane blocks (each the whole step axis x ``lanes`` ports, idle ports ``-1``) are stacked in
    block order, then read row by row, or along anti-diagonals (lower-left first) when the
    operand's tiling asks for a rollout.
    """
    return np.concatenate([np.zeros(0, dtype=np.int64), *prefetch_chunks(mapping, name)])


def antidiagonal_order(height: int, width: int) -> np.ndarray:
    """Flat indices of a ``height x width`` matrix read along anti-diagonals, lower-left first.

    Diagonal ``d`` holds the entries with ``row + col == d``; within it, rows descend.
    """
    if height == 1 or width == 1:
        return np.arange(height * width, dtype=np.int64)
    if height < width:
        d = np.arange(height + width - 1, dtype=np.int64)
        c_lo, c_hi = np.maximum(0, d - height + 1), np.minimum(width - 1, d)
        counts = c_hi - c_lo + 1
        col = np.repeat(c_lo, counts) + np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        short: np.ndarray = (np.repeat(d, counts) - col) * width + col
        return short
    cols = np.arange(width, dtype=np.int64)
    head = [(d - cols[: d + 1]) * width + cols[: d + 1] for d in range(width - 1)]
    middle = np.arange(width - 1, height, dtype=np.int64)[:, None] * width + cols[None, :] * (1 - width)
    tail = [(d - cols[d - height + 1:]) * width + cols[d - height + 1:] for d in range(height, height + width - 1)]
    return np.concatenate([*head, middle.reshape(-1), *tail])
