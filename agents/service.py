"""The verifier as a service: "verify this simulator against the reference on these workloads".

Pure functions behind ``graph/verifier_graph.py``: check a caller's request (:func:`verify_request`:
every field typed, every path inside the operator's roots, sizes bounded, nothing written before it
is valid), read the candidate (a folder such as a run's standalone package, or module sources given
inline), pick the workloads, verify in the sandbox and answer with plain data (the verdict, the stage
evidence, the diagnosis).  A user's reference runs in the sandbox (:mod:`judge.user_reference`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agents import summary
from agents.planner import ROLES
from agents.run_config import ConfigError, OperatorSettings, caller_path, checked_fields
from judge import checks, executors, suites, user_reference, verifier
from reference_sim import engine
from reference_sim.errors import InputError
from reference_sim.spec import Spec, parse_spec

REQUEST = "verifier request"


class VerifyRequest(BaseModel):
    """A verifier graph's request (input and context together)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    candidate_dir: str | None = None
    modules: dict[str, str] | None = None
    spec_path: str | None = None
    spec_yaml: str | None = None
    workloads: list[str] | None = None
    final_check: list[str] | None = None
    reference_dir: str | None = None


def parse_request(values: Mapping[str, Any]) -> VerifyRequest:
    """The request's fields checked (:func:`agents.run_config.checked_fields`)."""
    return checked_fields(values, VerifyRequest, where=REQUEST)


def candidate_modules(folder: str | None, modules: Mapping[str, str] | None, operator: OperatorSettings,
                      ) -> dict[str, str]:
    """The three modules' sources: from ``modules`` (role -> source) or from ``folder`` (``<role>.py`` files)."""
    limit = operator.max_spec_bytes
    if modules:
        unknown = sorted(set(modules) - set(ROLES))
        missing = [r for r in ROLES if r not in modules]
        if unknown or missing:
            raise ConfigError("modules", f"give the sources of mapping, network and memory (missing: "
                                         f"{', '.join(missing) or 'none'}; {len(unknown)} unknown)", source=REQUEST)
        big = [r for r in ROLES if len(modules[r].encode("utf-8")) > limit]
        if big:
            raise ConfigError(f"modules.{big[0]}", f"over the limit of {limit:,} bytes", source=REQUEST)
        return {r: modules[r] for r in ROLES}
    if not folder:
        raise ConfigError("candidate_dir", "give a candidate folder (e.g. a run's package) or the module sources",
                          source=REQUEST)
    path = caller_path("candidate_dir", folder, operator)
    missing = [f"{r}.py" for r in ROLES if not (path / f"{r}.py").is_file()]
    if missing:
        raise ConfigError("candidate_dir", f"not a simulator folder: missing {', '.join(missing)}", source=REQUEST)
    big = [r for r in ROLES if (path / f"{r}.py").stat().st_size > limit]
    if big:
        raise ConfigError("candidate_dir", f"{big[0]}.py is over the limit of {limit:,} bytes", source=REQUEST)
    return {r: (path / f"{r}.py").read_text(encoding="utf-8", errors="replace") for r in ROLES}


def _spec_text(request: VerifyRequest, operator: OperatorSettings) -> tuple[str | None, Path]:
    """The inline spec's text (checked, not yet written), or ``None`` and the spec file to read."""
    if request.spec_yaml is not None and request.spec_path is not None:
        raise ConfigError("spec_yaml", "give spec_path or spec_yaml, not both", source=REQUEST)
    limit = operator.max_spec_bytes
    if request.spec_yaml is not None:
        size = len(request.spec_yaml.encode("utf-8"))
        if size > limit:
            raise ConfigError("spec_yaml", f"the inline spec is {size:,} bytes, over the limit of {limit:,}",
                              source=REQUEST)
        spec = parse_spec(request.spec_yaml, "spec_yaml")
        _check_topologies(spec, None, operator)
        return request.spec_yaml, suites.DEFAULT_SPEC
    path = caller_path("spec_path", request.spec_path, operator) if request.spec_path else suites.DEFAULT_SPEC
    if not path.is_file():
        raise ConfigError("spec_path", "no such file", source=REQUEST)
    if path.stat().st_size > limit:
        raise ConfigError("spec_path", f"over the limit of {limit:,} bytes", source=REQUEST)
    text = path.read_text(encoding="utf-8", errors="replace")
    _check_topologies(parse_spec(text, path.name if operator.remote else path), path.parent, operator)
    return None, path


