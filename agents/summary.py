"""From the verifier's answers and the run's state to the report: records, scores, the final status.

Pure functions; the graph's ``report`` node and the CLI's Ctrl-C path both build the report here.
"""

from __future__ import annotations

import inspect
import logging
import platform
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agents.report import (
    AttemptRecord,
    FeatureRecord,
    LayerCycles,
    ModuleRecord,
    OptimiserRecord,
    Reproducibility,
    RunReport,
    RuntimeRecord,
    StageRecord,
    TokenRecord,
    VerificationRecord,
    WorkloadRecord,
    package_versions,
)
from judge import verdict
from reference_sim import engine

logger = logging.getLogger(__name__)


def verification_record(result: verdict.Verification) -> dict[str, Any]:
    """The verification as plain data: :class:`VerificationRecord`'s fields plus ``layers`` (per-layer cycles)."""
    stages = [StageRecord(stage=e.stage, workload=e.workload, field=e.field or "(error)",
                          expected=e.expected, actual=e.actual or e.error)
              for e in (result.blame.stages if result.blame is not None else ())]
    record = VerificationRecord(
        outcome=result.outcome.value, message=result.message, diagnosis=result.diagnosis,
        blamed=list(result.blamed),
        workloads=[WorkloadRecord(workload=w, path=p, passed=ok) for p, w, ok in result.checked],  # type: ignore[arg-type]
        stages=stages, total_cycle_error=result.total_cycle_error)
    layers = [LayerCycles(workload=e.workload, layer=e.layer, name=e.name, expected=e.expected, actual=e.actual)
              for e in result.cycle_errors]
    return {**record.model_dump(mode="json"), "layers": [layer.model_dump(mode="json") for layer in layers],
            "failing": len(result.failing_workloads)}


def score(record: Mapping[str, Any]) -> tuple[int, int, float]:
    """Higher is better: verified first, then fewer failing workloads, then a smaller total cycle error."""
    passed = 1 if record.get("outcome") == "passed" else 0
    checked = record.get("workloads") or []
    matched = sum(1 for w in checked if w.get("passed"))
    error = record.get("total_cycle_error")
    return passed, matched, -abs(error) if isinstance(error, int | float) else -1e18


def reference_sources(reference: engine.Modules | Path) -> dict[str, str] | Path:
    """What to time for the reference in the sandbox exactly like a candidate (same harness, same limits): the
    built-in modules' sources, or a user's reference folder as it is (never imported here)."""
    if isinstance(reference, Path):
        return reference
    return {role: inspect.getsource(getattr(reference, role)) for role in ("mapping", "network", "memory")}


def final_status(state: Mapping[str, Any], cancelled: bool = False) -> str:
    """``verified``, ``failed``, ``budget_exhausted`` or ``cancelled``.

    A loop stopped by a budget or cap is ``budget_exhausted``; one stopped by a coder giving up or
    a module the run cannot repair is ``failed``.
    """
    if cancelled:
        return "cancelled"
    verification = state.get("verification") or {}
    if any(not feature.get("passed") for feature in state.get("features") or []):
        return "failed"
    if verification.get("outcome") == "passed":
        return "verified"
    reason = str(state.get("stop_reason") or "")
    if reason.startswith("cancelled"):
        return "cancelled"
    if reason:
        return "failed" if reason.startswith("failed") else "budget_exhausted"
    return "budget_exhausted" if verification else "failed"


def one_line(report: RunReport) -> str:
    """The run in one line: status, mode, modules, what the verifier said and each feature's verdict."""
    written = ", ".join(f"{m.module} ({m.source}, {m.attempts} answer{'s' if m.attempts != 1 else ''})"
                        for m in report.modules)
    said = report.verification.message if report.verification is not None else "not verified"
    stopped = next((n for n in reversed(report.notes) if n.startswith("stopped: ")), "")
    why = f" ({' '.join(stopped.split())})" if stopped and report.status != "verified" else ""
    features = "; ".join(f"{f.name} ({f.implementation}: {'pass' if f.passed else 'FAIL'}, {f.evidence})"
                         for f in report.features)
    also = f" Features: {features}." if features else ""
    return f"{report.status} ({report.mode} mode, {report.seconds:.1f} s): {written}. {said}{why}{also}"[:900]


def build_report(state: Mapping[str, Any], *, run_id: str, status: str, mode: str, strategy: str,
                 granularity: str, model: str | None, base_url_host: str | None, temperature: float | None,
                 seed: int | None, budgets: Mapping[str, int | float], package: str | None,
                 runtime: RuntimeRecord | None) -> RunReport:
    """The run's report from its state (also a partial state, when cancelled)."""
    plan = state.get("plan") or {}
    modules_state = state.get("modules") or {}
    modules = []
    for role in ("mapping", "network", "memory"):
        rec = modules_state.get(role)
        if rec is None:
            source = "reference" if role in (plan.get("keep") or []) else "generated"
            modules.append(ModuleRecord(module=role, source=source, attempts=0,  # type: ignore[arg-type]
                                        status="kept" if source == "reference" else "not written"))
        else:
            modules.append(ModuleRecord(module=role, source=rec["source"], attempts=rec["attempts"],
                                        status=rec["status"]))
    verification = state.get("verification")
    record = None
    layers: list[LayerCycles] = []
    if verification:
        record = VerificationRecord.model_validate({k: v for k, v in verification.items()
                                                    if k in VerificationRecord.model_fields})
        layers = [LayerCycles.model_validate(x) for x in verification.get("layers", [])]
    tokens = [TokenRecord(node=node, **use) for node, use in sorted((state.get("tokens") or {}).items())]
    started = float(state.get("started_at") or time.time())
    optimiser = state.get("optimiser")
    notes = list(dict.fromkeys(state.get("notes") or []))
    if state.get("stop_reason"):
        notes.append(f"stopped: {state['stop_reason']}")
    return RunReport(
        run_id=run_id, status=status, mode=mode,  # type: ignore[arg-type]
        started_at=datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        seconds=max(0.0, time.time() - started), spec=str(plan.get("spec_path") or state.get("spec_path") or ""),
        package=package, modules=modules,
        attempts=[AttemptRecord.model_validate(a) for a in state.get("attempts") or []],
        verification=record, layers=layers, runtime=runtime,
        optimiser=OptimiserRecord.model_validate(optimiser) if optimiser else None,
        tokens=tokens,
        reproducibility=Reproducibility(
            model=model, base_url_host=base_url_host, temperature=temperature, seed=seed, strategy=strategy,
            granularity=granularity, budgets=dict(budgets), spec_path=str(plan.get("spec_path") or ""),
            spec_sha256=str(plan.get("spec_sha256") or ""), packages=package_versions(),
            python=platform.python_version(), reference=str(plan.get("reference") or "built-in")),
        features=[FeatureRecord.model_validate(f) for f in state.get("features") or []],
        notes=notes,
    )
