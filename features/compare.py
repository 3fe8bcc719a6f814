"""Field-by-field and trace-by-trace comparison of two layer results, naming the first difference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reference_sim.contract import OPERANDS, TraceSet
from reference_sim.engine import LayerResult

REL_TOL = 1e-9

_FIELD_BLAME = {
    "total_cycles": "memory", "stall_cycles": "memory", "overall_util_pct": "mapping",
    "mapping_efficiency_pct": "mapping", "compute_util_pct": "mapping", "sram_accesses": "mapping",
    "sram_start_stop": "network", "dram_start_stop": "memory", "dram_accesses": "memory",
}


@dataclass(frozen=True)
class Difference:
    """Where two results first differ: the figure or trace cell, both values and the module to blame."""

    where: str
    expected: str
    actual: str
    blame: str


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def _values_differ(expected: object, actual: object) -> bool:
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() != actual.keys() or any(_values_differ(expected[k], actual[k]) for k in expected)
    if isinstance(expected, tuple) and isinstance(actual, tuple):
        return len(expected) != len(actual) or any(_values_differ(e, a) for e, a in zip(expected, actual))
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return not _close(float(expected), float(actual))
    return expected != actual


def figures_difference(expected: LayerResult, actual: LayerResult) -> Difference | None:
    """The first report figure that differs (integers exactly, floats to 1e-9 relative)."""
    for name, blame in _FIELD_BLAME.items():
        want, got = getattr(expected, name), getattr(actual, name)
        if isinstance(want, dict):
            for op in OPERANDS:
                if _values_differ(want.get(op), got.get(op) if isinstance(got, dict) else None):
                    return Difference(f"{name}[{op}]", repr(want.get(op)), repr(got.get(op) if isinstance(got, dict)
                                                                                else got), blame)
        elif _values_differ(want, got):
            return Difference(name, repr(want), repr(got), blame)
    return None


def traces_difference(expected: TraceSet | None, actual: TraceSet | None) -> Difference | None:
    """The first trace cell that differs; a cycle column names the network, an address the mapping (SRAM)
    or the memory (DRAM)."""
    if expected is None:
        return None
    if actual is None:
        return Difference("traces", "six traces", "none", "memory")
    for key in TraceSet.NAMES:
        want, got = np.asarray(getattr(expected, key)), np.asarray(getattr(actual, key))
        blame = "mapping" if key.endswith("_sram") else "memory"
        if want.shape != got.shape:
            return Difference(f"{key} shape", str(want.shape), str(got.shape), "memory")
        diff = np.argwhere(want != got)
        if diff.size:
            row, col = (int(v) for v in diff[0])
            cell_blame = "network" if col == 0 and key.endswith("_sram") else blame
            return Difference(f"{key}[row {row}, col {col}]", repr(float(want[row, col])),
                              repr(float(got[row, col])), cell_blame)
    return None


def result_difference(expected: LayerResult, actual: LayerResult, *, traces: bool = True) -> Difference | None:
    """The first difference of figures, then of traces."""
    return figures_difference(expected, actual) or (
        traces_difference(expected.traces, actual.traces) if traces else None)
