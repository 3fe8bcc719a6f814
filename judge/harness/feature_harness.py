"""The feature harness: runs a written feature's ``run`` inside the sandbox, case by case.

The candidate folder is one package (``simcoder_candidate``) holding the contract, the engine, the run's
three modules, :mod:`feature_api` and the candidate's ``feature.py`` (:data:`feature_format.PACKAGE_MODULES`).
The run's modules and the feature are imported under the harness's guard (:class:`harness.Guard`); the
engine, ours, without it and after the modules it imports.  Each case calls
``run(layers, hardware, params, traces=traces)`` with the guard on and writes what it returned in the
format of :mod:`feature_format`: layer results in the wire format, tables checked by
:func:`feature_format.tables_from`, and what the guard refused (the host fails such a case).  A case that
raises or returns a wrong result is that case's error; the next case still runs.  Like the harness it
computes nothing itself and holds no expected result.

Standard library, numpy and the harness's own modules only.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import harness, wire
from .feature_format import (
    FEATURE_FUNCTION,
    FEATURE_MODULE,
    JOB_FILE,
    MANIFEST_FILE,
    MANIFEST_LIMIT_BYTES,
    MAX_REFUSALS,
    MAX_RESULTS,
    RESULTS_FORMAT,
    ROLES,
    TRUSTED_MODULES,
    CaseResult,
    FeatureJobError,
    Job,
    JobCase,
    Results,
    bounded,
    case_arrays_file,
    tables_from,
    validate_job,
)

logger = logging.getLogger(__name__)

GUARDED_MODULES: tuple[str, ...] = ("contract", "errors", *ROLES, "feature_api")
"""The package's modules imported under the guard before the engine, in order."""


@dataclass
class CaseOutput:
    """One case's manifest entry and trace arrays."""

    entry: CaseResult
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def load_feature(candidate: harness.Candidate) -> Callable[..., Any]:
    """The candidate's ``run``, with the package imported in order; raises :class:`harness.ModuleFault`."""
    for name in GUARDED_MODULES:
        candidate.module(name)
    for name in sorted(TRUSTED_MODULES):
        candidate.trusted(name)
    module = candidate.module(FEATURE_MODULE)
    with candidate.guard.on():
        function = getattr(module, FEATURE_FUNCTION, None)
        found = callable(function)
    if not found:
        raise harness.ModuleFault(FEATURE_MODULE, "import", f"{FEATURE_MODULE}.py defines no function "
                                  f"{FEATURE_FUNCTION}()", error_type="AttributeError")
    return function  # type: ignore[return-value]


def _where(exc: BaseException) -> str:
    """Where ``exc`` came from, for the model: the last line of the candidate's module it passed through and, when
    deeper, the function that raised it.  Read from the frames alone: no source file is opened (the guard is on)."""
    frames: list[tuple[str, int, str]] = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((os.path.basename(tb.tb_frame.f_code.co_filename), tb.tb_lineno, tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    if not frames:
        return ""
    own = [i for i, frame in enumerate(frames) if frame[0] == f"{FEATURE_MODULE}.py"]
    parts = [f"your module line {frames[own[-1]][1]}"] if own else []
    if not own or own[-1] != len(frames) - 1:
        file, line, function = frames[-1]
        parts.append(f"raised in {file} line {line}, in {function}")
    return f" ({'; '.join(parts)})"


def _describe(exc: BaseException) -> str:
    try:
        return bounded(f"{type(exc).__name__}: {exc}{_where(exc)}")
    except Exception:
        return bounded(type(exc).__name__)


def _encode(value: Any, encoder: wire.Encoder) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, float]]]]:
    """``run``'s return value as manifest data; raises :class:`wire.WireError` naming the wrong field."""
    try:
        results = value.results
        raw_tables = value.tables
    except AttributeError:
        raise wire.WireError("FeatureRun", f"expected a FeatureRun (results, tables), got {type(value).__name__}") \
            from None
    if not isinstance(results, (list, tuple)):
        raise wire.WireError("results", f"expected a list of LayerResult, got {type(results).__name__}")
    if len(results) > MAX_RESULTS:
        raise wire.WireError("results", f"{len(results)} layer results (at most {MAX_RESULTS})")
    encoded = [encoder.encode("LayerResult", result, f"results[{i}]") for i, result in enumerate(results)]
    return encoded, tables_from(raw_tables)


