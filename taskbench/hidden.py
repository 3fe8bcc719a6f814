"""Judging an answer: its static checks, then the task's hidden tests, in the sandbox.

:func:`judge` takes the code extracted from a model's answer and says whether it passes, and if not
its failure class: ``syntax``, ``refused_import``, ``interface`` (a name or signature the task
asked for is missing), ``crash`` (it raised, or its module did not import), ``timeout``, or
``wrong`` at a stage (``mapping``, ``network``, ``memory``, ``probe``).  :func:`visible_feedback`
is what a repair loop may show the model: the same checks on the visible part only.

A feature task's answer is reviewed as a run reviews it (:func:`taskbench.feature_tasks.judge_answer`), its
status mapped onto these classes: ``refused`` is ``refused_import``, ``invalid`` is ``syntax`` (it does not
parse) or ``interface``, ``crashed`` is ``crash`` (``timeout`` when the sandbox cut it) and ``wrong`` is
``wrong``; the stage is the check that failed (``run`` for a crash, else e.g. ``oracle`` or a property's
name).  Its visible feedback is the whole judge's diagnosis, what a run feeds back to the feature coder.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import skeleton
from judge import checks, compare, executors
from judge.harness import probe, rules
from sandbox.base import Outcome, Sandbox

from . import feature_tasks, probes
from .suite import BenchTask, Suite

FAILURE_CLASSES: tuple[str, ...] = ("no_code", "syntax", "refused_import", "interface", "crash", "timeout",
                                    "wrong", "truncated", "too_long", "model_error")
"""Why a sample failed (``wrong`` carries the stage where the output first differed)."""


@dataclass(frozen=True)
class Judgement:
    passed: bool
    failure: str = ""
    """One of :data:`FAILURE_CLASSES` (empty when passed)."""
    stage: str = ""
    """For ``wrong`` and ``crash``: the stage (``mapping``, ``network``, ``memory``) or ``probe``."""
    detail: str = ""


PASSED = Judgement(True)


@dataclass
class Runner:
    """Where candidate code runs: a sandbox, or (``sandbox=None``) this process, for trusted code only."""

    sandbox: Sandbox | None = None
    timeout_s: float | None = None
    workdir: Path | None = None

    def executor_for(self, folder: Path) -> executors.Executor:
        if self.sandbox is None:
            return executors.InProcessExecutor(folder)
        return executors.SandboxExecutor(self.sandbox, folder, timeout_s=self.timeout_s, workdir=self.workdir,
                                         workers=1)

    def feature_executor(self) -> executors.FeatureExecutor:
        """Where a feature answer runs: the sandbox, or (no sandbox) this process."""
        if self.sandbox is None:
            return executors.InProcessFeatureExecutor()
        return executors.SandboxFeatureExecutor(self.sandbox, timeout_s=self.timeout_s or executors.FEATURE_TIMEOUT_S,
                                                workdir=self.workdir)

    def run_probes(self, code: str, job: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any] | Judgement:
        with probes.subject_folder(code, self.workdir) as folder:
            if self.sandbox is None:
                return probes.run_in_process(folder, job, arrays)
            result, out, cleanup = executors.run_staged(self.sandbox, folder, job, arrays, timeout_s=self.timeout_s,
                                                        workdir=self.workdir, job_file=probe.PROBE_FILE,
                                                        program="probe")
            try:
                if result.outcome is Outcome.TIMED_OUT:
                    return Judgement(False, "timeout", "probe", result.message)
                if not result.passed:
                    return Judgement(False, "crash", "probe", f"{result.outcome.value}: {result.message}")
                document = probes.read_results(out)
                if isinstance(document, str):
                    return Judgement(False, "crash", "probe", document)
                return document
            finally:
                cleanup()


def candidate_module(task: BenchTask, code: str) -> str:
    """The module the hidden tests run: the answer spliced into the reference's other units (or itself)."""
    if task.kind == "feature":
        return code
    if task.kind == "probe":
        return probes.subject_module(task, code)
    if task.unit is None:
        return code
    return skeleton.assemble(task.role, {task.unit: code}, fill_from_reference=True)


