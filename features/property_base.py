"""The property library's building blocks: a property, its failure, and helpers shared by every family."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from reference_sim import mapping as reference_mapping
from reference_sim.contract import NO_REQUEST, Hardware, Layer, OperandName
from reference_sim.engine import LayerResult

from .api import Case, FeatureRun
from .compare import REL_TOL
from .semantics import effective_layer

FEATURE = "feature"
"""Blame placeholder: the judged feature's own code (replaced by the feature's name)."""
Family = Literal["conservation", "bounds", "monotonicity", "metamorphic"]


@dataclass(frozen=True)
class PropertyFailure:
    """A failed check, diagnosed like a trace divergence."""

    check: str
    workload: str
    layer: int | None
    expected: str
    actual: str
    blamed_module: str

    def line(self) -> str:
        where = f"layer {self.layer}" if self.layer is not None else "workload"
        return (f"{self.check}: {self.workload} {where}: expected {self.expected}, got {self.actual} "
                f"(blame {self.blamed_module})")


SingleCheck = Callable[[Case, FeatureRun], "PropertyFailure | None"]
PairCheck = Callable[[Case, FeatureRun, Case, FeatureRun], "PropertyFailure | None"]
Vary = Callable[[Case, random.Random], "Case | None"]


@dataclass(frozen=True)
class Property:
    name: str
    family: Family
    statement: str
    single: SingleCheck | None = None
    pair: PairCheck | None = None
    vary: Vary | None = None
    needs_traces: bool = False


def fail(name: str, case: Case, layer: int | None, expected: object, actual: object, blame: str) -> PropertyFailure:
    return PropertyFailure(name, case.workload, layer, str(expected), str(actual),
                           case.feature if blame == FEATURE else blame)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-6)


def pes(hardware: Hardware) -> int:
    return hardware.array_rows * hardware.array_cols


def layers(case: Case, run: FeatureRun) -> Iterator[tuple[int, Layer, LayerResult]]:
    """Each layer's index, the layer as the feature's setting makes it, and its result."""
    yield from zip(range(len(case.layers)), (effective_layer(case.params, layer) for layer in case.layers),
                   run.results)


def count_check(name: str, case: Case, run: FeatureRun) -> PropertyFailure | None:
    if len(run.results) != len(case.layers):
        return fail(name, case, None, f"{len(case.layers)} layer results", len(run.results), FEATURE)
    return None


def trace_addresses(trace: np.ndarray) -> np.ndarray:
    cells = np.asarray(trace)[:, 1:].astype(np.int64).reshape(-1)
    return np.unique(cells[cells != NO_REQUEST])


def operand_set(layer: Layer, hardware: Hardware, name: OperandName) -> np.ndarray:
    """Distinct addresses one image's operand holds (the reference mapping's operand matrix)."""
    matrix = reference_mapping.map_layer(layer, hardware).operand(name)
    rows, cols = matrix.shape
    cells = np.asarray(matrix.addresses(np.arange(rows)[:, None], np.arange(cols)[None, :])).reshape(-1)
    return np.unique(cells[cells != NO_REQUEST])


def set_mismatch(want: np.ndarray, got: np.ndarray) -> tuple[str, str] | None:
    if want.size == got.size and np.array_equal(want, got):
        return None
    missing = np.setdiff1d(want, got)
    extra = np.setdiff1d(got, want)
    detail = (f"missing {missing.size} (first {int(missing[0])})" if missing.size else "") + (
        f"{', ' if missing.size else ''}extra {extra.size} (first {int(extra[0])})" if extra.size else "")
    return f"{want.size} distinct addresses", detail or f"{got.size} distinct addresses"
