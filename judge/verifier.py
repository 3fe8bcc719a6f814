"""The verifier: an honest judge of a candidate simulator, and evidence a repairer can act on.

Pure functions, no LangGraph.  Nothing of the reference enters the candidate's sandbox: the
container gets the candidate folder, the contract, the harness (:mod:`judge.harness`) and the
job's inputs; expected results are the built-in reference's, computed on the host
(:mod:`judge.reference_runs`), or a user's reference's, from its own sandbox run
(:mod:`judge.user_reference`).  The flow of :func:`verify`:

1. **static check** of the candidate's sources (:func:`judge.harness.rules.check_folder`: parsed,
   never run): a refused import or name ends the verification as ``forbidden``, naming file and line;
2. **end to end**, in one sandbox run: the candidate's own pipeline on every suite workload with
   traces (reports and all six traces compared), again without traces (the report-only paths a
   generated simulator uses by default), and on the spec's ``final_check`` workloads (report
   figures), compared with the reference (:mod:`judge.compare`); the verdict is this run's;
3. on a failure, **per-stage evidence**, in one more run: each candidate module on the reference's
   inputs to its stage (mapping on layer and hardware, network on the reference's mapping, memory on
   the reference's mapping and schedule, with traces on and off), every output compared field by
   field; the blame is every stage whose output differs on correct inputs, the first one leading;
   the candidate's network and memory on the reference's mapping are run too (substitution), which
   adds evidence when two modules are faulty (:mod:`judge.blame`);
4. a diagnosis of at most :data:`judge.diagnosis.DIAGNOSIS_CHARS` characters that leads with the stage
   evidence (:mod:`judge.diagnosis`).

The suite comes from :mod:`judge.suites`, each run is a job (:mod:`judge.jobs`) on an executor
(:mod:`judge.executors`: in process for unit tests and trusted code, or one sandbox run per job), and
the answer is a :class:`judge.verdict.Verification`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from judge.blame import Blame, stage_blame
from judge.compare import CycleError, Divergence, compare_pipeline
from judge.diagnosis import bounded, diagnose
from judge.executors import BadOutputError, Executor
from judge.harness import rules
from judge.jobs import ROLES, Task, make_job, read_task
from judge.reference_runs import require_expected
from judge.suites import Workload, default_final_check, default_suite
from judge.verdict import Verification
from sandbox.base import Outcome

PATHS = ("traced", "untraced", "final_check")


def _end_to_end_tasks(suite: Sequence[Workload], final_check: Sequence[Workload]) -> list[tuple[str, Task]]:
    tasks = [(path, Task(f"{path}/{w.id}", w, "mapping", "memory", path == "traced"))
             for path in ("traced", "untraced") for w in suite]
    return tasks + [("final_check", Task(f"final_check/{w.id}", w, "mapping", "memory", False))
                    for w in final_check]


def _rejected(outcome: Outcome, message: str, start: float, **extra: Any) -> Verification:
    diagnosis = bounded(f"REJECTED ({outcome.value}): {message}")
    return Verification(outcome, message, None, (), (), None, diagnosis, time.perf_counter() - start, **extra)


def static_check(folder: Path) -> tuple[Outcome, str, tuple[str, ...]] | None:
    """``None`` when the candidate's sources pass the rules; else the outcome, a message and the refusals."""
    try:
        refusals = rules.check_folder(folder)
    except SyntaxError as exc:
        where = f"{Path(exc.filename or '?').name}:{exc.lineno}"
        return Outcome.CRASHED, f"{where}: the source does not parse: {exc.msg}", ()
    except OSError as exc:
        return Outcome.CRASHED, f"the candidate folder cannot be read: {exc}", ()
    if not refusals:
        return None
    lines = tuple(r.describe() for r in refusals)
    return (Outcome.FORBIDDEN, f"the candidate uses what the rules forbid: {lines[0]}"
            + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""), lines)


