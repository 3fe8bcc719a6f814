"""The feature coder's review: a model's feature module extracted, checked on the host, then judged.

A feature answer is taken only when the whole judge passes it (exact at the neutral setting, the oracle
where one exists, every property), run in the sandbox on top of the reference's modules
(:class:`agents.run_features.SandboxedFeatures`).  A failure goes back to the model as the judge's
diagnosis (check, workload, layer, expected, actual) with the failed check's statement.
"""

from __future__ import annotations

import re

from agents.coder import Review
from agents.extract import ExtractionError, extract_code
from agents.feature_prompts import NO_ORACLE_TEXT, ORACLE_TEXT, module_file
from agents.planner import FEATURE_ENTRY_POINT
from agents.run_features import RUN_CHECK, SandboxedFeatures
from features.catalogue import Feature
from features.judge import Verdict
from judge.feature_jobs import REFUSED, feature_static_problem

STATEMENTS: dict[str, str] = {
    "exact": "with every parameter at its neutral value, run must return exactly what the engine's simulate returns",
    RUN_CHECK: "run must return a FeatureRun with one result per layer (and the tables asked for) on every case, "
               "without raising",
}
"""What the judge's own levels say (a property's statement is in the library)."""


def statement(check: str, feature: Feature) -> str:
    """The statement of ``check`` as the model is told it."""
    if check == "oracle":
        return (ORACLE_TEXT if feature.definition.oracle else NO_ORACLE_TEXT).removeprefix(": ")
    registry = feature.registry()
    if check in registry:
        return " ".join(registry[check].statement.split())
    return STATEMENTS.get(check, check)


_MODULE_LINE = re.compile(r"your module line (\d+)")


def with_code_line(text: str, code: str) -> str:
    """``text`` with the code of the line a crash names (``your module line 24``) after it."""
    lines = code.splitlines()

    def show(match: re.Match[str]) -> str:
        number = int(match.group(1))
        return f"{match.group(0)}: {lines[number - 1].strip()[:160]}" if 0 < number <= len(lines) else match.group(0)

    return _MODULE_LINE.sub(show, text, count=1)


def diagnosis(verdict: Verdict, feature: Feature, code: str = "") -> str:
    """What the model is told about a failed judging (a crash's line shown with its ``code``)."""
    failure = verdict.failure
    if failure is None:
        return f"{module_file(feature.name)}: the judge did not pass it ({verdict.evidence})"
    return (f"{module_file(feature.name)} was run and judged; it failed a check.\n"
            f"{with_code_line(failure.line(), code)}\n"
            f"The check `{failure.check}`: {statement(failure.check, feature)}\n"
            f"Passed before it: {verdict.evidence}.")


def review_code(feature: Feature, code: str, sandboxed: SandboxedFeatures) -> tuple[Review, Verdict | None]:
    """Check extracted ``code`` statically, then judge it in the sandbox: the review (never ``no_code``) and the
    judge's verdict (``None`` when the code was stopped before it ran)."""
    problem = feature_static_problem(code)
    if problem is not None:
        return Review("refused" if problem.startswith(REFUSED) else "invalid", None, problem), None
    verdict = sandboxed.judge(feature, code)
    if verdict.passed:
        return Review("accepted", code, ""), verdict
    crashed = verdict.failure is not None and verdict.failure.check == RUN_CHECK
    return Review("crashed" if crashed else "wrong", None, diagnosis(verdict, feature, code)), verdict


def review(feature: Feature, answer: str, sandboxed: SandboxedFeatures) -> Review:
    """Extract, check statically, then judge in the sandbox: the answer's code, or why it cannot be taken."""
    try:
        code = extract_code(answer, required=[FEATURE_ENTRY_POINT])
    except ExtractionError as exc:
        return Review("no_code", None, str(exc))
    return review_code(feature, code, sandboxed)[0]
