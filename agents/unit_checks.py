"""``function`` granularity's checks: a unit written by the model, put inside the literal reference's
other units and run on the reference's inputs to the module's stage (:func:`judge.checks.stage_evidence`);
which written unit to blame when the assembled module fails; and template mode's answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agents import skeleton
from agents.planner import ENTRY_POINTS
from judge import checks, reference_runs
from judge.executors import ExecutorFactory
from judge.suites import Workload


def template_code(role: str, granularity: str) -> dict[str, str]:
    """Template mode's answer: the built-in module (``module``) or the literal reference's units (``function``)."""
    if granularity == "function":
        return {u.name: u.reference for u in skeleton.skeleton(role).units}
    return {role: reference_runs.reference_code(role)}


def unit_problem(role: str, unit: str, code: str, executor_for: ExecutorFactory,
                 suite: Sequence[Workload]) -> str | None:
    """One unit checked on its own: inside the literal reference's other units, against the reference's stage output."""
    module = skeleton.assemble(role, {unit: code}, fill_from_reference=True)
    problem = checks.static_problem(role, module)
    if problem is not None:
        return problem
    found = checks.stage_evidence(role, module, executor_for, suite)
    if found is None:
        return None
    if isinstance(found, str):
        return f"with {unit} written by you and the other units as given, {found}"
    return f"with {unit} written by you and the other units as given, the module differs: {found.describe()}"


def blamed_unit(role: str, written: Mapping[str, str], executor_for: ExecutorFactory,
                suite: Sequence[Workload]) -> tuple[str, str]:
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