def _check_topologies(spec: Spec, base: Path | None, operator: OperatorSettings) -> None:
    layers = 0
    for i, workload in enumerate(spec.workloads):
        layers += len(workload.layers or ())
        if workload.topology is None:
            continue
        field = f"workloads[{i}].topology"
        if base is None and not Path(workload.topology).is_absolute():
            raise ConfigError(field, "an inline spec's topology must be an absolute path", source=REQUEST)
        path = caller_path(field, workload.topology, operator, base=base)
        if not path.is_file() or path.stat().st_size > operator.max_spec_bytes:
            raise ConfigError(field, f"not a file of at most {operator.max_spec_bytes:,} bytes", source=REQUEST)
    if layers > operator.max_layers:
        raise ConfigError("workloads", f"{layers} layers, over the limit of {operator.max_layers}", source=REQUEST)


@contextmanager
def spec_file(text: str | None, path: Path) -> Iterator[Path]:
    """The spec to take workloads from: ``text`` in a temporary file (removed after), else ``path``."""
    if text is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="simcoder-spec-") as folder:
        written = Path(folder) / "spec.yaml"
        written.write_text(text, encoding="utf-8")
        yield written


def _pick(suite: suites.Suite, names: Sequence[str] | None, kind: str) -> suites.Suite:
    if names is None:
        return suite
    chosen = tuple(w for w in suite if w.id.split("@")[0] in names or w.id in names)
    known = sorted({w.id.split("@")[0] for w in suite} | {w.id for w in suite})
    unknown = [n for n in names if not any(n in (w.id, w.id.split("@")[0]) for w in suite)]
    if unknown:
        raise ConfigError(kind, f"{len(unknown)} unknown workload name(s) (known: {', '.join(known)})",
                          source=REQUEST)
    return chosen


def workloads(spec: Path, names: Sequence[str] | None,
              final_check: Sequence[str] | None) -> tuple[suites.Suite, suites.Suite]:
    """The suite and the final check: the spec's, or only the named ones (``edge_cases`` or ``edge_cases@spec``)."""
    suite = _pick(suites.load_suite(spec), names, "workloads")
    final = _pick(suites.load_final_check(spec), final_check, "final_check")
    if not suite and not final:
        raise ConfigError("workloads", "no workload to verify on", source=REQUEST)
    return suite, final


def check_work(suite: suites.Suite, final: suites.Suite, operator: OperatorSettings) -> None:
    """The layers to verify: at most ``max_layers`` distinct ones, each within the work limit (before any run)."""
    distinct = {(w.id.split("@")[0], i) for w in (*suite, *final) for i in range(len(w.layers))}
    if len(distinct) > operator.max_layers:
        raise ConfigError("workloads", f"{len(distinct)} layers to verify, over the limit of {operator.max_layers}",
                          source=REQUEST)
    for workloads_, traces in ((suite, True), (final, False)):
        for workload in workloads_:
            for index, layer in enumerate(workload.layers):
                engine.check_work(layer, workload.hardware, index=index, traces=traces, where=workload.id)


def verify_modules(modules: Mapping[str, str], executor_for: executors.ExecutorFactory, suite: suites.Suite,
                   final: suites.Suite) -> dict[str, Any]:
    """Verify the candidate; the verdict as plain data (``agents.summary.verification_record`` plus ``passed``)."""
    with checks.scratch_candidate(modules) as folder:
        result = verifier.verify(executor_for(folder), suite, final_check=final)
    record = summary.verification_record(result)
    return {**record, "passed": result.passed}


def verify_request(values: Mapping[str, Any], operator: OperatorSettings,
                   executor_for: executors.ExecutorFactory) -> dict[str, Any]:
    """Check a caller's request against the operator's settings, then verify (see the module's docstring)."""
    request = parse_request(values)
    modules = candidate_modules(request.candidate_dir, request.modules, operator)
    text, path = _spec_text(request, operator)
    reference = caller_path("reference_dir", request.reference_dir, operator) if request.reference_dir else None
    with spec_file(text, path) as spec:
        suite, final = workloads(spec, request.workloads, request.final_check)
    check_work(suite, final, operator)
    if reference is not None:
        try:
            suite, final = user_reference.expected_suites(reference, executor_for, suite, final)
        except user_reference.UserReferenceError as exc:
            raise InputError(REQUEST, str(exc), field="reference_dir") from None
    return verify_modules(modules, executor_for, suite, final)
