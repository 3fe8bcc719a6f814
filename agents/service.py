"""The verifier as a service: "verify this simulator against the reference on these workloads".

Pure functions behind ``graph/verifier_graph.py``: read a candidate (a folder such as a run's
standalone package, or module sources given inline), pick the workloads, verify in the sandbox and
answer with plain data (the verdict, the stage evidence, the diagnosis).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agents import checks, summary, verifier
from agents.planner import ROLES, PlanError, load_reference
from reference_sim import engine
from reference_sim.errors import InputError


def candidate_modules(folder: str | None, modules: Mapping[str, str] | None) -> dict[str, str]:
    """The three modules' sources: from ``modules`` (role -> source) or from ``folder`` (``<role>.py`` files)."""
    if modules:
        unknown = sorted(set(modules) - set(ROLES))
        missing = [r for r in ROLES if r not in modules]
        if unknown or missing:
            raise InputError("modules", f"give the sources of mapping, network and memory (missing: "
                                        f"{', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'})")
        return {r: modules[r] for r in ROLES}
    if not folder:
        raise InputError("candidate_dir", "give a candidate folder (e.g. a run's package) or the module sources")
    path = Path(folder)
    missing = [f"{r}.py" for r in ROLES if not (path / f"{r}.py").is_file()]
    if missing:
        raise InputError(path, f"not a simulator folder: missing {', '.join(missing)}")
    return {r: (path / f"{r}.py").read_text(encoding="utf-8") for r in ROLES}


@contextmanager
def spec_file(spec_path: str | None, spec_yaml: str | None) -> Iterator[Path]:
    """The spec to take workloads from: ``spec_yaml`` in a temporary file (removed after), ``spec_path``, or
    scale_sim.yaml."""
    if not spec_yaml:
        yield Path(spec_path) if spec_path else verifier.DEFAULT_SPEC
        return
    with tempfile.TemporaryDirectory(prefix="simcoder-spec-") as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(spec_yaml, encoding="utf-8")
        yield path


def _pick(suite: verifier.Suite, names: Sequence[str] | None, kind: str) -> verifier.Suite:
    if names is None:
        return suite
    chosen = tuple(w for w in suite if w.id.split("@")[0] in names or w.id in names)
    known = sorted({w.id.split("@")[0] for w in suite} | {w.id for w in suite})
    unknown = [n for n in names if not any(n in (w.id, w.id.split("@")[0]) for w in suite)]
    if unknown:
        raise InputError(kind, f"unknown workload(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


def workloads(spec: Path, names: Sequence[str] | None, final_check: Sequence[str] | None,
              reference_dir: str | None = None) -> tuple[verifier.Suite, verifier.Suite]:
    """The suite and the final check: the spec's, or only the named ones (``edge_cases`` or ``edge_cases@spec``)."""
    try:
        reference = load_reference(reference_dir) if reference_dir else engine.REFERENCE
    except PlanError as exc:
        raise InputError("reference_dir", str(exc)) from None
    suite = _pick(verifier.load_suite(spec, reference), names, "workloads")
    final = _pick(verifier.load_final_check(spec, reference), final_check, "final_check")
    if not suite and not final:
        raise InputError("workloads", "no workload to verify on")
    return suite, final


def verify_modules(modules: Mapping[str, str], executor_for: checks.ExecutorFactory, suite: verifier.Suite,
                   final: verifier.Suite) -> dict[str, Any]:
    """Verify the candidate; the verdict as plain data (``agents.summary.verification_record`` plus ``passed``)."""
    with checks.scratch_candidate(modules) as folder:
        result = verifier.verify(executor_for(folder), suite, final_check=final)
    record = summary.verification_record(result)
    return {**record, "passed": result.passed}
