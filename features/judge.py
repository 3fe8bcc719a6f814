"""Judge a feature implementation: strongest evidence first, the first failure diagnosed.

1. ``exact``: at the neutral setting the implementation equals the reference, figure for figure and
   trace for trace, on every variant of the suite (:func:`features.workloads.neutral_cases`).
2. ``oracle`` (where the feature has one): on generated cases with non-neutral settings it equals the
   exact expected result computed from the reference (:mod:`features.oracles`), tables included.
3. ``properties``: every check the feature names, over the same cases (pairs made by each property's
   ``vary``), looked up in the library and the feature's own properties (:meth:`Feature.registry`).

The verdict says which levels ran and passed (``exact, oracle, properties 11/11``).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from reference_sim.contract import Hardware, Layer
from reference_sim.engine import LayerResult, simulate

from .api import Case, FeatureImpl, FeatureRun, TableRow
from .catalogue import Feature, FeatureDef
from .compare import result_difference
from .oracles import ORACLES
from .properties import FEATURE, PROPERTIES, PropertyFailure
from .property_base import Property
from .workloads import judged_cases, neutral_cases

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    feature: str
    passed: bool
    levels: tuple[str, ...]
    """Evidence levels that ran and passed, strongest first."""
    properties_passed: int = 0
    properties_total: int = 0
    failure: PropertyFailure | None = None
    fired: tuple[str, ...] = field(default_factory=tuple)
    """Every check that failed somewhere (the first is :attr:`failure`'s); empty when passed."""

    @property
    def evidence(self) -> str:
        parts = [f"properties {self.properties_passed}/{self.properties_total}" if level == "properties" else level
                 for level in self.levels]
        return ", ".join(parts) or "none"

    def summary(self) -> str:
        head = f"{self.feature}: {'PASS' if self.passed else 'FAIL'} ({self.evidence})"
        return head if self.failure is None else f"{head}; first failure: {self.failure.line()}"


@lru_cache(maxsize=256)
def _reference(layers: tuple[Layer, ...], hardware: Hardware) -> list[LayerResult]:
    return simulate(layers, hardware, traces=True)


def case_key(case: Case, traces: bool = True) -> tuple[object, ...]:
    """The key of one run of an implementation (what :data:`RunCache` is keyed by)."""
    return case.workload, case.layers, case.hardware, tuple(sorted(case.params.items())), traces


def _property_rng(seed: int, name: str) -> random.Random:
    """Each property draws its varied cases from its own stream, so which cases the judge may ask for does
    not depend on how earlier checks went (:func:`planned_cases` lists them before any run)."""
    return random.Random(f"{seed}:{name}")


_oracle_cache: dict[tuple[object, ...], FeatureRun] = {}


def _oracle(case: Case) -> FeatureRun:
    key = case_key(case)
    if key not in _oracle_cache:
        if len(_oracle_cache) > 256:
            _oracle_cache.clear()
        _oracle_cache[key] = ORACLES[case.feature](case, True)
    return _oracle_cache[key]


class _Runner:
    """Runs the implementation once per case, turning a crash into a failure."""

    def __init__(self, impl: FeatureImpl, runs: dict[tuple[object, ...], FeatureRun | PropertyFailure] | None = None):
        self.impl = impl
        self.runs = {} if runs is None else runs

    def __call__(self, case: Case, check: str) -> FeatureRun | PropertyFailure:
        key = case_key(case)
        if key not in self.runs:
            try:
                self.runs[key] = self.impl(case.layers, case.hardware, case.params, traces=True)
            except Exception as exc:
                log.debug("implementation raised on %s", case.workload, exc_info=True)
                self.runs[key] = PropertyFailure(check, case.workload, None, "a run",
                                                 f"{type(exc).__name__}: {str(exc)[:160]}", case.feature)
        return self.runs[key]


def _results_failure(check: str, case: Case, expected: Sequence[LayerResult],
                     actual: Sequence[LayerResult]) -> PropertyFailure | None:
    if len(expected) != len(actual):
        return PropertyFailure(check, case.workload, None, f"{len(expected)} layer results", str(len(actual)),
                               case.feature)
    for index, (want, got) in enumerate(zip(expected, actual)):
        difference = result_difference(want, got)
        if difference is not None:
            return PropertyFailure(check, case.workload, index, f"{difference.where} = {difference.expected}",
                                   difference.actual, difference.blame)
    return None


def _tables_failure(check: str, case: Case, expected: dict[str, list[TableRow]],
                    actual: dict[str, list[TableRow]]) -> PropertyFailure | None:
    for name, rows in expected.items():
        got = actual.get(name)
        if got is None or len(got) != len(rows):
            return PropertyFailure(check, case.workload, None, f"{name} with {len(rows)} rows",
                                   "missing" if got is None else f"{len(got)} rows", case.feature)
        for index, (want_row, got_row) in enumerate(zip(rows, got)):
            for column, want in want_row.items():
                value = got_row.get(column)
                if value is None or not math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-6):
                    return PropertyFailure(check, case.workload, index, f"{name} {column} = {want:.6g}",
                                           str(value), case.feature)
    return None


