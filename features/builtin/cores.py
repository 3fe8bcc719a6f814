"""Built-in ``cores``: C identical arrays share each layer, as an extension of the reference.

Each core runs the reference on its own partition of the layer (a block of filters or of ofmap rows, a
layer of that shape with its operands' offsets) with its share of the USER DRAM bandwidth; the layer's
figures merge the cores' (cycles of the slowest core, accesses summed) and its traces put the cores'
ports side by side, row by row in cycle order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from reference_sim import mapping as reference_mapping
from reference_sim.contract import NO_REQUEST, OPERANDS, Hardware, Layer, TraceSet
from reference_sim.engine import LayerResult, check_work, layer_shape, simulate_layer

from ..api import FeatureRun, Params, TableRow
from ..semantics import CORES_PARAM, CORES_REPORT, SPLIT_FILTERS, SPLIT_PARAM


def run(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    """One merged result per layer and one ``CORES_REPORT.csv`` row per core of each layer."""
    cores = int(params.get(CORES_PARAM, 1))
    axis = int(params.get(SPLIT_PARAM, SPLIT_FILTERS))
    shapes = [layer_shape(layer) for layer in layers]
    plans = {index: partitions(layers[index], hardware, cores, axis)
             for index in sorted({shape: index for index, shape in reversed(list(enumerate(shapes)))}.values())}
    for index, plan in plans.items():
        for part, part_hw in plan:
            if part is not None:
                check_work(part, part_hw, index=index, traces=traces)
    results: list[LayerResult] = []
    rows: list[TableRow] = []
    done: dict[Layer, tuple[LayerResult, list[TableRow]]] = {}
    for index, layer in enumerate(layers):
        earlier = None if traces else done.get(shapes[index])
        if earlier is not None:
            results.append(replace(earlier[0], index=index, name=layer.name))
            rows += [{**row, "layer_id": float(index)} for row in earlier[1]]
            continue
        plan = plans[index] if index in plans else partitions(layer, hardware, cores, axis)
        per_core = [None if part is None else simulate_layer(part, part_hw, index=index, traces=traces)
                    for part, part_hw in plan]
        results.append(per_core[0] if cores == 1 and per_core[0] is not None
                       else merge_cores(layer, hardware, plan, per_core, index))
        rows += core_rows(layer, axis, plan, per_core, index, cores)
        if not traces:
            done[shapes[index]] = (results[-1], rows[-cores:])
    return FeatureRun(results, {CORES_REPORT: rows})


def partitions(layer: Layer, hardware: Hardware, cores: int,
               axis: int) -> list[tuple[Layer | None, Hardware]]:
    """Per core: the layer it runs (``None`` when its block is empty) and the hardware it sees."""
    by_filters = axis == SPLIT_FILTERS
    units = layer.num_filters if by_filters else layer.ofmap_h
    hangs = not by_filters and (layer.ofmap_h - 1) * layer.stride_h + layer.filter_h > layer.ifmap_h
    cut = units - int(hangs)
    starts = (np.arange(cores, dtype=np.int64) * cut) // cores
    stops = np.append(starts[1:], units)
    words = hardware.dram_words_per_cycle
    share = np.maximum(1, words // cores + (np.arange(cores) < words % cores))
    plan: list[tuple[Layer | None, Hardware]] = []
    for core, (first, stop) in enumerate(zip(starts.tolist(), stops.tolist())):
        if by_filters:
            part = replace(layer, num_filters=stop - first) if stop > first else None
            part_hw = replace(hardware, filter_offset=hardware.filter_offset + first * layer.window,
                              ofmap_offset=hardware.ofmap_offset + first * layer.ofmap_pixels)
        else:
            rows = min((stop - first - 1) * layer.stride_h + layer.filter_h, layer.ifmap_h - first * layer.stride_h)
            part = replace(layer, ifmap_h=rows) if stop > first else None
            skipped = first * layer.stride_h * layer.ifmap_w * layer.channels
            part_hw = replace(hardware, ifmap_offset=hardware.ifmap_offset + skipped,
                              ofmap_offset=hardware.ofmap_offset + first * layer.ofmap_w * layer.num_filters)
        plan.append((part, replace(part_hw, dram_words_per_cycle=int(share[core]))))
    return plan


def merge_cores(layer: Layer, hardware: Hardware, plan: Sequence[tuple[Layer | None, Hardware]],
                per_core: Sequence[LayerResult | None], index: int) -> LayerResult:
    """The whole layer: total cycles and stalls of the slowest core (the first, on a tie), accesses summed,
    start the earliest and stop the latest, mapping efficiency and compute utilisation averaged over all the
    cores' folds, overall utilisation over all C arrays."""
    busy = [(r, part) for r, (part, _) in zip(per_core, plan) if r is not None and part is not None]
    cycles = np.array([r.total_cycles for r, _ in busy])
    slowest = busy[int(np.argmax(cycles))][0]
    folds = np.array([reference_mapping.map_layer(part, hardware).num_folds for _, part in busy], dtype=np.float64)
    efficiency = np.array([r.mapping_efficiency_pct for r, _ in busy])
    utilisation = np.array([r.compute_util_pct for r, _ in busy])
    total = int(cycles.max())
    pes = hardware.array_rows * hardware.array_cols * len(plan)

    def span(name: str) -> dict:  # type: ignore[type-arg]
        return {op: (min(getattr(r, name)[op][0] for r, _ in busy), max(getattr(r, name)[op][1] for r, _ in busy))
                for op in OPERANDS}

    merged = None
    if slowest.traces is not None:
        tilings = reference_mapping.map_layer(layer, hardware).tilings
        sram_lanes: dict[str, int] = {f"{op}_sram": tilings[op].lanes for op in OPERANDS}
        merged = TraceSet(**{key: side_by_side([None if r is None or r.traces is None else getattr(r.traces, key)
                                                for r in per_core], lanes=sram_lanes.get(key, 0))
                             for key in TraceSet.NAMES})
    return LayerResult(
        index=index, name=layer.name, total_cycles=total, stall_cycles=slowest.stall_cycles,
        overall_util_pct=layer.macs * 100 / (total * pes),
        mapping_efficiency_pct=float((efficiency * folds).sum() / folds.sum()),
        compute_util_pct=float((utilisation * folds).sum() / folds.sum()),
        sram_accesses={op: sum(r.sram_accesses[op] for r, _ in busy) for op in OPERANDS},
        sram_start_stop=span("sram_start_stop"), dram_start_stop=span("dram_start_stop"),
        dram_accesses={op: sum(r.dram_accesses[op] for r, _ in busy) for op in OPERANDS},
        traces=merged,
    )


