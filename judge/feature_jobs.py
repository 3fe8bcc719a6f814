"""Written features on the host: the static check, the job, one run through an executor, the decoded results.

A feature written by the agent is untrusted: :func:`feature_static_problem` checks ``feature.py`` before
anything runs (it parses, defines ``run`` at top level, and uses only what :mod:`judge.harness.rules`
allows), and :func:`run_feature_cases` runs it through a :class:`~judge.executors.FeatureExecutor` (the
sandbox, or in-process for trusted code) in the package :func:`package_files` lays out.  What comes back
is decoded with the host's own classes (:class:`reference_sim.engine.LayerResult`,
:class:`reference_sim.contract.TraceSet`), never the sandbox's; anything malformed becomes that case's
error naming the field, and a run that fails as a whole (timeout, crash, refused code) fails every case.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from judge.executors import SHIPPED_CONTRACT, BadOutputError, Execution, FeatureExecutor
from judge.harness import feature_api, feature_format, rules, wire
from reference_sim import contract as reference_contract
from reference_sim import engine as reference_engine
from reference_sim.contract import OPERANDS, Hardware, Layer
from reference_sim.engine import LayerResult
from sandbox.base import Outcome

FEATURE_FILE = f"{feature_format.FEATURE_MODULE}.py"
MAX_FEATURE_CHARS = 200_000
SIGNATURE = "run(layers, hardware, params, *, traces=False)"
SHIPPED_FILES: dict[str, Path] = {path.name: path for path in (
    *SHIPPED_CONTRACT, Path(reference_engine.__file__).resolve(), Path(feature_api.__file__).resolve())}
"""The verifier's own files in the package, by name (:data:`feature_format.SHIPPED_MODULES`)."""
OPERAND_FIELDS = ("sram_accesses", "sram_start_stop", "dram_start_stop", "dram_accesses")
"""The fields of a layer result keyed by operand."""
HOST_CLASSES = SimpleNamespace(LayerResult=LayerResult, TraceSet=reference_contract.TraceSet)
"""The only classes a manifest's layer results are built with."""


@dataclass(frozen=True)
class FeatureCase:
    """One run of a written feature: layers, hardware, the feature's parameters and whether traces are wanted."""

    id: str
    layers: tuple[Layer, ...]
    hardware: Hardware
    params: Mapping[str, int | float]
    traces: bool


@dataclass(frozen=True)
class FeatureCaseRun:
    """What one case's run gave: the layer results and tables, or ``results=None`` and the error (one line)."""

    id: str
    results: list[LayerResult] | None
    tables: dict[str, list[dict[str, float]]]
    error: str | None


def _takes_traces(function: ast.FunctionDef) -> bool:
    arguments = function.args
    names = [a.arg for a in (*arguments.args, *arguments.kwonlyargs)]
    return "traces" in names or arguments.kwarg is not None


def _absolute_package_import(node: ast.AST) -> bool:
    """Whether ``node`` imports a module of the feature's package by an absolute name (``import engine``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module or ""]
    else:
        return False
    return any(name.partition(".")[0] in feature_format.PACKAGE_MODULES for name in names)


REFUSED = "the verifier refuses "
"""How a problem the rules found (not a syntax error or a missing ``run``) begins."""


def feature_static_problem(code: str) -> str | None:
    """Why ``feature.py`` cannot run, as one line naming the file and line, or ``None``: it must parse, define
    ``run`` at top level (taking ``traces``) and use only what the harness's rules allow."""
    if len(code) > MAX_FEATURE_CHARS:
        return f"{FEATURE_FILE} is {len(code)} characters long (at most {MAX_FEATURE_CHARS})"
    try:
        tree = rules.parse(code, FEATURE_FILE)
    except SyntaxError as exc:
        return f"{FEATURE_FILE}:{exc.lineno or 0}: does not parse ({exc.msg})"
    except ValueError as exc:
        return f"{FEATURE_FILE}: does not parse ({exc})"
    refusals = rules.check_source(code, FEATURE_FILE, feature_format.PACKAGE_MODULES)
    if refusals:
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        return f"{REFUSED}{refusals[0].describe()}{more}"
    absolute = next((node for node in ast.walk(tree) if _absolute_package_import(node)), None)
    if absolute is not None:
        return (f"{FEATURE_FILE}:{getattr(absolute, 'lineno', 0)}: imports a module of its package by an absolute "
                f"name (import it relatively: from .engine import simulate, from . import mapping)")
    definitions = [node for node in tree.body if isinstance(node, ast.FunctionDef)
                   and node.name == feature_format.FEATURE_FUNCTION]
    if not definitions:
        return f"{FEATURE_FILE}:1: defines no top-level function {SIGNATURE}"
    last = definitions[-1]
    if not _takes_traces(last):
        return f"{FEATURE_FILE}:{last.lineno}: run() takes no keyword argument traces (define {SIGNATURE})"
    return None


def package_files(modules: Mapping[str, str], feature_code: str) -> dict[str, str]:
    """The package a feature runs in, by file name: the verifier's shipped files, the run's three modules
    (``modules``: role -> source) and ``feature.py``; raises ``ValueError`` when a module is missing."""
    missing = [role for role in feature_format.ROLES if role not in modules]
    if missing or set(modules) - set(feature_format.ROLES):
        raise ValueError(f"modules must be exactly {', '.join(feature_format.ROLES)}; got {', '.join(sorted(modules))}")
    files = {name: path.read_text(encoding="utf-8") for name, path in SHIPPED_FILES.items()}
    files.update({f"{role}.py": modules[role] for role in feature_format.ROLES})
    files[FEATURE_FILE] = feature_code
    return files