RunCache = dict[tuple[object, ...], "FeatureRun | PropertyFailure"]
"""The implementation's runs by case, shareable between judge calls of one implementation."""


def judge(feature: Feature | FeatureDef, impl: FeatureImpl, *, seed: int = 0, use_exact: bool = True,
          use_oracle: bool = True, use_properties: bool = True, all_failures: bool = False,
          runs: RunCache | None = None) -> Verdict:
    """Judge ``impl`` for ``feature``.  Stops at the first failure unless ``all_failures`` (then every
    property still runs, and :attr:`Verdict.fired` lists each check that failed).  ``runs`` keeps the
    implementation's runs for a later call on the same implementation (a crash is kept as the failure of the
    check that first met it).  A :class:`Feature`'s checks may name its own properties; a bare
    :class:`FeatureDef`'s only the library's."""
    definition = feature.definition if isinstance(feature, Feature) else feature
    registry = feature.registry() if isinstance(feature, Feature) else PROPERTIES
    unknown = [name for name in definition.checks if name not in registry]
    if unknown:
        raise ValueError(f"{definition.name}: checks not in the property library: {', '.join(unknown)}")
    run = _Runner(impl, runs)
    levels: list[str] = []
    fired: list[str] = []
    first: PropertyFailure | None = None

    def verdict(passed: int = 0, total: int = 0) -> Verdict:
        return Verdict(definition.name, first is None, tuple(levels), passed, total, first, tuple(fired))

    if use_exact:
        for case in neutral_cases(definition, seed):
            got = run(case, "exact")
            failure = got if isinstance(got, PropertyFailure) else _results_failure(
                "exact", case, _reference(case.layers, case.hardware), got.results)
            if failure is not None:
                first = failure
                fired.append("exact")
                return verdict()
        levels.append("exact")
    cases = judged_cases(definition, seed)
    if use_oracle and definition.oracle and definition.name in ORACLES:
        for case in cases:
            got = run(case, "oracle")
            want = _oracle(case)
            failure = got if isinstance(got, PropertyFailure) else (
                _results_failure("oracle", case, want.results, got.results)
                or _tables_failure("oracle", case, want.tables, got.tables))
            if failure is not None:
                first = failure
                fired.append("oracle")
                return verdict()
        levels.append("oracle")
    if not use_properties:
        return verdict()
    passed = 0
    for name in definition.checks:
        failure = _check(registry[name], cases, run, _property_rng(seed, name))
        if failure is None:
            passed += 1
            continue
        fired.append(name)
        if first is None:
            first = failure
        if not all_failures:
            return verdict(passed, len(definition.checks))
    if first is None:
        levels.append("properties")
    return verdict(passed, len(definition.checks))


def planned_cases(feature: Feature | FeatureDef, seed: int = 0) -> list[Case]:
    """Every case :func:`judge` with this ``seed`` may run the implementation on (each traced), without
    running anything: the neutral cases, the judged cases and each property's varied ones.  A judge given
    :data:`RunCache` holding these runs needs no implementation."""
    definition = feature.definition if isinstance(feature, Feature) else feature
    registry = feature.registry() if isinstance(feature, Feature) else PROPERTIES
    cases = judged_cases(definition, seed)
    planned = {case_key(c): c for c in [*neutral_cases(definition, seed), *cases]}
    for name in definition.checks:
        prop = registry[name]
        if prop.vary is None:
            continue
        rng = _property_rng(seed, name)
        for case in cases:
            other = prop.vary(case, rng)
            if other is not None:
                planned.setdefault(case_key(other), other)
    return list(planned.values())


def _check(prop: Property, cases: Sequence[Case], run: Callable[[Case, str], FeatureRun | PropertyFailure],
           rng: random.Random) -> PropertyFailure | None:
    name = prop.name
    for case in cases:
        base = run(case, name)
        if isinstance(base, PropertyFailure):
            return base
        if prop.single is not None:
            failure = prop.single(case, base)
        else:
            assert prop.vary is not None and prop.pair is not None
            other_case = prop.vary(case, rng)
            if other_case is None:
                continue
            other = run(other_case, name)
            if isinstance(other, PropertyFailure):
                return other
            failure = prop.pair(case, base, other_case, other)
        if failure is not None:
            if failure.blamed_module == FEATURE:
                return PropertyFailure(**{**failure.__dict__, "blamed_module": case.feature})
            return failure
    return None