def run_case(index: int, case: JobCase, inputs: Mapping[str, np.ndarray], candidate: harness.Candidate,
             run: Callable[..., Any]) -> CaseOutput:
    """One case: decode its inputs with the package's contract, call ``run`` under the guard, encode the result."""
    start = time.perf_counter()
    decoder = wire.Decoder(candidate.contract(), inputs)
    try:
        layers = [decoder.decode("Layer", layer, f"cases[{index}].layers[{i}]")
                  for i, layer in enumerate(case["layers"])]
        hardware = decoder.decode("Hardware", case["hardware"], f"cases[{index}].hardware")
    except wire.WireError as exc:
        raise FeatureJobError(str(exc)) from None
    entry: CaseResult = {"id": case["id"], "status": "ok", "error": None, "results": [], "tables": {},
                         "refused": [], "seconds": 0.0}
    encoder = wire.Encoder(prefix=f"c{index}.")
    error: str | None = None
    with candidate.guard.on():
        try:
            value = run(layers, hardware, dict(case["params"]), traces=case["traces"])
            entry["results"], entry["tables"] = _encode(value, encoder)
        except KeyboardInterrupt:
            raise
        except wire.WireError as exc:
            error = bounded(f"{FEATURE_FUNCTION}() returned a wrong result: {exc}")
        except BaseException as exc:
            error = _describe(exc)
    refused = [bounded(str(r), 300) for r in candidate.guard.take()[:MAX_REFUSALS]]
    entry["refused"] = refused
    if error is not None:
        entry["status"], entry["error"], entry["results"], entry["tables"] = "error", error, [], {}
        encoder.arrays.clear()
    entry["seconds"] = round(time.perf_counter() - start, 4)
    return CaseOutput(entry, encoder.arrays)


def _failed(case: JobCase, message: str, refused: Sequence[str] = ()) -> CaseResult:
    return {"id": case["id"], "status": "error", "error": bounded(message), "results": [], "tables": {},
            "refused": [bounded(str(r), 300) for r in refused[:MAX_REFUSALS]], "seconds": 0.0}


def run_cases(job: Job, inputs: Mapping[str, np.ndarray], candidate: harness.Candidate,
              write: Callable[[int, CaseOutput], None]) -> list[CaseResult]:
    """Every case of the job in order (``write`` stores each one's arrays); an import fault fails them all, and
    so does output past :data:`MANIFEST_LIMIT_BYTES` for the cases it reaches."""
    try:
        run = load_feature(candidate)
    except harness.ModuleFault as fault:
        refused = candidate.guard.take()
        return [_failed(case, f"{fault.module}.py could not be imported: {fault.message}", refused)
                for case in job["cases"]]
    entries: list[CaseResult] = []
    budget = MANIFEST_LIMIT_BYTES - 64 * 1024
    for index, case in enumerate(job["cases"]):
        output = run_case(index, case, inputs, candidate, run)
        size = len(json.dumps(output.entry))
        if size > budget:
            output = CaseOutput(_failed(case, f"the feature's output is too large ({size} bytes of results and "
                                              f"tables; {max(budget, 0)} left of {MANIFEST_LIMIT_BYTES})",
                                        output.entry["refused"]))
        budget -= len(json.dumps(output.entry))
        write(index, output)
        entries.append(output.entry)
    return entries


def manifest(cases: list[CaseResult], seconds: float) -> Results:
    """The results document of a run."""
    return {"format": RESULTS_FORMAT, "python": platform.python_version(), "numpy": np.__version__,
            "cases": cases, "seconds": round(seconds, 4)}


@harness.ends_process
def main(argv: list[str] | None = None) -> int:
    """Entry point in the sandbox: 0 when the job ran (the candidate's faults are in the manifest), 2 on a bad
    job; never returns (:func:`harness.ends_process`)."""
    logging.basicConfig(level=logging.WARNING, format="feature harness: %(message)s")
    sys.dont_write_bytecode = True
    start = time.perf_counter()
    paths = harness.SandboxPaths.from_environment()
    try:
        job, inputs = paths.read_job(JOB_FILE, validate_job)
    except (OSError, ValueError) as exc:
        logger.error("bad feature job in %s: %s", paths.inputs, exc)
        return 2
    candidate = paths.guarded_candidate()

    def write(index: int, output: CaseOutput) -> None:
        if output.arrays:
            np.savez(paths.out / case_arrays_file(index), **output.arrays)  # type: ignore[arg-type]

    try:
        cases = run_cases(job, inputs, candidate, write)
    except FeatureJobError as exc:
        logger.error("bad feature job: %s", exc)
        return 2
    paths.write_result(MANIFEST_FILE, dict(manifest(cases, time.perf_counter() - start)))
    return 0
