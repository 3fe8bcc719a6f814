"""The suite's self-check: every reference solution passes its hidden tests, and mutants of it do not.

Mutants are made automatically from each task's reference solution by AST operators: an integer
constant off by one, a comparison flipped, ``+``/``-`` or ``*``/``//`` swapped, ``and``/``or``
swapped, a ``not`` dropped, the first two arguments of a call swapped, a statement dropped.  Each
task's tests run on its golden solution (the sanity run must pass 100 %) and on up to
``per_task`` of its mutants; a mutant is killed when the tests reject it (a mutant that hangs past
the deadline counts as killed).  The mutation score is killed over all mutants tried.

A feature task's mutants are not made by these operators: they are the seeded mutants of its built-in
(:func:`taskbench.feature_tasks.seeded_mutants`, faults in the feature's own logic), ``per_task`` of them.

The code under test is ours (the reference and its mutants), so it runs in worker processes on this
machine, not in the sandbox; a worker that hangs is killed and replaced.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import logging
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from judge.harness.rules import parse

from . import feature_tasks, hidden
from .pool import bounded_map
from .suite import BenchTask, Suite, load_suite

logger = logging.getLogger(__name__)

DEFAULT_PER_TASK = 8
DEFAULT_DEADLINE_S = 15.0
WORKER_MEMORY_BYTES = 4 * 1024**3
MIN_SCORE = 0.80


@dataclass(frozen=True)
class Mutant:
    id: str
    operator: str
    line: int
    code: str


_COMPARE_FLIPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult}


def _is_docstring(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    parent = parents.get(id(node))
    return isinstance(parent, ast.Expr) and isinstance(node, ast.Constant) and isinstance(node.value, str)


def _sites(tree: ast.Module) -> Iterator[tuple[str, ast.AST, Any]]:
    """``(operator, node, change)`` for every place an operator applies."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            yield "constant+1", node, node.value + 1
            yield "constant-1", node, node.value - 1
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _COMPARE_FLIPS:
                    yield "flip-comparison", node, i
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BINOP_SWAPS:
            yield "swap-arithmetic", node, None
        elif isinstance(node, ast.BoolOp):
            yield "swap-boolean", node, None
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield "drop-not", node, None
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and not any(
                isinstance(a, ast.Starred) for a in node.args[:2]):
            yield "swap-arguments", node, None
        for name in ("body", "orelse"):
            body = getattr(node, name, None)
            if isinstance(body, list) and len(body) > 1:
                for i, stmt in enumerate(body):
                    if isinstance(stmt, ast.Assign | ast.AugAssign | ast.Expr | ast.If | ast.For | ast.While
                                  | ast.Return | ast.AnnAssign) and not (
                            isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
                        yield "drop-statement", stmt, (node, name, i)


def _apply(node: ast.AST, operator: str, change: Any) -> None:
    if operator.startswith("constant"):
        assert isinstance(node, ast.Constant)
        node.value = change
    elif operator == "flip-comparison":
        assert isinstance(node, ast.Compare)
        node.ops[change] = _COMPARE_FLIPS[type(node.ops[change])]()
    elif operator == "swap-arithmetic":
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        node.op = _BINOP_SWAPS[type(node.op)]()
    elif operator == "swap-boolean":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif operator == "drop-not":
        assert isinstance(node, ast.UnaryOp)
        node.op = ast.UAdd()
    elif operator == "swap-arguments":
        assert isinstance(node, ast.Call)
        node.args[0], node.args[1] = node.args[1], node.args[0]
    elif operator == "drop-statement":
        parent, name, index = change
        getattr(parent, name)[index] = ast.Pass()


def mutants(solution: str, lines: set[int] | None = None) -> list[Mutant]:
    """Every distinct mutant of ``solution`` that parses, in source order; with ``lines``, only
    mutants of those lines (1-based, of ``solution``)."""
    tree = parse(solution)
    original = ast.unparse(tree)
    sites = list(_sites(tree))
    seen = {original}
    found: list[Mutant] = []
    for index, (operator, node, _) in enumerate(sites):
        if lines is not None and getattr(node, "lineno", 0) not in lines:
            continue
        mutated = copy.deepcopy(tree)
        _, target, change = list(_sites(mutated))[index]
        if operator == "drop-not":
            assert isinstance(target, ast.UnaryOp)
            _replace(mutated, target, target.operand)
        else:
            _apply(target, operator, change)
        try:
            code = ast.unparse(ast.fix_missing_locations(mutated))
            compile(code, "<mutant>", "exec")
        except (SyntaxError, ValueError, TypeError):
            continue
        if code in seen:
            continue
        seen.add(code)
        digest = hashlib.sha256(code.encode()).hexdigest()[:8]
        found.append(Mutant(f"{operator}@{getattr(node, 'lineno', 0)}:{digest}", operator,
                            getattr(node, "lineno", 0), code))
    return found


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return


def sample(found: Sequence[Mutant], count: int, seed: str) -> list[Mutant]:
    """Up to ``count`` mutants spread over the operators (round-robin), in a fixed pseudo-random order."""
    by_operator: dict[str, list[Mutant]] = {}
    for m in sorted(found, key=lambda m: hashlib.sha256((seed + m.id).encode()).hexdigest()):
        by_operator.setdefault(m.operator, []).append(m)
    chosen: list[Mutant] = []
    while len(chosen) < count and any(by_operator.values()):
        for name in sorted(by_operator):
            if by_operator[name] and len(chosen) < count:
                chosen.append(by_operator[name].pop(0))
    return chosen


# --------------------------------------------------------------------------- running


@dataclass
class TaskCheck:
    """One task's self-check: its golden run and its mutants' fates."""

    task: str
    golden: hidden.Judgement | None = None
    tried: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    survived: list[str] = field(default_factory=list)
    covered_lines: int = 0
    """Lines of the solution the tests execute (mutants are made on those lines only)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.golden is not None and self.golden.passed and bool(self.killed)


@dataclass
class SelfCheck:
    tasks: list[TaskCheck]
    seconds: float

    @property
    def golden_pass_rate(self) -> float:
        return sum(1 for t in self.tasks if t.golden is not None and t.golden.passed) / max(1, len(self.tasks))

    @property
    def mutants(self) -> int:
        return sum(len(t.tried) for t in self.tasks)

    @property
    def killed(self) -> int:
        return sum(len(t.killed) for t in self.tasks)

    @property
    def score(self) -> float:
        return self.killed / max(1, self.mutants)

    def problems(self) -> list[str]:
        found = [f"{t.task}: its reference solution fails its tests: {t.golden.failure} {t.golden.detail[:200]}"
                 for t in self.tasks if t.golden is not None and not t.golden.passed]
        found += [f"{t.task}: no mutant is killed: its tests cannot fail" for t in self.tasks
                  if t.golden is not None and t.golden.passed and not t.killed]
        if self.score < MIN_SCORE:
            found.append(f"mutation score {self.score:.1%} is below {MIN_SCORE:.0%}")
        return found


def _covered(task: BenchTask, run: Callable[[], hidden.Judgement]) -> tuple[hidden.Judgement, set[int]]:
    """``run()`` traced: its judgement and the lines of the task's solution it executed."""
    module = hidden.candidate_module(task, task.solution)
    offset = module.find(task.solution.strip("\n"))
    first = module[:offset].count("\n") if offset >= 0 else 0
    names = {f"{task.role}.py", "subject.py"}
    hits: set[int] = set()

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            hits.add(frame.f_lineno - first)
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        filename = frame.f_code.co_filename
        if filename.rsplit("/", 1)[-1] in names and "simcoder-" in filename:
            hits.add(frame.f_code.co_firstlineno - first)
            return local
        return None

    sys.settrace(tracer)
    try:
        result = run()
    finally:
        sys.settrace(None)
    return result, {line for line in hits if line >= 1}


def _worker(conn: Connection, task_id: str, codes: list[str], golden: bool) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    logging.disable(logging.WARNING)
    suite = load_suite()
    task = suite.task(task_id)
    runner = hidden.Runner()
    if golden:
        run = partial(hidden.judge, suite, task, task.solution, runner)
        conn.send((run(), set()) if task.kind == "feature" else _covered(task, run))
        conn.close()
        return
    for code in codes:
        try:
            result = hidden.judge(suite, task, code, runner)
        except Exception as exc:
            result = hidden.Judgement(False, "crash", detail=f"{type(exc).__name__}: {exc}")
        conn.send(result)
    conn.close()


@contextmanager
def _worker_process(task: BenchTask, codes: list[str], golden: bool) -> Iterator[Connection]:
    """A forked :func:`_worker` and the end of the pipe its results arrive on; killed when done with."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_worker, args=(child, task.id, codes, golden), daemon=True)
    process.start()
    child.close()
    try:
        yield parent
    finally:
        process.kill()
        process.join()
        parent.close()


def golden_run(task: BenchTask, deadline_s: float = DEFAULT_DEADLINE_S) -> tuple[hidden.Judgement, set[int]]:
    """The reference solution against its tests, in a worker, and the solution lines the tests execute."""
    with _worker_process(task, [], golden=True) as results:
        try:
            if not results.poll(deadline_s * 4):
                return hidden.Judgement(False, "timeout", detail="the golden run did not finish"), set()
            found: tuple[hidden.Judgement, set[int]] = results.recv()
            return found
        except EOFError:
            return hidden.Judgement(False, "crash", detail="the worker died"), set()


def _judge_all(task: BenchTask, codes: list[str], deadline_s: float) -> list[hidden.Judgement]:
    """Judge ``codes`` in a worker process; one that runs past ``deadline_s`` is a ``timeout`` (and the
    worker is replaced)."""
    judged: list[hidden.Judgement] = []
    while len(judged) < len(codes):
        with _worker_process(task, codes[len(judged):], golden=False) as results:
            while len(judged) < len(codes):
                if not results.poll(deadline_s):
                    judged.append(hidden.Judgement(False, "timeout", detail=f"ran past {deadline_s:.0f} s"))
                    break
                try:
                    judged.append(results.recv())
                except EOFError:
                    judged.append(hidden.Judgement(False, "crash", detail="the worker died"))
                    break
    return judged


def task_mutants(task: BenchTask, lines: set[int]) -> list[Mutant]:
    """A task's candidate mutants: of the solution's ``lines`` by the operators, or a feature task's seeded ones."""
    if task.kind == "feature":
        seeded = feature_tasks.seeded_mutants(task.feature)
        return [Mutant(f"seeded:{name}", "seeded", 0, code) for name, code in seeded]
    return mutants(task.solution, lines)


def check_task(task: BenchTask, per_task: int = DEFAULT_PER_TASK,
               deadline_s: float = DEFAULT_DEADLINE_S) -> TaskCheck:
    start = time.perf_counter()
    golden, lines = golden_run(task, deadline_s)
    check = TaskCheck(task.id, golden=golden, covered_lines=len(lines))
    if not golden.passed:
        check.seconds = time.perf_counter() - start
        return check
    chosen = sample(task_mutants(task, lines), per_task, task.id)
    judged = _judge_all(task, [m.code for m in chosen], deadline_s)
    for mutant, result in zip(chosen, judged):
        check.tried.append(mutant.id)
        (check.survived if result.passed else check.killed).append(mutant.id)
    check.seconds = time.perf_counter() - start
    return check


def self_check(suite: Suite, tasks: Sequence[BenchTask] | None = None, *, per_task: int = DEFAULT_PER_TASK,
               jobs: int = 2, deadline_s: float = DEFAULT_DEADLINE_S,
               progress: Callable[[TaskCheck, int, int], None] | None = None) -> SelfCheck:
    """The golden sanity run and the mutation score over ``tasks`` (default: the whole suite)."""
    chosen = list(tasks if tasks is not None else suite.tasks)
    start = time.perf_counter()
    checks = bounded_map(lambda task: check_task(task, per_task, deadline_s), chosen, jobs=jobs, progress=progress)
    return SelfCheck(checks, time.perf_counter() - start)


def report_text(result: SelfCheck) -> str:
    """The self-check as markdown: the totals, then per module and level, then the weakest tasks."""
    lines = [f"Tasks: {len(result.tasks)}; golden solutions passing their tests: {result.golden_pass_rate:.0%}",
             f"Mutants: {result.mutants}, killed {result.killed}; mutation score {result.score:.1%}",
             f"Self-check time: {result.seconds:.0f} s", ""]
    suite = load_suite()
    groups: dict[str, list[TaskCheck]] = {}
    for check in result.tasks:
        groups.setdefault(f"module {check.task.partition('.')[0]}", []).append(check)
        groups.setdefault(f"level {suite.task(check.task).level}", []).append(check)
    lines += ["| group | tasks | mutants | killed | score |", "|---|---:|---:|---:|---:|"]
    for name in sorted(groups, key=lambda g: (not g.startswith("module"), g)):
        tried = sum(len(c.tried) for c in groups[name])
        killed = sum(len(c.killed) for c in groups[name])
        lines.append(f"| {name} | {len(groups[name])} | {tried} | {killed} | {killed / max(1, tried):.1%} |")
    problems = result.problems()
    lines += ["", "Problems: " + ("none" if not problems else ""), *(f"- {p}" for p in problems)]
    return "\n".join(lines) + "\n"
