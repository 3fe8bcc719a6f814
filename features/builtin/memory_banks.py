"""Built-in ``memory_banks``: banked SRAMs and a DRAM bandwidth per interface, as an extension of the reference.

The reference network module's DRAM ports take each interface's own USER words per cycle; the reference
memory module serves the layer (with traces off a layer of the same shape as an earlier one reuses its
result, as the reference engine does); then each demand row's bank conflicts (requests to one bank beyond its
ports in that cycle) stretch the SRAM side: row ``i`` and every later row move by the extra cycles of rows
``0..i``.  The DRAM side is the reference's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from reference_sim import mapping as reference_mapping
from reference_sim import memory as reference_memory
from reference_sim import network as reference_network
from reference_sim.contract import (
    NO_REQUEST,
    OPERANDS,
    DramPort,
    FoldAxis,
    Hardware,
    Layer,
    LayerMapping,
    NetworkSchedule,
    OperandMatrix,
    OperandName,
    OperandTiming,
    _block_vectors,
    dense_block_shape,
    fold_axis_size,
)
from reference_sim.engine import LayerResult, check_work, layer_result, layer_shape

from ..api import FeatureRun, Params, TableRow
from ..semantics import BANKS_PARAM, BANKS_REPORT, INTERFACE_PARAMS, PORTS_PARAM


def run(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    """One result per layer and one ``BANKS_REPORT.csv`` row per layer."""
    banks, ports = int(params.get(BANKS_PARAM, 1)), int(params.get(PORTS_PARAM, 0))
    words = {op: int(params.get(INTERFACE_PARAMS[op], 0)) or hardware.dram_words_per_cycle for op in OPERANDS}
    shapes = [layer_shape(layer) for layer in layers]
    for index in sorted({shape: index for index, shape in reversed(list(enumerate(shapes)))}.values()):
        check_work(layers[index], hardware, index=index, traces=traces)
    results: list[LayerResult] = []
    rows: list[TableRow] = []
    done: dict[Layer, tuple[LayerResult, TableRow]] = {}
    for index, layer in enumerate(layers):
        earlier = None if traces else done.get(shapes[index])
        if earlier is not None:
            results.append(replace(earlier[0], index=index, name=layer.name))
            rows.append({**earlier[1], "layer_id": float(index)})
            continue
        mapped = reference_mapping.map_layer(layer, hardware)
        scheduled = interface_schedule(mapped, hardware, words)
        memory = reference_memory.simulate(mapped, scheduled, hardware, traces=traces)
        result = layer_result(layer, hardware, mapped, memory, index=index)
        extra, busy, conflict_rows = conflicts(mapped, scheduled, banks, ports)
        results.append(stretch(result, extra, busy, layer.macs * 100 / (hardware.array_rows * hardware.array_cols)))
        user = hardware.bandwidth_mode == "USER"
        rows.append({"layer_id": float(index), "conflict_cycles": float(extra.sum()),
                     **{f"{op}_conflict_rows": float(conflict_rows[op]) for op in OPERANDS},
                     **{f"{op}_dram_words_per_cycle": float(words[op] if user else 0) for op in OPERANDS}})
        if not traces:
            done[shapes[index]] = (results[-1], rows[-1])
    return FeatureRun(results, {BANKS_REPORT: rows})


def interface_schedule(mapped: LayerMapping, hardware: Hardware, words: dict[OperandName, int]) -> NetworkSchedule:
    """The reference schedule, each USER DRAM port at its interface's words per cycle (CALC unchanged)."""
    scheduled = reference_network.schedule(mapped, hardware)
    if hardware.bandwidth_mode != "USER":
        return scheduled
    ports = {op: DramPort(words[op], port.latency_cycles) for op, port in scheduled.ports.items()}
    return replace(scheduled, ports=ports)


def _fold_index(mapped: LayerMapping, axis: FoldAxis) -> np.ndarray:
    """Per fold, the index of the block that fold axis ``axis`` selects (0 for ``"none"``)."""
    row_folds, col_folds = mapped.fold_order
    return {"row": row_folds, "col": col_folds}.get(axis, np.zeros_like(row_folds))


def _side_axes(mapped: LayerMapping, name: OperandName) -> tuple[FoldAxis, FoldAxis]:
    """The fold axes that select an operand block's rows and its columns."""
    tiling = mapped.tilings[name]
    if tiling.lane_axis == "row":
        return tiling.lane_fold, tiling.step_fold
    return tiling.step_fold, tiling.lane_fold


