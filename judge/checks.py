"""What the coder checks before a module goes to the verifier, and how candidates are put on disk.

* :func:`static_problem`: on the host, never running the code: it parses, defines the contract's
  function with the right parameters, and uses only what the verifier's rules allow.
* :func:`local_problem`: in the sandbox, the module alone on the reference's inputs to its stage
  (one small workload, with traces on and off): it must run and return the contract's types.  Its
  numbers are not compared here; that is the verifier's job, whose evidence goes to the repairer.
* :func:`unit_problem`: at ``function`` granularity, one unit inside the literal reference's other
  units, run on the reference's recorded inputs to the module's stage over the suite and compared
  field by field with the reference's output.

Executors come from a :class:`Sandboxes` pool, which caps how many sandbox runs happen at once.
"""

from __future__ import annotations

import ast
import inspect
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agents import skeleton
from agents.planner import ENTRY_POINTS, ROLES
from judge import verifier
from judge.harness import rules
from reference_sim import contract, engine
from sandbox.base import Outcome, Sandbox

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


def reference_code(role: str) -> str:
    """The built-in verified module of ``role`` (the reference's fast module)."""
    return inspect.getsource(getattr(engine.REFERENCE, role))


def template_code(role: str, granularity: str) -> dict[str, str]:
    """Template mode's answer: the built-in module (``module``) or the literal reference's units (``function``)."""
    if granularity == "function":
        return {u.name: u.reference for u in skeleton.skeleton(role).units}
    return {role: reference_code(role)}


def write_candidate(folder: Path, modules: Mapping[str, str]) -> Path:
    """A candidate folder: ``<role>.py`` per module given, plus a verbatim copy of the contract."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.py"):
        stale.unlink()
    for role, code in modules.items():
        if role not in ROLES:
            raise ValueError(f"unknown module {role!r}")
        (folder / f"{role}.py").write_text(code, encoding="utf-8")
    shutil.copyfile(CONTRACT_SOURCE_FILE, folder / "contract.py")
    return folder


def _entry_point_problem(role: str, tree: ast.Module) -> str | None:
    name = ENTRY_POINTS[role]
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
    refusals = rules.check_source(code, f"{role}.py", frozenset({*ROLES, *rules.CONTRACT_MODULES}))
    if refusals:
        lines = [r.describe() for r in refusals[:3]]
        return ("the verifier refuses this code: " + "; ".join(lines)
                + ". Use numpy, the allowed standard-library modules and the contract only "
                  "(`from .contract import ...`).")
    return None


class Sandboxes:
    """Where candidates run: one sandbox (made on first use) and a cap on concurrent runs."""

    def __init__(self, factory: Callable[[], Sandbox], max_concurrent: int, *, timeout_s: float | None = None,
                 workdir: Path | None = None) -> None:
        self._factory = factory
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent))
        self.timeout_s = timeout_s
        self.workdir = workdir

    @property
    def sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = self._factory()
            return self._sandbox

    def executor(self, folder: Path) -> verifier.Executor:
        """An executor over ``folder`` whose runs wait for a free slot."""
        return _SlotExecutor(verifier.SandboxExecutor(self.sandbox, folder, timeout_s=self.timeout_s,
                                                      workdir=self.workdir), self._slots)


class _SlotExecutor:
    def __init__(self, inner: verifier.SandboxExecutor, slots: threading.BoundedSemaphore) -> None:
        self._inner = inner
        self._slots = slots

    @property
    def candidate_dir(self) -> Path | None:
        return self._inner.candidate_dir

    def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> verifier.Execution:
        with self._slots:
            return self._inner.run(job, arrays)


ExecutorFactory = Callable[[Path], verifier.Executor]


@contextmanager
def scratch_candidate(modules: Mapping[str, str], workdir: Path | None = None) -> Iterator[Path]:
    """A temporary candidate folder holding ``modules``; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="simcoder-check-", dir=workdir))
    try:
        yield write_candidate(base / "candidate", modules)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _local_workload(suite: Sequence[verifier.Workload]) -> verifier.Workload:
    first = suite[0]
    return replace(first, id=f"{first.id}[:{LOCAL_LAYERS}]", layers=first.layers[:LOCAL_LAYERS])


