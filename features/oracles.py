"""Exact expected results computed from the reference, where a feature has one.

Written apart from the built-ins (a fault in a built-in is not mirrored here): energy is the
reference's own access counts times the table; batch is the reference run on the stacked layer, or on
each image with its offsets, merged as ``description.md`` says; cores is the reference run on each core's
partition (under CALC and USER bandwidth: the split of the bandwidth is static), merged; sparsity is the
reference run on the sparse layer, with the filter and metadata words counted from the definitions.
``memory_banks`` has no oracle (its bank conflicts are judged by properties).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reference_sim import mapping as reference_mapping
from reference_sim.contract import NO_REQUEST, OPERANDS, Hardware, Layer, TraceSet
from reference_sim.engine import LayerResult, simulate, simulate_layer

from .api import Case, FeatureRun, TableRow
from .semantics import (
    CORES_PARAM,
    CORES_REPORT,
    ENERGY_PJ_COLUMNS,
    ENERGY_REPORT,
    GROUP_PARAM,
    KEPT_PARAM,
    SPARSITY_REPORT,
    SPLIT_PARAM,
    core_hardware,
    core_layer,
    core_ranges,
    image_hardware,
    metadata_bits,
    metadata_words,
    sparse_layer,
    stackable,
    stacked_layer,
)

Oracle = Callable[[Case, bool], FeatureRun]


def energy_oracle(case: Case, traces: bool) -> FeatureRun:
    results = simulate(case.layers, case.hardware, traces=traces)
    pes = case.hardware.array_rows * case.hardware.array_cols
    rows: list[TableRow] = []
    for layer, result in zip(case.layers, results):
        sram, dram = result.sram_accesses, result.dram_accesses
        counts = {
            "macs": layer.ofmap_h * layer.ofmap_w * layer.num_filters * layer.filter_h * layer.filter_w
            * layer.channels,
            "ifmap_sram_reads_words": sram["ifmap"], "filter_sram_reads_words": sram["filter"],
            "ofmap_sram_writes_words": sram["ofmap"], "ifmap_sram_writes_words": dram["ifmap"],
            "filter_sram_writes_words": dram["filter"], "ofmap_sram_reads_words": dram["ofmap"],
            "dram_reads_words": dram["ifmap"] + dram["filter"], "dram_writes_words": dram["ofmap"],
        }
        counts["idle_pe_cycles"] = pes * result.total_cycles - counts["macs"]
        row: TableRow = {"layer_id": float(result.index), **{k: float(v) for k, v in counts.items()}}
        for column, (count, coefficient) in ENERGY_PJ_COLUMNS.items():
            row[column] = counts[count] * float(case.params[coefficient])
        row["total_pj"] = sum(row[column] for column in ENERGY_PJ_COLUMNS)
        rows.append(row)
    return FeatureRun(results, {ENERGY_REPORT: rows})


def _back_to_back(layer: Layer, hardware: Hardware, count: int, index: int, traces: bool) -> LayerResult:
    runs = [simulate_layer(layer, image_hardware(hardware, layer, b), index=index, traces=traces)
            for b in range(count)]
    starts = [sum(r.total_cycles + 1 for r in runs[:b]) for b in range(count)]
    total = starts[-1] + runs[-1].total_cycles
    joined = None
    if traces:
        joined = TraceSet(**{
            key: np.concatenate([np.asarray(getattr(r.traces, key)) + np.eye(1, np.asarray(getattr(r.traces, key))
                                                                            .shape[1]) * start
                                 for r, start in zip(runs, starts)])
            for key in TraceSet.NAMES})
    return LayerResult(
        index=index, name=layer.name, total_cycles=total, stall_cycles=sum(r.stall_cycles for r in runs),
        overall_util_pct=count * layer.macs * 100 / (total * hardware.array_rows * hardware.array_cols),
        mapping_efficiency_pct=runs[0].mapping_efficiency_pct, compute_util_pct=runs[0].compute_util_pct,
        sram_accesses={op: sum(r.sram_accesses[op] for r in runs) for op in OPERANDS},
        sram_start_stop={op: (runs[0].sram_start_stop[op][0], runs[-1].sram_start_stop[op][1] + starts[-1])
                         for op in OPERANDS},
        dram_start_stop={op: (runs[0].dram_start_stop[op][0], runs[-1].dram_start_stop[op][1] + starts[-1])
                         for op in OPERANDS},
        dram_accesses={op: sum(r.dram_accesses[op] for r in runs) for op in OPERANDS},
        traces=joined,
    )


def batch_oracle(case: Case, traces: bool) -> FeatureRun:
    count = int(case.params["batch_images"])
    results = []
    for index, layer in enumerate(case.layers):
        if count == 1:
            results.append(simulate_layer(layer, case.hardware, index=index, traces=traces))
        elif stackable(layer):
            results.append(simulate_layer(stacked_layer(layer, count), case.hardware, index=index, traces=traces))
        else:
            results.append(_back_to_back(layer, case.hardware, count, index, traces))
    return FeatureRun(results)


def _merged_trace(traces: list[np.ndarray | None], widths: list[int]) -> np.ndarray:
    rows: dict[tuple[float, int], dict[int, np.ndarray]] = {}
    for core, trace in enumerate(traces):
        if trace is None:
            continue
        seen: dict[float, int] = {}
        for row in np.asarray(trace, dtype=np.float64):
            k = seen.get(float(row[0]), 0)
            seen[float(row[0])] = k + 1
            rows.setdefault((float(row[0]), k), {})[core] = row[1:]
    out = np.full((len(rows), 1 + sum(widths)), float(NO_REQUEST))
    starts = np.concatenate([[1], 1 + np.cumsum(widths)])
    for position, key in enumerate(sorted(rows)):
        out[position, 0] = key[0]
        for core, cells in rows[key].items():
            out[position, starts[core]:starts[core] + cells.size] = cells
    return out


def cores_oracle(case: Case, traces: bool) -> FeatureRun:
    cores, axis = int(case.params[CORES_PARAM]), int(case.params[SPLIT_PARAM])
    hardware = case.hardware
    results: list[LayerResult] = []
    table: list[TableRow] = []
    for index, layer in enumerate(case.layers):
        runs: list[LayerResult | None] = []
        folds: list[int] = []
        for core, (first, stop) in enumerate(core_ranges(layer, cores, axis)):
            core_hw = core_hardware(hardware, layer, axis, first, core, cores)
            part = core_layer(layer, axis, first, stop) if stop > first else None
            result = None if part is None else simulate_layer(part, core_hw, index=index, traces=traces)
            runs.append(result)
            row: TableRow = {"layer_id": float(index), "core_id": float(core), "first_unit": float(first),
                             "units": float(stop - first), "dram_words_per_cycle": float(core_hw.dram_words_per_cycle)}
            sram = result.sram_accesses if result else dict.fromkeys(OPERANDS, 0)
            dram = result.dram_accesses if result else dict.fromkeys(OPERANDS, 0)
            row.update({"total_cycles": float(result.total_cycles if result else 0),
                        "stall_cycles": float(result.stall_cycles if result else 0),
                        "macs": float(part.macs if part else 0),
                        "ifmap_sram_reads_words": float(sram["ifmap"]),
                        "filter_sram_reads_words": float(sram["filter"]),
                        "ofmap_sram_writes_words": float(sram["ofmap"]),
                        "ifmap_dram_reads_words": float(dram["ifmap"]),
                        "filter_dram_reads_words": float(dram["filter"]),
                        "ofmap_dram_writes_words": float(dram["ofmap"])})
            table.append(row)
            if part is not None:
                folds.append(reference_mapping.map_layer(part, core_hw).num_folds)
        busy = [r for r in runs if r is not None]
        if cores == 1:
            results.append(busy[0])
            continue
        slowest = max(busy, key=lambda r: r.total_cycles)
        total = slowest.total_cycles
        merged = None
        if traces:
            lanes = reference_mapping.map_layer(layer, hardware).tilings
            arrays = {}
            for key in TraceSet.NAMES:
                got = [None if r is None or r.traces is None else np.asarray(getattr(r.traces, key)) for r in runs]
                sram_lanes = lanes[key.split("_")[0]].lanes if key.endswith("_sram") else 0  # type: ignore[index]
                widths = [sram_lanes or (0 if g is None else g.shape[1] - 1) for g in got]
                arrays[key] = _merged_trace(got, widths)
            merged = TraceSet(**arrays)
        results.append(LayerResult(
            index=index, name=layer.name, total_cycles=total, stall_cycles=slowest.stall_cycles,
            overall_util_pct=layer.macs * 100 / (total * hardware.array_rows * hardware.array_cols * cores),
            mapping_efficiency_pct=sum(r.mapping_efficiency_pct * f for r, f in zip(busy, folds)) / sum(folds),
            compute_util_pct=sum(r.compute_util_pct * f for r, f in zip(busy, folds)) / sum(folds),
            sram_accesses={op: sum(r.sram_accesses[op] for r in busy) for op in OPERANDS},
            sram_start_stop={op: (min(r.sram_start_stop[op][0] for r in busy),
                                  max(r.sram_start_stop[op][1] for r in busy)) for op in OPERANDS},
            dram_start_stop={op: (min(r.dram_start_stop[op][0] for r in busy),
                                  max(r.dram_start_stop[op][1] for r in busy)) for op in OPERANDS},
            dram_accesses={op: sum(r.dram_accesses[op] for r in busy) for op in OPERANDS},
            traces=merged))
    return FeatureRun(results, {CORES_REPORT: table})


def sparsity_oracle(case: Case, traces: bool) -> FeatureRun:
    kept, group = int(case.params[KEPT_PARAM]), int(case.params[GROUP_PARAM])
    sparse = [sparse_layer(layer, kept, group) for layer in case.layers]
    results = simulate(sparse, case.hardware, traces=traces)
    table: list[TableRow] = []
    for index, (layer, small) in enumerate(zip(case.layers, sparse)):
        meta = metadata_words(layer, kept, group, case.hardware.word_bytes)
        table.append({"layer_id": float(index), "dense_macs": float(layer.macs), "macs": float(small.macs),
                      "dense_filter_words": float(layer.window * layer.num_filters),
                      "filter_words": float(small.window * layer.num_filters),
                      "metadata_bits_per_nonzero": float(metadata_bits(kept, group)), "metadata_words": float(meta),
                      "filter_and_metadata_words": float(small.window * layer.num_filters + meta)})
    return FeatureRun(results, {SPARSITY_REPORT: table})


ORACLES: dict[str, Oracle] = {"energy": energy_oracle, "batch": batch_oracle, "cores": cores_oracle,
                              "sparsity": sparsity_oracle}
