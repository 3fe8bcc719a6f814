"""Built-in ``energy``: the reference run, and per layer its own access counts times an Accelergy-style table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reference_sim.contract import Hardware, Layer
from reference_sim.engine import LayerResult, simulate

from ..api import FeatureRun, Params, TableRow
from ..semantics import ENERGY_COUNT_COLUMNS, ENERGY_PJ_COLUMNS, ENERGY_REPORT


def run(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    """The reference's results, unchanged, and one ``ENERGY_REPORT.csv`` row per layer."""
    results = simulate(layers, hardware, traces=traces)
    return FeatureRun(results, {ENERGY_REPORT: energy_rows(layers, hardware, results, params)})


def count_matrix(layers: Sequence[Layer], hardware: Hardware, results: Sequence[LayerResult]) -> np.ndarray:
    """Per layer (rows), the counts of :data:`ENERGY_COUNT_COLUMNS` (columns) from the run's own figures."""
    macs = np.array([layer.macs for layer in layers], dtype=np.int64)
    cycles = np.array([r.total_cycles for r in results], dtype=np.int64)
    sram = np.array([[r.sram_accesses[op] for op in ("ifmap", "filter", "ofmap")] for r in results],
                    dtype=np.int64).reshape(-1, 3)
    dram = np.array([[r.dram_accesses[op] for op in ("ifmap", "filter", "ofmap")] for r in results],
                    dtype=np.int64).reshape(-1, 3)
    idle = hardware.array_rows * hardware.array_cols * cycles - macs
    return np.column_stack([
        macs, idle,
        sram[:, 0], sram[:, 1], dram[:, 2],
        dram[:, 0], dram[:, 1], sram[:, 2],
        dram[:, 0] + dram[:, 1], dram[:, 2],
    ])


def energy_rows(layers: Sequence[Layer], hardware: Hardware, results: Sequence[LayerResult],
                params: Params) -> list[TableRow]:
    """The energy table's rows: counts, pJ per column (count times coefficient) and the total."""
    counts = count_matrix(layers, hardware, results)
    columns = list(ENERGY_COUNT_COLUMNS)
    which = np.array([columns.index(count) for count, _ in ENERGY_PJ_COLUMNS.values()])
    coefficients = np.array([float(params[coefficient]) for _, coefficient in ENERGY_PJ_COLUMNS.values()])
    energy = counts[:, which] * coefficients[None, :]
    total = energy.sum(axis=1)
    rows: list[TableRow] = []
    for position, result in enumerate(results):
        row: TableRow = {"layer_id": float(result.index)}
        row.update({name: float(counts[position, i]) for i, name in enumerate(ENERGY_COUNT_COLUMNS)})
        row.update({name: float(energy[position, i]) for i, name in enumerate(ENERGY_PJ_COLUMNS)})
        row["total_pj"] = float(total[position])
        rows.append(row)
    return rows
