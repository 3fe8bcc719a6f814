"""A run's features: the spec's ``features`` section checked against the catalogue, and each feature judged.

A spec asks for hardware the reference does not model by naming catalogue features with their
parameters (``features: {energy: {pj_per_mac: 0.56, ...}, batch: {images: 4}}``); the parameters are
completed with their neutral values and checked for type and bounds.  Once the run's modules verify,
each feature's implementation is judged with the strongest evidence there is (``features.judge``:
exact at the neutral setting, the oracle where one exists, then the property library) and its report
tables are written for the spec's final-check workloads.  The agent does not write features yet: the
implementation is the catalogue's built-in one, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from features.builtin import BUILTINS
from features.catalogue import load_catalogue, resolve_params
from features.judge import judge
from features.reports import write_tables
from reference_sim.contract import Hardware, Layer
from reference_sim.errors import InputError


class FeatureTask(TypedDict):
    """A feature the run provides: its name and every parameter (the spec's, else the neutral value)."""

    name: str
    params: dict[str, float | int]


class FeatureOutcome(TypedDict):
    """What the judge found of one feature."""

    name: str
    params: dict[str, float | int]
    implementation: str
    passed: bool
    evidence: str
    """The evidence levels that passed, strongest first: ``exact, oracle, properties k/k``."""
    summary: str
    tables: list[str]
    """The feature's report files written for the final-check workloads (relative to the run folder)."""


def plan_features(given: Mapping[str, Any] | None, source: str | Path, *,
                  user_folder: Path | None = None) -> list[FeatureTask]:
    """The spec's ``features`` section as tasks (the catalogue with the operator's ``user_folder``); an unknown
    feature or parameter, or a feature without an implementation, is an :class:`InputError` naming the field."""
    if not given:
        return []
    catalogue = load_catalogue(user_folder)
    tasks: list[FeatureTask] = []
    for name, params in given.items():
        feature = catalogue.get(name)
        if feature is None:
            raise InputError(source, f"not a feature of the catalogue (features: {', '.join(sorted(catalogue))})",
                             field=f"features.{name}")
        if params is not None and not isinstance(params, Mapping):
            raise InputError(source, "must be a mapping of parameter names to numbers", field=f"features.{name}")
        if name not in BUILTINS:
            raise InputError(source, "has no implementation: the agent does not write features yet, so a run "
                                     "provides built-in features only", field=f"features.{name}")
        tasks.append(FeatureTask(name=name, params=resolve_params(feature.definition, params or {}, source)))
    return tasks


def judge_features(tasks: Sequence[FeatureTask], workloads: Sequence[tuple[str, Sequence[Layer], Hardware]],
                   run_dir: Path, *, user_folder: Path | None = None) -> list[FeatureOutcome]:
    """Judge each feature's built-in implementation (the catalogue with the operator's ``user_folder``, whose
    features bring their own properties) and write its tables for ``workloads`` under
    ``run_dir/features/<feature>/<workload>/``."""
    catalogue = load_catalogue(user_folder)
    found: list[FeatureOutcome] = []
    for task in tasks:
        feature = catalogue[task["name"]]
        impl = BUILTINS[task["name"]]
        verdict = judge(feature, impl)
        written: list[str] = []
        if verdict.passed and feature.definition.reports:
            columns: dict[str, Sequence[str]] = {r.file: r.columns for r in feature.definition.reports}
            for workload, layers, hardware in workloads:
                folder = run_dir / "features" / task["name"] / workload
                run = impl(layers, hardware, task["params"])
                written += [str(p.relative_to(run_dir)) for p in write_tables(run.tables, columns, folder)]
        found.append(FeatureOutcome(name=task["name"], params=dict(task["params"]), implementation="built-in",
                                    passed=verdict.passed, evidence=verdict.evidence, summary=verdict.summary(),
                                    tables=written))
    return found
