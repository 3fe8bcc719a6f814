"""What a feature implementation takes and returns, and one judged case.

A feature implementation is a callable ``run(layers, hardware, params, *, traces) -> FeatureRun``:
the built-ins in :mod:`features.builtin` and every candidate share this signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reference_sim.contract import Hardware, Layer
from reference_sim.engine import LayerResult

ParamValue = int | float
Params = Mapping[str, ParamValue]
TableRow = dict[str, float]


@dataclass(frozen=True)
class FeatureRun:
    """A feature's result for one workload: SCALE-Sim's per-layer figures (and traces, when asked) and the
    feature's own report tables, keyed by file name (e.g. ``ENERGY_REPORT.csv``), one row per layer."""

    results: list[LayerResult]
    tables: dict[str, list[TableRow]] = field(default_factory=dict)


class FeatureImpl(Protocol):
    """The signature every implementation of a feature has."""

    def __call__(self, layers: Sequence[Layer], hardware: Hardware, params: Params, *,
                 traces: bool = False) -> FeatureRun: ...


@dataclass(frozen=True)
class Case:
    """One judged run: a named workload on one architecture with one setting of the feature's parameters."""

    feature: str
    workload: str
    layers: tuple[Layer, ...]
    hardware: Hardware
    params: Mapping[str, ParamValue]

    def with_params(self, **changes: ParamValue) -> Case:
        return Case(self.feature, self.workload, self.layers, self.hardware, {**self.params, **changes})