def verify(executor: Executor, suite: Sequence[Workload] | None = None, *,
           final_check: Sequence[Workload] | None = None, blame: bool = True) -> Verification:
    """Judge the candidate on ``suite`` (default: scale_sim.yaml's) with traces, without, and on ``final_check``."""
    suite = tuple(suite) if suite is not None else default_suite()
    final_check = tuple(final_check) if final_check is not None else default_final_check()
    start = time.perf_counter()
    require_expected(suite, final_check)
    folder = executor.candidate_dir
    if folder is not None:
        found = static_check(folder)
        if found is not None:
            outcome, message, lines = found
            return _rejected(outcome, message, start, refusals=lines)
    tasks = _end_to_end_tasks(suite, final_check)
    job, arrays = make_job([t for _, t in tasks])
    execution = executor.run(job, arrays)
    tails: dict[str, Any] = {"stdout_tail": execution.stdout_tail, "stderr_tail": execution.stderr_tail}
    try:
        if execution.outcome is not Outcome.PASSED or execution.manifest is None:
            return _rejected(execution.outcome, execution.message
                             + (f"\nstderr tail: {execution.stderr_tail[-400:]}" if execution.stderr_tail else ""),
                             start, **tails)
        manifest = execution.manifest
        errors: list[CycleError] = []
        failing: list[str] = []
        first: Divergence | None = None
        refused: list[str] = []
        import_faults: list[str] = []
        timings = {path: 0.0 for path in PATHS}
        checked: list[tuple[str, str, bool]] = []
        for index, (path, task) in enumerate(tasks):
            try:
                run = read_task(execution, index, task)
            except BadOutputError as exc:
                return _rejected(Outcome.BAD_OUTPUT, f"The harness's output is not acceptable: {exc}", start,
                                 **tails)
            timings[path] += float(manifest["tasks"][index].get("seconds") or 0.0)
            refused += [r for r in run.refused if r not in refused]
            if run.error is not None and run.error.get("stage") == "import":
                module = str(run.error.get("module"))
                if module not in import_faults:
                    import_faults.append(module)
            layer_errors, div = compare_pipeline(task, run, path)
            if path != "untraced":
                errors += layer_errors
            checked.append((path, task.workload.id, div is None))
            if div is not None:
                if task.workload.id not in failing:
                    failing.append(task.workload.id)
                first = first or div
        timings["run"] = execution.seconds
    finally:
        execution.close()
    seconds = time.perf_counter() - start
    if refused:
        message = f"the run-time guard refused {len(refused)} access(es): {refused[0]}"
        return Verification(Outcome.FORBIDDEN, message, first, tuple(errors), tuple(failing), None,
                            bounded(f"REJECTED (forbidden): {message}"), seconds, tuple(refused), timings=timings,
                            checked=tuple(checked), **tails)
    if first is None:
        message = (f"The candidate matches the reference on {len(suite)} workloads with and without traces"
                   f" and on {len(final_check)} final-check workload(s) ({len(errors)} layers).")
        return Verification(Outcome.PASSED, message, None, tuple(errors), (), None, f"PASSED: {message}", seconds,
                            timings=timings, checked=tuple(checked), **tails)
    crashed = first.kind == "error" or bool(import_faults)
    outcome = Outcome.CRASHED if crashed else Outcome.WRONG_RESULT
    if import_faults:
        found_blame: Blame | None = Blame(tuple(m for m in ROLES if m in import_faults), (), tuple(
            f"the {m} module does not import (not run again for blame)" for m in import_faults), 0.0)
    else:
        by_id = {w.id: w for w in (*suite, *final_check)}
        found_blame = stage_blame(executor, [by_id[w] for w in failing]) if blame else None
    message = (f"The candidate differs from the reference on {len(failing)} of {len(suite) + len(final_check)} "
               f"workloads; first divergence: {first.describe()}")
    result = Verification(outcome, message, first, tuple(errors), tuple(failing), found_blame, "", seconds,
                          timings=timings, checked=tuple(checked), **tails)
    return dataclasses.replace(result, diagnosis=diagnose(result))