def _side_ids(mapped: LayerMapping, axis: FoldAxis, residues: np.ndarray, rest: np.ndarray,
              banks: int) -> np.ndarray:
    """Per block that ``axis`` cuts from one operand axis (a single block for ``"none"``): an id shared by the
    blocks of equal length whose entries have equal ``rest`` and address residues modulo the banks equal up
    to a common shift (a shift only renames the banks)."""
    length = residues.size
    size = fold_axis_size(axis, mapped) or max(length, 1)
    blocks = max(1, -(-length // size))
    padded = np.full((2, blocks * size), -1, dtype=np.int64)
    padded[0, :length], padded[1, :length] = residues, rest
    res, codes = padded.reshape(2, blocks, size)
    keys = np.where(codes < 0, -1, (res - res[:, :1]) % banks * (int(rest.max(initial=0)) + 1) + codes)
    whole = np.ascontiguousarray(keys).view(np.dtype((np.void, keys.itemsize * size))).reshape(-1)
    _, inverse = np.unique(whole, return_inverse=True)
    return np.asarray(inverse).reshape(-1)


def _extents(mapped: LayerMapping, axis: FoldAxis, length: int) -> np.ndarray:
    """Per fold, the length of the block that ``axis`` selects from an operand axis of ``length``."""
    size = fold_axis_size(axis, mapped)
    if not size:
        return np.full(mapped.num_folds, length, dtype=np.int64)
    start = size * _fold_index(mapped, axis)
    extents: np.ndarray = np.maximum(0, np.minimum(start + size, length) - start)
    return extents


def _affine_terms(matrix: OperandMatrix) -> tuple[int, int, int] | None:
    """``(offset, row_stride, col_stride)`` when every entry ``(i, j)`` of the operand is a request for
    ``offset + i * row_stride + j * col_stride``: an affine operand, or a window operand whose windows all lie
    inside the ifmap, whose window elements are consecutive words (one filter row, or filter rows as wide as
    the ifmap) and whose ofmap pixels are evenly spaced (one ofmap row or column, or rows that continue each
    other); else None."""
    if matrix.kind == "affine":
        return matrix.offset, matrix.row_stride, matrix.col_stride
    inside = ((matrix.ofmap_h - 1) * matrix.stride_h + matrix.filter_h <= matrix.ifmap_h
              and (matrix.ofmap_w - 1) * matrix.stride_w + matrix.filter_w <= matrix.ifmap_w)
    consecutive = matrix.filter_h == 1 or matrix.filter_w == matrix.ifmap_w
    if not (inside and consecutive):
        return None
    if matrix.ofmap_h == 1 or matrix.stride_h * matrix.ifmap_w == matrix.ofmap_w * matrix.stride_w:
        return matrix.offset, matrix.stride_w * matrix.channels, 1
    if matrix.ofmap_w == 1:
        return matrix.offset, matrix.stride_h * matrix.ifmap_w * matrix.channels, 1
    return None


def _fold_classes(mapped: LayerMapping, name: OperandName, banks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per fold, a class of folds whose blocks have equal conflicts (the first fold of each class, and each
    fold's class).  An affine block's conflicts depend on its steps and lanes alone (each row's requests are
    an arithmetic run of addresses); a window block's on its shape, edges and addresses modulo the banks."""
    if mapped.num_folds == 1:
        return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    matrix = mapped.operand(name)
    row_axis, col_axis = _side_axes(mapped, name)
    n_rows, n_cols = matrix.shape
    if matrix.kind == "affine" or _affine_terms(matrix) is not None:
        keys = _extents(mapped, row_axis, n_rows) * (n_cols + 1) + _extents(mapped, col_axis, n_cols)
    else:
        base, room_h, room_w = matrix.row_terms(np.arange(n_rows, dtype=np.int64))
        col_base, kr, kc = matrix.col_terms(np.arange(n_cols, dtype=np.int64))
        row_rest = np.minimum(room_h, matrix.filter_h) * (matrix.filter_w + 1) + np.minimum(room_w, matrix.filter_w)
        row_ids = _side_ids(mapped, row_axis, base % banks, row_rest, banks)
        col_ids = _side_ids(mapped, col_axis, col_base % banks, kr * matrix.filter_w + kc, banks)
        keys = (row_ids[_fold_index(mapped, row_axis)] * (int(col_ids.max()) + 1)
                + col_ids[_fold_index(mapped, col_axis)])
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, np.asarray(inverse).reshape(-1)


def _row_loads(addresses: np.ndarray, at: np.ndarray, rows: int, banks: int) -> np.ndarray:
    """The busiest bank's requests in each of ``rows`` rows; ``at`` (shaped like ``addresses``) is each
    request's row, and ``NO_REQUEST`` addresses are none."""
    valid = addresses != NO_REQUEST
    every = bool(valid.all())
    bank = addresses % banks
    keys = (at * banks + bank).reshape(-1) if every else at[valid] * banks + bank[valid]
    load: np.ndarray = np.bincount(keys, minlength=rows * banks)[:rows * banks].reshape(rows, banks).max(axis=1)
    return load


def _run_loads(mapped: LayerMapping, scheduled: NetworkSchedule, name: OperandName, terms: tuple[int, int, int],
               banks: int) -> np.ndarray:
    """For an operand of affine ``terms`` (:func:`_affine_terms`): the busiest bank's requests in a row of
    ``n`` requests, for n = 0 .. lanes (:func:`_arithmetic_run_loads`).  A row's requests are consecutive
    lanes, each a fixed step of addresses on from the one before."""
    offset, row_stride, col_stride = terms
    timing, lanes = scheduled.timing[name], mapped.tilings[name].lanes
    lane, step = (row_stride, col_stride) if mapped.tilings[name].lane_axis == "row" else (col_stride, row_stride)
    if timing.skew:
        lane += step if timing.flip_steps else -step
    return _arithmetic_run_loads(offset + max(0, -lane) * (lanes - 1), lane, lanes, banks)


@functools.lru_cache(maxsize=256)
def _arithmetic_run_loads(first: int, step: int, lanes: int, banks: int) -> np.ndarray:
    """The busiest bank's requests among ``first``, ``first + step``, .. (n addresses), for n = 0 .. lanes: one
    run stands for every run of that step and length (a shift only renames the banks)."""
    n = np.arange(lanes + 1, dtype=np.int64)[:, None]
    t = np.arange(lanes, dtype=np.int64)[None, :]
    addresses = np.where(t < n, first + t * step, NO_REQUEST)
    loads = _row_loads(addresses, np.broadcast_to(n, addresses.shape), lanes + 1, banks)
    loads.flags.writeable = False
    return loads


def _affine_rows(timing: OperandTiming, steps: int, lanes: int) -> tuple[int, int]:
    """The first fold cycle row with a request of a full block of ``steps`` x ``lanes``, and the row after its
    last (the block is one row per step, moved one row per lane where it is skewed)."""
    first = timing.start_step + (timing.flip_steps - steps if timing.flip_steps else 0)
    return first, first + steps + (lanes - 1 if timing.skew else 0)


def _spread(per_requests: np.ndarray, timing: OperandTiming, steps: int, lanes: int, cycles: int) -> np.ndarray:
    """Per fold cycle row of a full block of ``steps`` x ``lanes``: ``per_requests[n]`` of the row's number n
    of requests (a skewed block's rows hold 1, 2, .. up to min(steps, lanes), then as many, then fewer)."""
    out = np.full(cycles, per_requests[0])
    first, end = _affine_rows(timing, steps, lanes)
    if not timing.skew:
        out[first:end] = per_requests[lanes]
        return out
    most = min(steps, lanes)
    out[first:first + most - 1] = per_requests[1:most]
    out[first + most - 1:end - most + 1] = per_requests[most]
    out[end - most + 1:end] = per_requests[most - 1:0:-1]
    return out


def _block_rows(mapped: LayerMapping, scheduled: NetworkSchedule, name: OperandName, rows: np.ndarray,
                cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A block's addresses (steps x lanes) and the fold cycle row each is requested in."""
    timing = scheduled.timing[name]
    addresses = np.asarray(mapped.operand(name).addresses(rows, cols))
    steps, lanes = addresses.shape
    s = np.arange(steps, dtype=np.int64)[:, None]
    lane = np.arange(lanes, dtype=np.int64)[None, :]
    at = timing.start_step + (timing.flip_steps - 1 - s if timing.flip_steps else s) + (lane if timing.skew else 0)
    return addresses, np.broadcast_to(at, addresses.shape)


def conflicts(mapped: LayerMapping, scheduled: NetworkSchedule, banks: int,
              ports: int) -> tuple[np.ndarray, dict[OperandName, tuple[int, int]], dict[OperandName, int]]:
    """Extra cycles of every demand row (the largest over the three SRAMs), each operand's first and last busy
    row, and each operand's number of rows with a conflict.  Each class of folds (:func:`_fold_classes`) is
    worked out once: an affine block from its requests per row, a window block request by request; then
    each distinct combination of the three operands' classes."""
    folds, cycles = mapped.num_folds, scheduled.fold_cycles
    row_folds, col_folds = mapped.fold_order
    busy: dict[OperandName, tuple[int, int]] = {}
    counted: dict[OperandName, int] = {}
    costs: list[tuple[np.ndarray, np.ndarray]] = []
    for name in OPERANDS:
        first, inverse = _fold_classes(mapped, name, banks)
        terms = _affine_terms(mapped.operand(name))
        runs = _run_loads(mapped, scheduled, name, terms, banks) if terms is not None else np.zeros(0, np.int64)
        cost = np.zeros((first.size, cycles), dtype=np.int64)
        span = np.zeros((first.size, 2), dtype=np.int64)
        for block, fold in enumerate(first.tolist()):
            if terms is not None:
                steps, lanes = dense_block_shape(mapped, name, int(row_folds[fold]), int(col_folds[fold]))
                span[block] = _affine_rows(scheduled.timing[name], steps, lanes) if steps and lanes else (0, 0)
            else:
                rows, cols = _block_vectors(mapped, name, int(row_folds[fold]), int(col_folds[fold]))
                addresses, at = _block_rows(mapped, scheduled, name, rows, cols)
                valid = at[addresses != NO_REQUEST]
                span[block] = (valid.min(), valid.max() + 1) if valid.size else (0, 0)
            if ports == 0:
                continue
            load = runs if terms is not None else _row_loads(addresses, at, cycles, banks)
            per_row = np.maximum(0, -(-load // ports) - 1)
            cost[block] = (_spread(per_row, scheduled.timing[name], steps, lanes, cycles) if terms is not None
                           else per_row)
        counted[name] = int(np.bincount(inverse, minlength=first.size) @ (cost > 0).sum(axis=1))
        busy_folds = np.flatnonzero(span[inverse, 1] > span[inverse, 0])
        busy[name] = ((int(busy_folds[0] * cycles + span[inverse[busy_folds[0]], 0]),
                       int(busy_folds[-1] * cycles + span[inverse[busy_folds[-1]], 1] - 1))
                      if busy_folds.size else (0, 0))
        costs.append((cost, inverse))
    keys = np.zeros(folds, dtype=np.int64)
    for cost, inverse in costs:
        keys = keys * cost.shape[0] + inverse
    combos, combo_of_fold = np.zeros(1, dtype=np.int64), np.zeros(folds, dtype=np.int64)
    if keys.any():
        _, combos, combo_of_fold = np.unique(keys, return_index=True, return_inverse=True)
    extra = np.zeros((combos.size, cycles), dtype=np.int64)
    for cost, inverse in costs:
        per_fold = cost[inverse[combos]]
        extra = np.maximum(extra, per_fold)
    return extra[np.asarray(combo_of_fold).reshape(-1)].reshape(-1), busy, counted


def stretch(result: LayerResult, extra: np.ndarray, busy: dict[OperandName, tuple[int, int]],
            macs_pct_per_pe: float) -> LayerResult:
    """``result`` with row ``i`` of every SRAM trace, and the SRAM start and stop cycles, moved by the extra
    cycles of rows ``0..i``; total and stall cycles grow by all of them."""
    added = np.cumsum(extra)
    total = int(added[-1]) if added.size else 0
    if total == 0:
        return result
    sram_start_stop = {op: (start + int(added[busy[op][0]]), stop + int(added[busy[op][1]]))
                       for op, (start, stop) in result.sram_start_stop.items()}
    traces = result.traces
    if traces is not None:
        moved = {}
        for key in ("ifmap_sram", "filter_sram", "ofmap_sram"):
            trace = np.array(getattr(traces, key), copy=True)
            trace[:, 0] += added
            moved[key] = trace
        traces = replace(traces, **moved)
    return replace(result, total_cycles=result.total_cycles + total, stall_cycles=result.stall_cycles + total,
                   overall_util_pct=macs_pct_per_pe / (result.total_cycles + total),
                   sram_start_stop=sram_start_stop, traces=traces)
