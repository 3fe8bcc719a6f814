"""The verifier's answer for one candidate: the outcome, the first divergence, cycle errors, blame and diagnosis."""

from __future__ import annotations

from dataclasses import dataclass, field

from judge.blame import Blame
from judge.compare import CycleError, Divergence
from sandbox.base import Outcome


@dataclass(frozen=True)
class Verification:
    """The verifier's answer for one candidate."""

    outcome: Outcome
    message: str
    divergence: Divergence | None
    cycle_errors: tuple[CycleError, ...]
    failing_workloads: tuple[str, ...]
    blame: Blame | None
    diagnosis: str
    seconds: float
    """Static check, end-to-end run and comparison (the per-stage run excluded; see ``blame.seconds``)."""
    refusals: tuple[str, ...] = ()
    """What the static check or the run-time guard refused (``file:line: what (why)``)."""
    stdout_tail: str = ""
    stderr_tail: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    """Harness seconds per path (``traced``, ``untraced``, ``final_check``) and the run's wall time."""
    checked: tuple[tuple[str, str, bool], ...] = ()
    """Each end-to-end task: ``(path, workload id, matched)``."""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def blamed(self) -> tuple[str, ...]:
        return self.blame.modules if self.blame is not None else ()

    @property
    def total_cycle_error(self) -> float | None:
        """Relative error of the summed total cycles over the layers the candidate produced."""
        pairs = [(e.expected, e.actual) for e in self.cycle_errors if e.actual is not None]
        if not pairs:
            return None
        expected = sum(p[0] for p in pairs)
        return (sum(p[1] for p in pairs if p[1] is not None) - expected) / expected
