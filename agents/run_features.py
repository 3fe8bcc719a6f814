"""A run's features: the spec's ``features`` section checked against the catalogue, and each feature judged.

A spec asks for hardware the reference does not model by naming catalogue features with their
parameters (``features: {energy: {pj_per_mac: 0.56, ...}, batch: {images: 4}}``); the parameters are
completed with their neutral values and checked for type and bounds.  Once the run's modules verify,
each feature's implementation is judged with the strongest evidence there is (``features.judge``:
exact at the neutral setting, the oracle where one exists, then the property library) and its report
tables are written for the spec's final-check workloads.  The implementation is the one the agent wrote
(model-written code, run only in the sandbox: :class:`SandboxedFeatures` runs every case the judge may
ask for in one sandbox run, :func:`features.judge.planned_cases`) or, in template mode, the catalogue's
built-in one; the report says which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from agents.package_base import PackageError
from agents.package_features import PackagedFeature, agent_feature, builtin_feature
from features.api import FeatureRun, Params
from features.builtin import BUILTINS
from features.catalogue import Feature, load_catalogue, resolve_params
from features.judge import RunCache, Verdict, case_key, judge, planned_cases
from features.property_base import PropertyFailure
from features.reports import write_tables
from judge.executors import FeatureExecutor
from judge.feature_jobs import FeatureCase, run_feature_cases
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


def feature_named(name: str, user_folder: Path | None = None) -> Feature:
    """The catalogue's feature ``name`` (a plan only names features it checked against the catalogue)."""
    catalogue = load_catalogue(user_folder)
    if name not in catalogue:
        raise KeyError(f"feature {name!r} is not in the catalogue")
    return catalogue[name]


def plan_features(given: Mapping[str, Any] | None, source: str | Path, *, user_folder: Path | None = None,
                  template: bool = False) -> list[FeatureTask]:
    """The spec's ``features`` section as tasks (the catalogue with the operator's ``user_folder``); an unknown
    feature or parameter, or in template mode a feature without a built-in implementation, is an
    :class:`InputError` naming the field."""
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
        if template and name not in BUILTINS:
            raise InputError(source, "has no built-in implementation, and a run in template mode writes no code: "
                                     "give the run a model (--model, --base-url) to write it",
                             field=f"features.{name}")
        tasks.append(FeatureTask(name=name, params=resolve_params(feature.definition, params or {}, source)))
    return tasks


RUN_CHECK = "run"
"""The check named when the implementation could not be run on a case (it raised, timed out or returned
something that is not a result)."""


def _unplanned(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    raise LookupError("the judge asked for a case that was not run in the sandbox")


@dataclass(frozen=True)
class SandboxedFeatures:
    """Model-written feature code, run only in the sandbox on top of ``modules`` (the three modules' sources:
    the reference's while a feature is being written, the run's verified ones at the end)."""

    executor: Callable[[], FeatureExecutor]
    modules: Mapping[str, str]

    def run(self, code: str, cases: Sequence[FeatureCase]) -> list[FeatureRun | str]:
        """Each case's run, or why it could not be run (its error)."""
        return [FeatureRun(got.results, got.tables) if got.error is None and got.results is not None
                else got.error or "no results" for got in run_feature_cases(self.executor(), self.modules, code, cases)]

    def judge(self, feature: Feature, code: str, *, seed: int = 0) -> Verdict:
        """Judge ``code`` for ``feature``: every planned case in one sandbox run, then the judge over those runs."""
        cases = planned_cases(feature, seed)
        runs = self.run(code, [FeatureCase(f"c{i}", c.layers, c.hardware, dict(c.params), True)
                               for i, c in enumerate(cases)])
        cache: RunCache = {case_key(case): got if isinstance(got, FeatureRun) else
                           PropertyFailure(RUN_CHECK, case.workload, None, "a run", got, feature.name)
                           for case, got in zip(cases, runs, strict=True)}
        return judge(feature, _unplanned, runs=cache)


def _tables(impl_runs: Sequence[FeatureRun | str], feature: Feature, folders: Sequence[Path],
            run_dir: Path) -> list[str]:
    columns: dict[str, Sequence[str]] = {r.file: r.columns for r in feature.definition.reports}
    written: list[str] = []
    for run, folder in zip(impl_runs, folders, strict=True):
        if isinstance(run, FeatureRun):
            written += [str(p.relative_to(run_dir)) for p in write_tables(run.tables, columns, folder)]
    return written


def judge_features(tasks: Sequence[FeatureTask], workloads: Sequence[tuple[str, Sequence[Layer], Hardware]],
                   run_dir: Path, *, written: Mapping[str, str] | None = None,
                   sandboxed: SandboxedFeatures | None = None, user_folder: Path | None = None
                   ) -> list[FeatureOutcome]:
    """Judge each feature's implementation (``written[name]``, the agent's code run by ``sandboxed``, else the
    built-in one) and write its tables for ``workloads`` under ``run_dir/features/<feature>/<workload>/``.
    The catalogue includes the operator's ``user_folder``, whose features bring their own properties."""
    catalogue = load_catalogue(user_folder)
    written = written or {}
    found: list[FeatureOutcome] = []
    for task in tasks:
        feature = catalogue[task["name"]]
        code = written.get(task["name"])
        folders = [run_dir / "features" / task["name"] / workload for workload, _, _ in workloads]
        runs: list[FeatureRun | str] = []
        if code is not None:
            if sandboxed is None:
                raise ValueError(f"feature {task['name']}: written code needs a sandbox to run in")
            verdict = sandboxed.judge(feature, code)
            if verdict.passed and feature.definition.reports:
                cases = [FeatureCase(workload, tuple(layers), hardware, dict(task["params"]), False)
                         for workload, layers, hardware in workloads]
                runs = sandboxed.run(code, cases)
            implementation = "written by the agent"
        else:
            impl = BUILTINS[task["name"]]
            verdict = judge(feature, impl)
            if verdict.passed and feature.definition.reports:
                runs = [impl(layers, hardware, task["params"]) for _, layers, hardware in workloads]
            implementation = "built-in"
        tables = _tables(runs, feature, folders, run_dir) if runs else []
        failed_runs = [r for r in runs if isinstance(r, str)]
        summary = verdict.summary() + (f"; its tables could not be written: {failed_runs[0][:200]}"
                                       if failed_runs else "")
        found.append(FeatureOutcome(name=task["name"], params=dict(task["params"]), implementation=implementation,
                                    passed=verdict.passed and not failed_runs, evidence=verdict.evidence,
                                    summary=summary, tables=tables))
    return found


def packaged_features(tasks: Sequence[FeatureTask], written: Mapping[str, str],
                      user_folder: Path | None = None) -> tuple[list[PackagedFeature], list[str]]:
    """The run's features as the standalone package carries them (the agent's code where it wrote one, else the
    catalogue's built-in made portable), and a note per feature the package cannot carry, saying why."""
    catalogue = load_catalogue(user_folder)
    packaged: list[PackagedFeature] = []
    notes: list[str] = []
    for task in tasks:
        name = task["name"]
        try:
            packaged.append(agent_feature(name, task["params"], written[name], catalogue) if name in written
                            else builtin_feature(name, task["params"], catalogue))
        except PackageError as exc:
            notes.append(f"the package does not carry the feature {name}: {exc}")
    return packaged, notes
