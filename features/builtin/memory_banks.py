"""Built-in ``memory_banks``: banked SRAMs and a DRAM bandwidth per interface, as an extension of the reference.

The reference network module's DRAM ports take each interface's own USER words per cycle; the reference
memory module serves the layer (with traces off a layer of the same shape as an earlier one reuses its
result, as the reference engine does); then each demand row's bank conflicts (requests to one bank beyond its
ports in that cycle) stretch the SRAM side: row ``i`` and every later row move by the extra cycles of rows
``0..i``.  The DRAM side is the reference's.
"""

from __future__ import annotations

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
    Hardware,
    Layer,
    LayerMapping,
    NetworkSchedule,
    OperandName,
    _block_vectors,
)
from reference_sim.engine import LayerResult, check_work, layer_result, layer_shape

from ..api import FeatureRun, Params, TableRow
from ..semantics import BANKS_PARAM, BANKS_REPORT, INTERFACE_PARAMS, PORTS_PARAM


def run(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    """One result per layer and one ``BANKS_REPORT.csv`` row per layer."""
    banks, ports = int(params.get(BANKS_PARAM, 1)), int(params.get(PORTS_PARAM, 0))
    words = {op: int(params.get(INTERFACE_PARAMS[op], 0)) or hardware.dram_words_per_cycle for op in OPERANDS}
    for index, layer in enumerate(layers):
        check_work(layer, hardware, index=index, traces=traces)
    results: list[LayerResult] = []
    rows: list[TableRow] = []
    done: dict[Layer, tuple[LayerResult, TableRow]] = {}
    for index, layer in enumerate(layers):
        earlier = None if traces else done.get(layer_shape(layer))
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
            done[layer_shape(layer)] = (results[-1], rows[-1])
    return FeatureRun(results, {BANKS_REPORT: rows})


def interface_schedule(mapped: LayerMapping, hardware: Hardware, words: dict[OperandName, int]) -> NetworkSchedule:
    """The reference schedule, each USER DRAM port at its interface's words per cycle (CALC unchanged)."""
    scheduled = reference_network.schedule(mapped, hardware)
    if hardware.bandwidth_mode != "USER":
        return scheduled
    ports = {op: DramPort(words[op], port.latency_cycles) for op, port in scheduled.ports.items()}
    return replace(scheduled, ports=ports)


def _fold_blocks(mapped: LayerMapping, name: OperandName) -> tuple[np.ndarray, np.ndarray]:
    """Per fold, which distinct operand block it reads (index into the returned first folds): folds that
    select the same block of the operand demand the same addresses."""
    tiling = mapped.tilings[name]
    row_folds, col_folds = mapped.fold_order
    pick = {"row": row_folds, "col": col_folds, "none": np.zeros_like(row_folds)}
    keys = np.column_stack([pick[tiling.lane_fold], pick[tiling.step_fold]])
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _bank_key(mapped: LayerMapping, name: OperandName, rows: np.ndarray, cols: np.ndarray,
              banks: int) -> tuple[object, ...]:
    """What a block's conflicts depend on: its shape and its addresses modulo the banks (an affine block's
    first address; a window block's per-row and per-column address terms and edge limits)."""
    matrix = mapped.operand(name)
    shape = (rows.size, cols.size)
    if rows.size == 0 or cols.size == 0:
        return (shape,)
    if matrix.kind == "affine":
        return shape, int(matrix.addresses(rows.reshape(-1)[:1], cols.reshape(-1)[:1])[0]) % banks
    base, room_h, room_w = matrix.row_terms(rows.reshape(-1))
    col_base, kr, kc = matrix.col_terms(cols.reshape(-1))
    return (shape, (base % banks).tobytes(), np.minimum(room_h, matrix.filter_h).tobytes(),
            np.minimum(room_w, matrix.filter_w).tobytes(), (col_base % banks).tobytes(), kr.tobytes(), kc.tobytes())


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
    row, and each operand's number of rows with a conflict.  Each distinct block is worked out once per
    distinct :func:`_bank_key`."""
    folds, cycles = mapped.num_folds, scheduled.fold_cycles
    row_folds, col_folds = mapped.fold_order
    extra = np.zeros((folds, cycles), dtype=np.int64)
    busy: dict[OperandName, tuple[int, int]] = {}
    counted: dict[OperandName, int] = {}
    for name in OPERANDS:
        first, inverse = _fold_blocks(mapped, name)
        cost = np.zeros((first.size, cycles), dtype=np.int64)
        used = np.zeros((first.size, cycles), dtype=bool)
        done: dict[tuple[object, ...], int] = {}
        for block, fold in enumerate(first.tolist()):
            rows, cols = _block_vectors(mapped, name, int(row_folds[fold]), int(col_folds[fold]))
            key = _bank_key(mapped, name, rows, cols, banks)
            if key in done:
                cost[block], used[block] = cost[done[key]], used[done[key]]
                continue
            done[key] = block
            addresses, at = _block_rows(mapped, scheduled, name, rows, cols)
            valid = addresses != NO_REQUEST
            every = bool(valid.all())
            if every:
                used[block, int(at.min()):int(at.max()) + 1] = True
            else:
                used[block] = np.bincount(at[valid], minlength=cycles)[:cycles] > 0
            if ports == 0:
                continue
            bank = addresses % banks
            keys = (at * banks + bank).reshape(-1) if every else at[valid] * banks + bank[valid]
            load = np.bincount(keys, minlength=cycles * banks).reshape(cycles, banks).max(axis=1)
            cost[block] = np.maximum(0, -(-load // ports) - 1)
        per_fold = cost[inverse]
        extra = np.maximum(extra, per_fold)
        counted[name] = int((per_fold > 0).sum())
        busy_rows = np.flatnonzero(used[inverse].reshape(-1))
        busy[name] = (int(busy_rows[0]), int(busy_rows[-1])) if busy_rows.size else (0, 0)
    return extra.reshape(-1), busy, counted


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