def make_feature_job(cases: Sequence[FeatureCase]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The feature job document (:data:`feature_format.JOB_FORMAT`) and its input arrays (none today)."""
    encoder = wire.Encoder(prefix="in.")
    documents: list[dict[str, Any]] = []
    for case in cases:
        documents.append({"id": case.id, "layers": [encoder.encode("Layer", layer) for layer in case.layers],
                          "hardware": encoder.encode("Hardware", case.hardware), "params": dict(case.params),
                          "traces": case.traces})
    job = {"format": feature_format.JOB_FORMAT, "cases": documents}
    feature_format.validate_job(job)
    return job, encoder.arrays


def _failed(case: FeatureCase, message: str) -> FeatureCaseRun:
    return FeatureCaseRun(case.id, None, {}, feature_format.bounded(message))


def _layer_results(data: Any, decoder: wire.Decoder, path: str) -> list[LayerResult]:
    if not isinstance(data, list) or len(data) > feature_format.MAX_RESULTS:
        raise wire.WireError(path, f"expected a list of at most {feature_format.MAX_RESULTS} layer results")
    results: list[LayerResult] = []
    for i, item in enumerate(data):
        result = decoder.decode("LayerResult", item, f"{path}[{i}]")
        for name in OPERAND_FIELDS:
            keys = sorted(getattr(result, name))
            if keys != sorted(OPERANDS):
                raise wire.WireError(f"{path}[{i}].{name}", f"expected the operands {sorted(OPERANDS)}, got {keys}")
        results.append(result)
    return results


def read_case(entry: Any, arrays: Callable[[], Mapping[str, np.ndarray]], case: FeatureCase,
              path: str) -> FeatureCaseRun:
    """One manifest entry decoded with the host's classes, or its error (naming the field that is wrong);
    ``arrays`` loads the case's trace arrays."""
    if not isinstance(entry, dict):
        return _failed(case, f"the feature's output does not fit the format: {path}: expected an object")
    status, error, refused = entry.get("status"), entry.get("error"), entry.get("refused")
    if status not in ("ok", "error"):
        return _failed(case, f"the feature's output does not fit the format: {path}.status: expected 'ok' or 'error'")
    if status == "error":
        return _failed(case, error if isinstance(error, str) and error else "the feature's run failed")
    if refused:
        first = refused[0] if isinstance(refused, list) else refused
        return _failed(case, f"refused by the verifier: {first}")
    try:
        decoder = wire.Decoder(HOST_CLASSES, arrays())
        results = _layer_results(entry.get("results"), decoder, f"{path}.results")
        tables = feature_format.tables_from(entry.get("tables"), f"{path}.tables")
    except (wire.WireError, BadOutputError) as exc:
        return _failed(case, f"the feature's output does not fit the format: {exc}")
    if len(results) != len(case.layers):
        return _failed(case, f"{feature_format.FEATURE_FUNCTION}() returned {len(results)} layer results for "
                             f"{len(case.layers)} layers")
    return FeatureCaseRun(case.id, results, tables, None)


def read_feature_cases(execution: Execution, cases: Sequence[FeatureCase]) -> list[FeatureCaseRun]:
    """Every case's run from an execution of the job made of ``cases``; a run that failed as a whole, or a
    manifest that does not list the cases, fails every case."""
    manifest, loader = execution.manifest, execution.arrays
    if execution.outcome is not Outcome.PASSED or manifest is None or loader is None:
        return [_failed(case, execution.message) for case in cases]
    problem = None
    entries = manifest.get("cases") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != feature_format.RESULTS_FORMAT:
        problem = f"the manifest is not a {feature_format.RESULTS_FORMAT} document"
    elif not isinstance(entries, list) or len(entries) != len(cases):
        problem = f"cases: expected a list of the job's {len(cases)} cases"
    else:
        wrong = next((i for i, (e, c) in enumerate(zip(entries, cases))
                      if not isinstance(e, dict) or e.get("id") != c.id), None)
        if wrong is not None:
            problem = f"cases[{wrong}].id: expected {cases[wrong].id!r}"
    if problem is not None:
        return [_failed(case, f"the feature harness's output is not acceptable: {problem}") for case in cases]
    assert isinstance(entries, list)
    return [read_case(entry, partial(loader, i), case, f"cases[{i}]")
            for i, (entry, case) in enumerate(zip(entries, cases))]


def run_feature_cases(executor: FeatureExecutor, modules: Mapping[str, str], feature_code: str,
                      cases: Sequence[FeatureCase]) -> list[FeatureCaseRun]:
    """Run a written feature (``feature_code``, checked first by :func:`feature_static_problem`) over ``cases``
    with the run's ``modules`` (role -> source); one result per case, in order."""
    problem = feature_static_problem(feature_code)
    if problem is not None:
        return [_failed(case, f"the feature was refused before it ran: {problem}") for case in cases]
    files = package_files(modules, feature_code)
    runs: list[FeatureCaseRun] = []
    for first in range(0, len(cases), feature_format.MAX_CASES):
        batch = cases[first:first + feature_format.MAX_CASES]
        job, arrays = make_feature_job(batch)
        execution = executor.run(files, job, arrays)
        try:
            runs += read_feature_cases(execution, batch)
        finally:
            execution.close()
    return runs
