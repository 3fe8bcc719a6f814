"""Exact expected results computed from the reference, where a feature has one.

Written apart from the built-ins (a fault in a built-in is not mirrored here): energy is the
reference's own access counts times the table; batch is the reference run on the stacked layer, or on
each image with its offsets, merged as ``description.md`` says.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reference_sim.contract import OPERANDS, Hardware, Layer, TraceSet
from reference_sim.engine import LayerResult, simulate, simulate_layer

from .api import Case, FeatureRun, TableRow
from .semantics import ENERGY_PJ_COLUMNS, ENERGY_REPORT, image_hardware, stackable, stacked_layer

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


ORACLES: dict[str, Oracle] = {"energy": energy_oracle, "batch": batch_oracle}
