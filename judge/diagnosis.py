"""The diagnosis for the repairer: at most :data:`DIAGNOSIS_CHARS` characters, the blamed module and its
stage evidence first, then the end-to-end divergence, the failing workloads and the cycle errors.
"""

from __future__ import annotations

from judge.compare import number_text
from judge.verdict import Verification

DIAGNOSIS_CHARS = 1200


def bounded(text: str, limit: int = DIAGNOSIS_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def diagnose(result: Verification) -> str:
    """A short diagnosis for the repairer: the blamed module and its stage evidence first, then the rest."""
    if result.passed:
        return f"PASSED: {result.message}"
    lines = [f"REJECTED ({result.outcome.value})."]
    if result.blame is not None and result.blame.modules:
        lines[0] += f" Blamed: {', '.join(result.blame.modules)}."
        for evidence in result.blame.stages[:3]:
            lines.append(f"Stage evidence: {evidence.describe()}.")
        lines += [f"Note: {note}." for note in result.blame.evidence[:2]]
    if result.divergence is not None:
        lines.append(f"End to end, first divergence: {result.divergence.describe()}.")
    lines.append(f"Failing workloads ({len(result.failing_workloads)}): {', '.join(result.failing_workloads[:4])}"
                 + (" ..." if len(result.failing_workloads) > 4 else "") + ".")
    wrong = [e for e in result.cycle_errors if e.actual is None or e.actual != e.expected]
    if wrong:
        parts = [f"{e.workload} L{e.layer} {number_text(e.expected)}->"
                 f"{number_text(e.actual) if e.actual is not None else 'none'}" for e in wrong[:3]]
        total = result.total_cycle_error
        lines.append(f"Cycle errors in {len(wrong)} of {len(result.cycle_errors)} layers: " + ", ".join(parts)
                     + (f"; total {total:+.3%}." if total is not None else "."))
    return bounded("\n".join(lines))