def _task_runs(module: Mapping[str, str], executor_for: ExecutorFactory,
               tasks: Sequence[verifier.Task]) -> list[tuple[verifier.Task, verifier.TaskRun]] | str:
    """Run ``tasks`` over a scratch candidate holding ``module``: each task's decoded run, or what went wrong."""
    with scratch_candidate(module) as folder:
        execution = executor_for(folder).run(*verifier.make_job(tasks))
        try:
            if execution.outcome is not Outcome.PASSED or execution.manifest is None:
                tail = f" (stderr: {execution.stderr_tail[-300:]})" if execution.stderr_tail else ""
                return f"the run did not finish in the sandbox ({execution.outcome.value}): {execution.message}{tail}"
            runs: list[tuple[verifier.Task, verifier.TaskRun]] = []
            for index, task in enumerate(tasks):
                try:
                    run = verifier.read_task(execution, index, task)
                except verifier.BadOutputError as exc:
                    return f"the harness could not read the module's output: {exc}"
                if run.refused:
                    return f"the run-time guard refused: {run.refused[0]}"
                runs.append((task, run))
            return runs
        finally:
            execution.close()


def local_problem(role: str, code: str, executor_for: ExecutorFactory,
                  suite: Sequence[verifier.Workload]) -> str | None:
    """Run ``role``'s module alone in the sandbox on the reference's inputs to its stage; the problem or ``None``."""
    workload = _local_workload(suite)
    tasks = [verifier.Task(f"local-{role}/{workload.id}", workload, role, role, False)]
    if role == "memory":
        tasks.append(verifier.Task(f"local-{role}-traced/{workload.id}", workload, role, role, True))
    runs = _task_runs({role: code}, executor_for, tasks)
    if isinstance(runs, str):
        return runs
    for task, run in runs:
        if run.error is not None:
            return (f"on {workload.id} ({'traces on' if task.traces else 'traces off'}) the module failed: "
                    f"{verifier.error_text(run.error)}")
    return None


def stage_evidence(role: str, module_code: str, executor_for: ExecutorFactory,
                   suite: Sequence[verifier.Workload]) -> verifier.StageEvidence | str | None:
    """``role``'s module on the reference's inputs to its stage over ``suite``, compared with the reference.

    ``None`` when it matches everywhere; the first :class:`~judge.verifier.StageEvidence` where it
    differs; a string when the run itself failed.
    """
    tasks: list[verifier.Task] = []
    for w in suite:
        tasks.append(verifier.Task(f"unit-{role}/{w.id}", w, role, role, False))
        if role == "memory":
            tasks.append(verifier.Task(f"unit-{role}-traced/{w.id}", w, role, role, True))
    runs = _task_runs({role: module_code}, executor_for, tasks)
    if isinstance(runs, str):
        return runs
    for task, run in runs:
        evidence = verifier.compare_stage(task, run)
        if evidence is not None:
            return evidence
    return None


def unit_problem(role: str, unit: str, code: str, executor_for: ExecutorFactory,
                 suite: Sequence[verifier.Workload]) -> str | None:
    """One unit checked on its own: inside the literal reference's other units, against the reference's stage output."""
    module = skeleton.assemble(role, {unit: code}, fill_from_reference=True)
    problem = static_problem(role, module)
    if problem is not None:
        return problem
    found = stage_evidence(role, module, executor_for, suite)
    if found is None:
        return None
    if isinstance(found, str):
        return f"with {unit} written by you and the other units as given, {found}"
    return f"with {unit} written by you and the other units as given, the module differs: {found.describe()}"


def blamed_unit(role: str, written: Mapping[str, str], executor_for: ExecutorFactory,
                suite: Sequence[verifier.Workload]) -> tuple[str, str]:
    """At ``function`` granularity, the first written unit that fails its own check, and why.

    When every unit passes on its own the units disagree among themselves; the entry point is blamed.
    """
    for unit in skeleton.skeleton(role).names:
        if unit in written:
            problem = unit_problem(role, unit, written[unit], executor_for, suite)
            if problem is not None:
                return unit, problem
    entry = ENTRY_POINTS[role]
    return entry, (f"each unit matches the reference on its own, but together they differ; "
                   f"check how {entry} uses the others")
