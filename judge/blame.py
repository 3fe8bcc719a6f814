"""Blame: every candidate module on the reference's inputs to its stage, in one job.

The modules whose output differs are blamed, the first in stage order leading.  The candidate's network
and memory also run on the reference's mapping (substitution), which adds evidence when two modules are
faulty.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from judge.compare import Divergence, StageEvidence, compare_pipeline, compare_stage
from judge.executors import BadOutputError, Executor
from judge.jobs import ROLES, Task, make_job, read_task
from judge.suites import Workload
from sandbox.base import Outcome


@dataclass(frozen=True)
class Blame:
    """Which modules the per-stage evidence blames, that evidence, and what substitution added."""

    modules: tuple[str, ...]
    stages: tuple[StageEvidence, ...]
    evidence: tuple[str, ...]
    seconds: float
    outcome: Outcome = Outcome.PASSED
    """How the per-stage run itself ended (``passed`` when it ran to the end)."""


def stage_blame(executor: Executor, workloads: Sequence[Workload]) -> Blame:
    """Run every candidate module on the reference's inputs to its stage (one job) and blame those that differ."""
    start = time.perf_counter()
    tasks: list[Task] = []
    for w in workloads:
        traced = not w.id.endswith("@final_check")
        tasks += [Task(f"stage-mapping/{w.id}", w, "mapping", "mapping", False),
                  Task(f"stage-network/{w.id}", w, "network", "network", False)]
        if traced:
            tasks.append(Task(f"stage-memory/{w.id}", w, "memory", "memory", True))
        tasks.append(Task(f"stage-memory-untraced/{w.id}", w, "memory", "memory", False))
        if traced:
            tasks.append(Task(f"from-network/{w.id}", w, "network", "memory", True))
    job, arrays = make_job(tasks)
    execution = executor.run(job, arrays)
    try:
        if execution.outcome is not Outcome.PASSED or execution.manifest is None:
            return Blame((), (), (f"the per-stage run ended {execution.outcome.value}: {execution.message}",),
                         time.perf_counter() - start, execution.outcome)
        stages: dict[str, StageEvidence] = {}
        substitution: list[str] = []
        suffix_runs: list[Divergence | None] = []
        for index, task in enumerate(tasks):
            try:
                run = read_task(execution, index, task)
            except BadOutputError as exc:
                substitution.append(f"{task.id}: unreadable output ({exc})")
                continue
            if task.id.startswith("from-network/"):
                suffix_runs.append(compare_pipeline(task, run, "traced")[1])
                continue
            if task.start in stages:
                continue
            evidence = compare_stage(task, run)
            if evidence is not None:
                stages[task.start] = evidence
    finally:
        execution.close()
    diverging = [div for div in suffix_runs if div is not None]
    if suffix_runs:
        substitution.append("with the reference's mapping, the candidate's network and memory " + (
            f"still diverge on {len(diverging)} of {len(suffix_runs)} workloads, first at {diverging[0].workload} "
            f"layer {diverging[0].layer} ({diverging[0].kind} {diverging[0].trace or diverging[0].figure or ''})"
            if diverging else f"match on all {len(suffix_runs)} workloads"))
    ordered = tuple(stages[role] for role in ROLES if role in stages)
    modules = tuple(e.stage for e in ordered)
    notes = tuple(substitution) if len(modules) > 1 else ()
    if not modules:
        return Blame(ROLES, (), ("every module matches the reference on the reference's inputs, yet the candidate's "
                                 "own pipeline diverges: its modules disagree on the interface",
                                 *substitution), time.perf_counter() - start)
    return Blame(modules, ordered, notes, time.perf_counter() - start)
