"""A run's request checked before any work: the caller's fields, paths, sizes, the spec, the settings, the plan.

:func:`prepare` writes nothing: it validates everything a run is started with and returns what the
run will use; :func:`commit` then makes the run's own folder (a new one) and saves an inline spec there.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import feature_work, planner
from agents.run_config import (
    CallerRequest,
    ConfigError,
    OperatorSettings,
    RunConfig,
    caller_path,
    caller_request,
    count_layers,
    new_run_dir,
    resolve,
)
from agents.spec import AgentSpec, parse_agent_spec
from reference_sim import engine
from reference_sim.errors import InputError
from reference_sim.reports import folder_name_problem
from reference_sim.spec import ArchitectureVariant, LoadedSpec

DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "scale_sim.yaml"
INLINE_SPEC_FILE = "spec.yaml"


@dataclass(frozen=True)
class Intake:
    """A checked request: the run's settings and plan, and the inline spec's text to save (else ``None``)."""

    config: RunConfig
    plan: planner.Plan
    run_id: str
    inline_spec: str | None


def _read_spec(path: Path, limit: int, remote: bool, where: str) -> str:
    """The spec file's text; errors name the file on one's own machine, the field for a remote caller."""

    def refuse(message: str) -> InputError:
        return ConfigError("spec_path", message, source=where) if remote else InputError(path, message)

    try:
        size = path.stat().st_size
    except OSError:
        raise refuse("file not found") from None
    if not path.is_file():
        raise refuse("not a file")
    if size > limit:
        raise refuse(f"the spec is {size:,} bytes, over the limit of {limit:,}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise refuse(f"cannot read file ({type(exc).__name__})") from None


def _check_workloads(spec: AgentSpec, base: Path, operator: OperatorSettings, source: str) -> None:
    for i, workload in enumerate(spec.workloads):
        if workload.topology is None:
            continue
        field = f"workloads[{i}].topology"
        path = caller_path(field, workload.topology, operator, base=base)
        try:
            size = path.stat().st_size
        except OSError:
            raise InputError(source, "no such file", field=field) from None
        if size > operator.max_spec_bytes:
            raise InputError(source, f"the topology is {size:,} bytes, over the limit of {operator.max_spec_bytes:,}",
                             field=field)
    layers = count_layers(spec)
    if layers > operator.max_layers:
        raise InputError(source, f"{layers} layers, over the limit of {operator.max_layers}", field="workloads")


def _check_work(loaded: LoadedSpec[AgentSpec], operator: OperatorSettings, source: str) -> None:
    """The layers the verifier will run: at most ``max_layers`` in all, each within the work limit, checked before
    any sandbox runs."""
    spec = loaded.spec
    if spec.verification is None:
        return
    names = list(dict.fromkeys([*spec.verification.workloads, *spec.verification.final_check]))
    layers = {name: loaded.workload(name) for name in names}
    total = sum(len(found) for found in layers.values())
    if total > operator.max_layers:
        raise InputError(source, f"the verifier would run {total} layers, over the limit of {operator.max_layers}",
                         field="verification")
    jobs: list[tuple[str, ArchitectureVariant | None, bool]] = [
        (name, variant, True) for name in spec.verification.workloads for variant in spec.verification.variants]
    jobs += [(name, None, False) for name in spec.verification.final_check]
    for name, variant, traces in jobs:
        hardware = spec.hardware(variant)
        where = f"{source}: verification workload {name}" + (f"@{variant.name}" if variant else " (final check)")
        for index, layer in enumerate(layers[name]):
            engine.check_work(layer, hardware, index=index, traces=traces, where=where)


def new_run_id() -> str:
    """A run id: the start time and a short random part."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


def prepare(values: Mapping[str, Any] | CallerRequest, operator: OperatorSettings, *, template: bool | None = None,
            where: str = "request") -> Intake:
    """Check a run's request (the caller's fields) against the operator's settings; write nothing.

    ``template``: whether the run is in template mode when it is not the settings' to say (a chat model given
    by the embedding code counts as a model).
    """
    request = values if isinstance(values, CallerRequest) else caller_request(values, where=where)
    if request.spec_yaml is not None and request.spec_path is not None:
        raise ConfigError("spec_yaml", "give spec_path or spec_yaml, not both", source=where)
    run_id = request.run_id or new_run_id()
    problem = folder_name_problem(run_id)
    if problem is not None:
        raise ConfigError("run_id", problem, source=where)
    run_dir = new_run_dir(request, operator, run_id)
    if request.spec_yaml is not None:
        size = len(request.spec_yaml.encode("utf-8"))
        if size > operator.max_spec_bytes:
            raise ConfigError("spec_yaml", f"the inline spec is {size:,} bytes, over the limit of "
                                           f"{operator.max_spec_bytes:,}", source=where)
        text = request.spec_yaml
        spec_path = run_dir / INLINE_SPEC_FILE
        source = "spec_yaml"
    else:
        spec_path = caller_path("spec_path", request.spec_path, operator) if request.spec_path else DEFAULT_SPEC
        text = _read_spec(spec_path, operator.max_spec_bytes, operator.remote, where)
        source = spec_path.name if operator.remote else str(spec_path)
    spec = parse_agent_spec(text, source)
    _check_workloads(spec, spec_path.parent, operator, source)
    config = resolve(spec, spec_path, run_dir, operator, request, spec_from_caller=operator.remote)
    _check_work(LoadedSpec(spec, spec_path), operator, source)
    if template is not None and not template and config.template:
        config = config.model_copy(update={"optimise": request.optimise if request.optimise is not None else True})
    plan = planner.plan_run(LoadedSpec(spec, spec_path), generate=list(config.generate),
                            granularity=config.granularity, reference_dir=config.reference_dir,
                            template=config.template if template is None else template,
                            spec_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                            features_dir=config.features_dir)
    if operator.remote and plan["features"]:
        feature_work.check_feature_work(LoadedSpec(spec, spec_path), plan["features"], operator, source)
    return Intake(config, plan, run_id, text if request.spec_yaml is not None else None)


def commit(intake: Intake, operator: OperatorSettings) -> Path:
    """Make the run's folder (new for a remote caller) and save an inline spec in it."""
    run_dir = Path(intake.config.run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=not operator.remote)
    except FileExistsError:
        raise ConfigError("run_dir", "already exists; a run always makes a new folder") from None
    if intake.inline_spec is not None:
        (run_dir / INLINE_SPEC_FILE).write_text(intake.inline_spec, encoding="utf-8")
    return run_dir
