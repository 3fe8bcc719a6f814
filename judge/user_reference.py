"""A user's own reference simulator: code like a candidate's, so it runs only in the sandbox.

A run (``--reference DIR``) or the verifier service (``reference_dir``) may judge candidates against a
folder holding ``mapping.py``, ``network.py`` and ``memory.py`` under the contract.  That folder is
never imported here: :func:`check_reference_folder` parses it with the candidate's rules, and
:func:`expected_suites` runs it as a candidate (one job, end to end with traces and without) through
the executor the run uses for candidates, decodes every stage's output per layer and attaches the
results to the workloads, where :func:`judge.reference_runs.reference_run` finds them.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from judge import compare, executors, jobs, reference_runs, suites
from judge.harness import harness, rules
from sandbox.base import Outcome

logger = logging.getLogger(__name__)

ExecutorFactory = Callable[[Path], executors.Executor]
UserReferenceError = reference_runs.UserReferenceError
TRACED, UNTRACED = "expected-traced", "expected-untraced"


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 4] + " ..."


def check_reference_folder(folder: str | Path) -> Path:
    """The folder, resolved, once it holds the three modules, each defining the contract's function, and its
    sources pass the candidate's rules (parsed, never run); raises :class:`UserReferenceError`."""
    path = Path(folder).resolve()
    if not path.is_dir():
        raise UserReferenceError(f"the reference in {path}: not a folder")
    missing = [f"{role}.py" for role in harness.STAGES if not (path / f"{role}.py").is_file()]
    if missing:
        raise UserReferenceError(f"the reference in {path} needs mapping.py, network.py and memory.py; "
                                 f"missing {', '.join(missing)}")
    try:
        refusals = rules.check_folder(path)
    except SyntaxError as exc:
        raise UserReferenceError(f"the reference in {path}: {Path(exc.filename or '?').name}:{exc.lineno}: "
                                 f"the source does not parse: {exc.msg}") from None
    except (OSError, UnicodeError) as exc:
        raise UserReferenceError(f"the reference in {path} cannot be read: {type(exc).__name__}") from None
    if refusals:
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        raise UserReferenceError(f"the reference in {path} uses what the sandbox's rules forbid: "
                                 f"{refusals[0].describe()}{more}")
    for role in harness.STAGES:
        name = harness.FUNCTIONS[role]
        tree = rules.parse((path / f"{role}.py").read_text(encoding="utf-8", errors="replace"), f"{role}.py")
        if not any(isinstance(node, ast.FunctionDef) and node.name == name for node in tree.body):
            raise UserReferenceError(f"the reference in {path}: {role}.py defines no top-level {name}() "
                                     "(the contract's interface)")
    return path


def _tasks(suite: Sequence[suites.Workload], final_check: Sequence[suites.Workload]) -> list[jobs.Task]:
    tasks: list[jobs.Task] = []
    for w in suite:
        tasks += [jobs.Task(f"{TRACED}/{w.id}", w, "mapping", "memory", True),
                  jobs.Task(f"{UNTRACED}/{w.id}", w, "mapping", "memory", False)]
    return tasks + [jobs.Task(f"{UNTRACED}/{w.id}", w, "mapping", "memory", False) for w in final_check]


def _layers(folder: Path, task: jobs.Task, run: jobs.TaskRun) -> tuple[jobs.StageOutputs, ...]:
    """The run's outputs of every layer, or the one-line reason the reference gave none."""
    where = f"on workload {task.workload.id} ({'traces on' if task.traces else 'traces off'})"
    if run.refused:
        raise UserReferenceError(f"the user's reference in {folder} was refused by the sandbox's run-time guard "
                                 f"{where}: {_one_line(run.refused[0])}")
    if run.error is not None:
        raise UserReferenceError(f"the user's reference in {folder} crashed {where}: the "
                                 f"{run.error.get('module')} module {_one_line(compare.error_text(run.error))}")
    layers = run.layers
    if len(layers) != len(task.workload.layers) or any(
            out.mapping is None or out.schedule is None or out.memory is None for out in layers):
        raise UserReferenceError(f"the user's reference in {folder} gave results for {len(layers)} of "
                                 f"{len(task.workload.layers)} layers {where}")
    if task.traces and any(out.memory is not None and out.memory.traces is None for out in layers):
        raise UserReferenceError(f"the user's reference in {folder} returned no traces with traces=True {where}")
    return layers