def side_by_side(traces: Sequence[np.ndarray | None], lanes: int) -> np.ndarray:
    """The cores' traces as one: a row per (cycle, k) where some core has its k-th row of that cycle, in cycle
    order; core c's columns follow core c-1's (``lanes`` each for an SRAM trace, an idle core's all ``-1``; a
    DRAM trace's own width, none for an idle core); ``-1`` where a core has no such row."""
    parts = [np.asarray(t, dtype=np.float64) for t in traces if t is not None]
    widths = [lanes if lanes else (0 if t is None else np.asarray(t).shape[1] - 1) for t in traces]
    keyed = []
    for trace in parts:
        cycles = trace[:, 0]
        order = np.argsort(cycles, kind="stable")
        sorted_cycles = cycles[order]
        first = np.concatenate([[True], sorted_cycles[1:] != sorted_cycles[:-1]])
        run_start = np.maximum.accumulate(np.where(first, np.arange(cycles.size), 0))
        occurrence = np.empty(cycles.size, dtype=np.int64)
        occurrence[order] = np.arange(cycles.size) - run_start
        keyed.append((cycles, occurrence))
    all_keys = np.unique(np.concatenate([np.column_stack(k) for k in keyed]), axis=0) if keyed else np.zeros((0, 2))
    depth = int(all_keys[:, 1].max()) + 1 if all_keys.size else 1
    flat = all_keys[:, 0] * depth + all_keys[:, 1]
    out = np.full((all_keys.shape[0], 1 + sum(widths)), float(NO_REQUEST))
    out[:, 0] = all_keys[:, 0]
    column = 1
    position = 0
    for given, width in zip(traces, widths):
        if given is not None:
            cycles, occurrence = keyed[position]
            position += 1
            where = np.searchsorted(flat, cycles * depth + occurrence)
            out[where, column:column + np.asarray(given).shape[1] - 1] = np.asarray(given)[:, 1:]
        column += width
    return out


def core_rows(layer: Layer, axis: int, plan: Sequence[tuple[Layer | None, Hardware]],
              per_core: Sequence[LayerResult | None], index: int, cores: int) -> list[TableRow]:
    """``CORES_REPORT.csv`` rows of one layer, one per core (an idle core's figures are 0)."""
    rows: list[TableRow] = []
    first = 0
    for core, ((part, part_hw), result) in enumerate(zip(plan, per_core)):
        units = 0 if part is None else (part.num_filters if axis == SPLIT_FILTERS else part.ofmap_h)
        row: TableRow = {"layer_id": float(index), "core_id": float(core), "first_unit": float(first),
                         "units": float(units), "dram_words_per_cycle": float(part_hw.dram_words_per_cycle)}
        figures = [0.0] * 9
        if result is not None and part is not None:
            figures = [float(v) for v in (result.total_cycles, result.stall_cycles, part.macs,
                                          result.sram_accesses["ifmap"], result.sram_accesses["filter"],
                                          result.sram_accesses["ofmap"], result.dram_accesses["ifmap"],
                                          result.dram_accesses["filter"], result.dram_accesses["ofmap"])]
        row.update(zip(("total_cycles", "stall_cycles", "macs", "ifmap_sram_reads_words", "filter_sram_reads_words",
                        "ofmap_sram_writes_words", "ifmap_dram_reads_words", "filter_dram_reads_words",
                        "ofmap_dram_writes_words"), figures))
        rows.append(row)
        first += units
    return rows
