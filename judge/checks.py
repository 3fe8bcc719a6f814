"""What a module is checked for on its own before it goes to the verifier, and how candidates are put on disk.

* :func:`static_problem`: on the host, never running the code: it parses, defines the contract's
  function with the right parameters, and uses only what the verifier's rules allow.
* :func:`local_problem`: in the sandbox, the module alone on the reference's inputs to its stage
  (one small workload, with traces on and off): it must run and return the contract's types.  Its
  numbers are not compared here; that is the verifier's job, whose evidence goes to the repairer.
* :func:`stage_evidence`: the module alone on the reference's inputs to its stage over the suite,
  compared field by field with the reference's output (a unit's check at ``function`` granularity,
  :mod:`agents.unit_checks`, runs it on the module assembled around the unit).

The sandbox runs go through an executor factory (:class:`judge.executors.Sandboxes`).
"""

from __future__ import annotations

import ast
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from judge.compare import StageEvidence, compare_stage, error_text
from judge.executors import BadOutputError, ExecutorFactory
from judge.harness import harness, rules
from judge.jobs import Task, TaskRun, make_job, read_task
from judge.suites import Workload
from reference_sim import contract
from sandbox.base import Outcome

logger = logging.getLogger(__name__)

CONTRACT_SOURCE_FILE = Path(contract.__file__).resolve()
PARAMETERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mapping": (("layer", "hardware"), ()),
    "network": (("mapping", "hardware"), ()),
    "memory": (("mapping", "network", "hardware"), ("traces",)),
}
"""Per module: the entry point's positional parameters and keyword parameters."""
LOCAL_LAYERS = 3
"""Layers of the first suite workload a local check runs."""


def write_candidate(folder: Path, modules: Mapping[str, str]) -> Path:
    """A candidate folder: ``<role>.py`` per module given, plus a verbatim copy of the contract."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.py"):
        stale.unlink()
    for role, code in modules.items():
        if role not in harness.STAGES:
            raise ValueError(f"unknown module {role!r}")
        (folder / f"{role}.py").write_text(code, encoding="utf-8")
    shutil.copyfile(CONTRACT_SOURCE_FILE, folder / "contract.py")
    return folder


def _entry_point_problem(role: str, tree: ast.Module) -> str | None:
    name = harness.FUNCTIONS[role]
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not found:
        return f"the {role} module must define a top-level function {name}(); none was found"
    fn = found[-1]
    positional = tuple(a.arg for a in [*fn.args.posonlyargs, *fn.args.args])
    keywords = tuple(a.arg for a in fn.args.kwonlyargs)
    want_pos, want_kw = PARAMETERS[role]
    if positional[:len(want_pos)] != want_pos or (len(positional) > len(want_pos)
                                                   and len(fn.args.defaults) < len(positional) - len(want_pos)):
        return (f"{name}() must take the positional parameters ({', '.join(want_pos)}); it takes "
                f"({', '.join(positional)})")
    for kw in want_kw:
        if kw not in keywords and kw not in positional:
            return f"{name}() must take the keyword parameter {kw} (e.g. `*, {kw}: bool = False`)"
    return None


def static_problem(role: str, code: str, *, required: Sequence[str] = ()) -> str | None:
    """Why ``code`` cannot be ``role``'s module (a message for the model), or ``None``.

    Parsed, never run: syntax, the entry point's signature (or, for one unit, that ``required``
    names are defined) and the verifier's import and name rules.
    """
    try:
        tree = rules.parse(code, f"{role}.py")
        compile(code, f"{role}.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"{role}.py line {exc.lineno}: the code does not parse: {exc.msg}"
    if required:
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        missing = [n for n in required if n not in defined]
        if missing:
            return f"the answer must define {', '.join(missing)} at top level"
    else:
        problem = _entry_point_problem(role, tree)
        if problem is not None:
            return problem
    refusals = rules.check_source(code, f"{role}.py", frozenset({*harness.STAGES, *rules.CONTRACT_MODULES}))
    if refusals:
        lines = [r.describe() for r in refusals[:3]]
        return ("the verifier refuses this code: " + "; ".join(lines)
                + ". Use numpy, the allowed standard-library modules and the contract only "
                  "(`from .contract import ...`).")
    return None


@contextmanager
def scratch_candidate(modules: Mapping[str, str], workdir: Path | None = None) -> Iterator[Path]:
    """A temporary candidate folder holding ``modules``; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="simcoder-check-", dir=workdir))
    try:
        yield write_candidate(base / "candidate", modules)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _local_workload(suite: Sequence[Workload]) -> Workload:
    first = suite[0]
    return replace(first, id=f"{first.id}[:{LOCAL_LAYERS}]", layers=first.layers[:LOCAL_LAYERS])


def _task_runs(module: Mapping[str, str], executor_for: ExecutorFactory,
               tasks: Sequence[Task]) -> list[tuple[Task, TaskRun]] | str:
    """Run ``tasks`` over a scratch candidate holding ``module``: each task's decoded run, or what went wrong."""
    with scratch_candidate(module) as folder:
        execution = executor_for(folder).run(*make_job(tasks))
        try:
            if execution.outcome is not Outcome.PASSED or execution.manifest is None:
                tail = f" (stderr: {execution.stderr_tail[-300:]})" if execution.stderr_tail else ""
                return f"the run did not finish in the sandbox ({execution.outcome.value}): {execution.message}{tail}"
            runs: list[tuple[Task, TaskRun]] = []
            for index, task in enumerate(tasks):
                try:
                    run = read_task(execution, index, task)
                except BadOutputError as exc:
                    return f"the harness could not read the module's output: {exc}"
                if run.refused:
                    return f"the run-time guard refused: {run.refused[0]}"
                runs.append((task, run))
            return runs
        finally:
            execution.close()


def local_problem(role: str, code: str, executor_for: ExecutorFactory,
                  suite: Sequence[Workload]) -> str | None:
    """Run ``role``'s module alone in the sandbox on the reference's inputs to its stage; the problem or ``None``."""
    workload = _local_workload(suite)
    tasks = [Task(f"local-{role}/{workload.id}", workload, role, role, False)]
    if role == "memory":
        tasks.append(Task(f"local-{role}-traced/{workload.id}", workload, role, role, True))
    runs = _task_runs({role: code}, executor_for, tasks)
    if isinstance(runs, str):
        return runs
    for task, run in runs:
        if run.error is not None:
            return (f"on {workload.id} ({'traces on' if task.traces else 'traces off'}) the module failed: "
                    f"{error_text(run.error)}")
    return None


def stage_evidence(role: str, module_code: str, executor_for: ExecutorFactory,
                   suite: Sequence[Workload]) -> StageEvidence | str | None:
    """``role``'s module on the reference's inputs to its stage over ``suite``, compared with the reference.

    ``None`` when it matches everywhere; the first :class:`~judge.StageEvidence` where it
    differs; a string when the run itself failed.
    """
    tasks: list[Task] = []
    for w in suite:
        tasks.append(Task(f"unit-{role}/{w.id}", w, role, role, False))
        if role == "memory":
            tasks.append(Task(f"unit-{role}-traced/{w.id}", w, role, role, True))
    runs = _task_runs({role: module_code}, executor_for, tasks)
    if isinstance(runs, str):
        return runs
    for task, run in runs:
        evidence = compare_stage(task, run)
        if evidence is not None:
            return evidence
    return None