def _reference_layers(folder: Path, workload: suites.Workload, traced: tuple[jobs.StageOutputs, ...] | None,
                      untraced: tuple[jobs.StageOutputs, ...]) -> tuple[tuple[suites.ReferenceLayer, ...] | None,
                                                                        tuple[suites.ReferenceLayer, ...]]:
    """The :class:`~judge.suites.ReferenceLayer` tuples :func:`~judge.reference_runs.reference_run` returns."""
    plain: list[suites.ReferenceLayer] = []
    full: list[suites.ReferenceLayer] = []
    for i, out in enumerate(untraced):
        assert out.mapping is not None and out.schedule is not None and out.memory is not None
        memories = [out.memory] if traced is None else [out.memory, traced[i].memory]
        figures: list[dict[str, float]] = []
        for memory in memories:
            assert memory is not None
            try:
                figures.append(reference_runs.figures_of(out.layer, workload.hardware, out.mapping, memory))
            except (ArithmeticError, KeyError, TypeError, ValueError) as exc:
                raise UserReferenceError(f"the user's reference in {folder} gives no report figures on workload "
                                         f"{workload.id} layer {i}: {type(exc).__name__}: {_one_line(str(exc))}"
                                         ) from None
        plain.append(suites.ReferenceLayer(out.layer, out.mapping, out.schedule, out.memory, out.memory,
                                           figures[0]))
        if traced is not None:
            memory = traced[i].memory
            assert memory is not None
            full.append(suites.ReferenceLayer(out.layer, out.mapping, out.schedule, memory, out.memory,
                                              figures[1]))
    return (tuple(full) if traced is not None else None), tuple(plain)


def expected_suites(folder: str | Path, executor_for: ExecutorFactory, suite: Sequence[suites.Workload],
                    final_check: Sequence[suites.Workload] = ()) -> tuple[suites.Suite, suites.Suite]:
    """``suite`` and ``final_check`` with the user's reference's expected results attached.

    The folder is checked (:func:`check_reference_folder`), then run as a candidate by ``executor_for(folder)``
    in one job: every suite workload end to end with traces and without, every final-check workload without.
    A refusal, a crash, a timeout or output the verifier cannot read raises :class:`UserReferenceError`, one
    line naming the folder (and the workload where there is one).
    """
    path = check_reference_folder(folder)
    suite, final_check = tuple(suite), tuple(final_check)
    tasks = _tasks(suite, final_check)
    if not tasks:
        return (), ()
    start = time.perf_counter()
    execution = executor_for(path).run(*jobs.make_job(tasks))
    outputs: dict[str, tuple[jobs.StageOutputs, ...]] = {}
    try:
        if execution.outcome is not Outcome.PASSED or execution.manifest is None:
            tail = f" (stderr: {_one_line(execution.stderr_tail[-300:])})" if execution.stderr_tail else ""
            raise UserReferenceError(f"the user's reference in {path} did not finish in the sandbox "
                                     f"({execution.outcome.value}): {_one_line(execution.message)}{tail}")
        for index, task in enumerate(tasks):
            try:
                run = jobs.read_task(execution, index, task)
            except executors.BadOutputError as exc:
                raise UserReferenceError(f"the user's reference in {path} gave output the verifier cannot read "
                                         f"on workload {task.workload.id}: {_one_line(str(exc))}") from None
            outputs[task.id] = _layers(path, task, run)
    finally:
        execution.close()

    def attach(w: suites.Workload, traced: bool) -> suites.Workload:
        full, plain = _reference_layers(path, w, outputs[f"{TRACED}/{w.id}"] if traced else None,
                                        outputs[f"{UNTRACED}/{w.id}"])
        return dataclasses.replace(w, reference=path, expected=full, expected_untraced=plain)

    result = tuple(attach(w, True) for w in suite), tuple(attach(w, False) for w in final_check)
    logger.info("expected results of the user's reference in %s: %d workloads in %.2f s", path,
                len(suite) + len(final_check), time.perf_counter() - start)
    return result


def expected_suite(suite: Sequence[suites.Workload], folder: str | Path,
                   executor_for: ExecutorFactory) -> suites.Suite:
    """``suite`` with the user's reference's results attached, traces on and off (see :func:`expected_suites`)."""
    return expected_suites(folder, executor_for, suite)[0]
