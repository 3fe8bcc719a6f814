"""The optimiser's measurements: where a verified candidate spends its time, and whether a rewrite is faster.

Times come from the harness inside the sandbox (each task's own seconds, so container start-up is
left out) on the spec's ``final_check`` workloads.  A faster module is accepted only when the whole
candidate still verifies and its median of :data:`REPEATS` runs beats the old one's.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agents.planner import ROLES
from judge import checks, executors, jobs, suites, verdict, verifier
from sandbox.base import Outcome

REPEATS = 3


class MeasureError(RuntimeError):
    """A timing run did not finish."""


@dataclass(frozen=True)
class Profile:
    """Seconds each module took on the final check, on the reference's inputs to its stage."""

    seconds: dict[str, float]
    workloads: tuple[str, ...]
    layers: int

    @property
    def slowest(self) -> str:
        return max(self.seconds, key=lambda role: self.seconds[role])

    def describe(self) -> str:
        total = sum(self.seconds.values()) or 1.0
        parts = [f"{role}: {self.seconds[role]:.4f} s ({self.seconds[role] / total:.0%})" for role in ROLES
                 if role in self.seconds]
        return (f"Time per module over {self.layers} layers of {', '.join(self.workloads)} (each module on the "
                f"reference's inputs to its stage, traces off): " + "; ".join(parts) + ".")


def _run_seconds(executor: executors.Executor, tasks: Sequence[jobs.Task]) -> list[float]:
    execution = executor.run(*jobs.make_job(tasks))
    try:
        if execution.outcome is not Outcome.PASSED or execution.manifest is None:
            raise MeasureError(f"the timing run ended {execution.outcome.value}: {execution.message}")
        entries = execution.manifest["tasks"]
        bad = [e.get("id") for e in entries if e.get("status") != "ok"]
        if bad:
            raise MeasureError(f"the timing run failed on {', '.join(map(str, bad))}")
        return [float(e.get("seconds") or 0.0) for e in entries]
    finally:
        execution.close()


def profile(modules: Mapping[str, str], executor_for: executors.ExecutorFactory,
            final_check: Sequence[suites.Workload]) -> Profile:
    """Each module of the candidate timed on the final check."""
    tasks = [jobs.Task(f"profile-{role}/{w.id}", w, role, role, False) for role in ROLES for w in final_check]
    with checks.scratch_candidate(modules) as folder:
        seconds = _run_seconds(executor_for(folder), tasks)
    per_role = {role: 0.0 for role in ROLES}
    for task, s in zip(tasks, seconds, strict=True):
        per_role[task.start] += s
    return Profile(per_role, tuple(w.id for w in final_check), sum(len(w.layers) for w in final_check))


def measure(modules: Mapping[str, str] | Path, executor_for: executors.ExecutorFactory,
            final_check: Sequence[suites.Workload], repeats: int = REPEATS) -> float:
    """Median over ``repeats`` runs of the candidate's whole pipeline on the final check, seconds.

    ``modules`` are module sources, or a folder (a user's reference) timed as it is once it passes the rules.
    """
    tasks = [jobs.Task(f"time/{w.id}", w, "mapping", "memory", False) for w in final_check]
    if isinstance(modules, Path):
        found = verifier.static_check(modules)
        if found is not None:
            raise MeasureError(f"{modules} is not timed: {found[1]}")
        return _median(executor_for(modules), tasks, repeats)
    with checks.scratch_candidate(modules) as folder:
        return _median(executor_for(folder), tasks, repeats)


def _median(executor: executors.Executor, tasks: Sequence[jobs.Task], repeats: int) -> float:
    return statistics.median(sum(_run_seconds(executor, tasks)) for _ in range(repeats))


def decide(before_s: float, after_s: float | None, verification: verdict.Verification | None) -> tuple[bool, str]:
    """Accept only a rewrite that verifies and is measured faster."""
    if verification is None or not verification.passed:
        why = verification.diagnosis.splitlines()[0] if verification is not None else "it was not checked"
        return False, f"refused: the faster version does not verify ({why})"
    if after_s is None or after_s >= before_s:
        return False, (f"refused: verified but not faster (median {after_s:.4f} s against {before_s:.4f} s)"
                       if after_s is not None else "refused: it could not be timed")
    return True, f"accepted: {before_s:.4f} s -> {after_s:.4f} s (median of {REPEATS}), {before_s / after_s:.2f}x"