def static_judgement(task: BenchTask, code: str, module: str) -> Judgement | None:
    """Syntax, the names the task asked for, and the verifier's import rules (parsed, never run) of the
    answer ``code`` and of the ``module`` it goes into."""
    try:
        tree = rules.parse(code)
    except SyntaxError as exc:
        return Judgement(False, "syntax", detail=f"line {exc.lineno}: {exc.msg}")
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    missing = [n for n in task.names if n not in defined]
    if missing:
        return Judgement(False, "interface", detail=f"the answer defines no {', '.join(missing)}")
    if task.kind == "stage":
        problem = checks.static_problem(task.role, module)
        if problem is not None:
            failure = "refused_import" if problem.startswith("the verifier refuses") else "interface"
            return Judgement(False, failure, detail=problem)
        return None
    refusals = rules.check_source(module, f"{probe.SUBJECT}.py", frozenset({probe.SUBJECT, *rules.CONTRACT_MODULES}),
                                  rules.PROBE_STDLIB)
    if refusals:
        return Judgement(False, "refused_import", detail="; ".join(r.describe() for r in refusals[:3]))
    return None


def _stage_judgement(found: compare.StageEvidence | str | None) -> Judgement:
    if found is None:
        return PASSED
    if isinstance(found, str):
        return Judgement(False, "timeout" if f"({Outcome.TIMED_OUT.value})" in found else "crash", detail=found)
    if found.error:
        return Judgement(False, "crash", found.stage, found.describe())
    return Judgement(False, "wrong", found.stage, found.describe())


TIMED_OUT_TEXT = "timed out after"
"""What a feature run's error says when the sandbox cut it (:class:`judge.executors.SandboxFeatureExecutor`)."""


def feature_judgement(task: BenchTask, code: str, runner: Runner) -> Judgement:
    """A feature task's answer reviewed as a run reviews it, the review's status as a failure class."""
    review, verdict = feature_tasks.judge_answer(task.feature, code, runner.feature_executor)
    failed = verdict.failure if verdict is not None else None
    check = failed.check if failed is not None else ""
    if review.status == "accepted":
        return PASSED
    if review.status == "refused":
        return Judgement(False, "refused_import", detail=review.problem)
    if review.status == "invalid":
        return Judgement(False, "syntax" if "does not parse" in review.problem else "interface",
                         detail=review.problem)
    if review.status == "crashed":
        timed_out = failed is not None and TIMED_OUT_TEXT in failed.actual
        return Judgement(False, "timeout" if timed_out else "crash", check, review.problem)
    if review.status == "wrong":
        return Judgement(False, "wrong", check, review.problem)
    return Judgement(False, "no_code", detail=review.problem)


def _run(suite: Suite, task: BenchTask, code: str, runner: Runner, visible: bool) -> Judgement:
    if task.kind == "feature":
        return feature_judgement(task, code, runner)
    module = candidate_module(task, code)
    static = static_judgement(task, code, module)
    if static is not None:
        return static
    if task.kind == "stage":
        return _stage_judgement(checks.stage_evidence(task.role, module, runner.executor_for,
                                                      suite.workloads(task, visible=visible)))
    job, arrays = probes.probe_job(suite, task, visible=visible)
    document = runner.run_probes(module, job, arrays)
    if isinstance(document, Judgement):
        return document
    if document.get("refused"):
        return Judgement(False, "refused_import", "probe", f"the run-time guard refused: {document['refused'][0]}")
    expected = probes.expected_results(task, job, arrays)
    found = probes.compare_results(expected, document)
    if found is None:
        return PASSED
    failure, detail = found
    return Judgement(False, failure, "probe", detail)


def judge(suite: Suite, task: BenchTask, code: str, runner: Runner) -> Judgement:
    """``code`` (the unit or module the model wrote) against the task's hidden tests."""
    return _run(suite, task, code, runner, visible=False)


def visible_feedback(suite: Suite, task: BenchTask, code: str, runner: Runner) -> Judgement:
    """The checks a repair loop may report to the model: static checks and the visible part of the tests."""
    return _run(suite, task, code, runner, visible=True)


JudgeFunction = Callable[[Suite, BenchTask, str, Runner], Judgement]
