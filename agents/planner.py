"""The planner: validates the spec, decides what to generate and cuts each module into tasks.

Pure functions over the spec; the graph's ``plan`` node calls :func:`plan_run`.  A plan is plain
data (TypedDicts) so it lives in the graph's state and its checkpoints.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

import yaml
from typing_extensions import NotRequired, TypedDict

from agents import skeleton
from agents.run_features import FeatureTask, plan_features
from agents.spec import AgentSpec, load_agent_spec
from judge import user_reference
from reference_sim.errors import InputError, SimCoderError
from reference_sim.spec import LoadedSpec, Spec

logger = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("mapping", "network", "memory")
Role = Literal["mapping", "network", "memory"]
Granularity = Literal["module", "function"]
Strategy = Literal["zero_shot", "icl", "cot", "icl_cot"]
GRANULARITIES: tuple[str, ...] = ("module", "function")
STRATEGIES: tuple[str, ...] = ("zero_shot", "icl", "cot", "icl_cot")

INTERFACES: dict[str, str] = {
    "mapping": "def map_layer(layer: Layer, hardware: Hardware) -> LayerMapping",
    "network": "def schedule(mapping: LayerMapping, hardware: Hardware) -> NetworkSchedule",
    "memory": ("def simulate(mapping: LayerMapping, network: NetworkSchedule, hardware: Hardware, *, "
               "traces: bool = False) -> MemoryResult"),
}
"""The one function each module must expose (the contract's interface)."""
ENTRY_POINTS: dict[str, str] = {"mapping": "map_layer", "network": "schedule", "memory": "simulate"}
FEATURE_INTERFACE = ("def run(layers: Sequence[Layer], hardware: Hardware, params: Mapping[str, float], *, "
                     "traces: bool = False) -> FeatureRun")
FEATURE_ENTRY_POINT = "run"


class PlanError(SimCoderError):
    """The spec asks for a run this product cannot do (names what and why)."""


class UnitTask(TypedDict):
    """One unit (top-level function or class) of a module at ``function`` granularity."""

    name: str
    stub: str
    """Its signature and docstring from the skeleton."""


class ModuleTask(TypedDict):
    """What one coder writes: a module, its description, interface and the spec values it depends on."""

    role: str
    description: str
    architecture: str
    """The spec's architecture as YAML (the values the module depends on)."""
    interface: str
    granularity: str
    skeleton: str
    """The skeleton file's text (``function`` granularity), else empty."""
    units: list[UnitTask]
    feature: NotRequired[str]
    """For a feature module (role ``feature_<name>``): the catalogue feature it implements."""


class Plan(TypedDict):
    """The planner's answer."""

    spec_path: str
    spec_name: str
    spec_sha256: str
    generate: list[str]
    """Modules the run writes, in contract order."""
    keep: list[str]
    """Modules taken from the reference as they are (a user extending an existing simulator)."""
    tasks: list[ModuleTask]
    template: bool
    """No model configured: the coders emit the built-in verified modules."""
    granularity: str
    reference: str
    """``built-in`` or the folder of the user's own reference modules."""
    features: list[FeatureTask]
    """Catalogue features the run provides beyond the reference (the spec's ``features``)."""
    feature_tasks: NotRequired[list[ModuleTask]]
    """The features the agent writes (every one of ``features`` unless in template mode, which uses the
    catalogue's built-in implementations)."""


def unsupported_features(spec: Spec) -> list[str]:
    """What the spec asks for that the built-in reference cannot model (so cannot verify)."""
    found: list[str] = []
    arch = spec.architecture
    if arch.memory_banks is not None and arch.memory_banks > 1:
        found.append(f"architecture.memory_banks: {arch.memory_banks} (banked SRAM; the reference models one bank "
                     "per operand, as SCALE-Sim v2 does; the catalogue feature memory_banks models it: "
                     "features: {memory_banks: {...}})")
    words = arch.dram.words_per_cycle
    if isinstance(words, list) and len(set(words)) > 1:
        found.append(f"architecture.dram.words_per_cycle: {words} (a bandwidth per interface; the reference uses "
                     "one value for every interface, SCALE-Sim v2's first)")
    return found


OTHER_SPELLINGS: dict[str, str] = {"zero-shot": "zero_shot", "zeroshot": "zero_shot", "icl+cot": "icl_cot",
                                   "icl-cot": "icl_cot", "icl,cot": "icl_cot"}
"""Spellings of a strategy that the commands do not take, and the one they do."""


def parse_strategy(value: str, flag: str = "--strategy") -> Strategy:
    """``value`` as one of :data:`STRATEGIES`; another spelling of one is refused, saying the right one."""
    if value in STRATEGIES:
        return cast(Strategy, value)
    known = ", ".join(STRATEGIES)
    if value.strip().lower() in OTHER_SPELLINGS:
        raise InputError(flag, f"{value!r} is spelled {OTHER_SPELLINGS[value.strip().lower()]} (strategies: {known})")
    raise InputError(flag, f"unknown strategy {value!r} (strategies: {known})")


def parse_generate(value: str | Sequence[str] | None) -> list[str] | None:
    """``"mapping,memory"`` or a list into roles in contract order; ``none``: no module (the reference's three,
    with only the spec's features written); ``None`` when not given."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "none":
        return []
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    unknown = [n for n in names if n not in ROLES]
    if unknown or not names:
        raise PlanError(f"--generate takes a comma-separated list of {', '.join(ROLES)}, or none; got {value!r}")
    return [r for r in ROLES if r in names]


def check_reference(folder: str | Path) -> Path:
    """A user's own reference folder, checked and resolved: ``mapping.py``, ``network.py`` and ``memory.py``
    present, each defining the contract's function, every source within the candidate's rules.

    Parsed, never imported: the reference is code like a candidate's and runs only in the sandbox, where its
    expected results come from (:func:`judge.user_reference.expected_suites`).
    """
    try:
        return user_reference.check_reference_folder(folder)
    except user_reference.UserReferenceError as exc:
        raise PlanError(str(exc)) from None


def _architecture_yaml(loaded: LoadedSpec[AgentSpec]) -> str:
    data = loaded.spec.architecture.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump({"architecture": data}, sort_keys=False, default_flow_style=None, width=110).strip()


def module_task(loaded: LoadedSpec[AgentSpec], role: str, granularity: str) -> ModuleTask:
    """One coder's task for ``role``."""
    descriptions = loaded.spec.modules
    description = getattr(descriptions, role, "") if descriptions is not None else ""
    if not description.strip():
        raise InputError(loaded.path, f"the spec describes no {role} module; a coder needs its description",
                         field=f"modules.{role}")
    units: list[UnitTask] = []
    text = ""
    if granularity == "function":
        sk = skeleton.skeleton(role)
        text = sk.text
        units = [UnitTask(name=u.name, stub=u.stub) for u in sk.units]
    return ModuleTask(role=role, description=" ".join(description.split()), architecture=_architecture_yaml(loaded),
                      interface=INTERFACES[role], granularity=granularity, skeleton=text, units=units)


def feature_task(loaded: LoadedSpec[AgentSpec], feature: FeatureTask) -> ModuleTask:
    """The coder's task for a feature module (``feature_<name>.py``); its prompt comes from the catalogue."""
    return ModuleTask(role=f"feature_{feature['name']}", description="", architecture=_architecture_yaml(loaded),
                      interface=FEATURE_INTERFACE, granularity="module", skeleton="", units=[],
                      feature=feature["name"])


def plan_run(spec: str | Path | LoadedSpec[AgentSpec], *, generate: Sequence[str] | None = None,
             granularity: str = "module", template: bool = False, reference_dir: str | Path | None = None,
             spec_sha256: str | None = None, features_dir: str | Path | None = None) -> Plan:
    """Validate the spec (a path, or a spec already loaded) and plan the run.

    ``generate`` (the CLI's ``--generate``) wins over the spec's ``generate``; both default to all
    three modules.  Refuses (:class:`PlanError`) a spec the reference cannot model unless the run is
    pointed at the user's own reference (``reference_dir``).  ``spec_sha256``: the spec's text's hash
    when the spec is not (yet) a file.  ``features_dir``: the operator's folder of user features.
    """
    if granularity not in GRANULARITIES:
        raise PlanError(f"granularity must be one of {', '.join(GRANULARITIES)}; got {granularity!r}")
    loaded = spec if isinstance(spec, LoadedSpec) else load_agent_spec(spec)
    agent_spec = loaded.spec
    if agent_spec.verification is None or not agent_spec.verification.workloads:
        raise InputError(loaded.path, "the spec names no verification workloads; the verifier needs some",
                         field="verification.workloads")
    beyond = unsupported_features(agent_spec)
    if beyond and reference_dir is None:
        raise PlanError(f"{loaded.path}: the built-in reference cannot model " + "; ".join(beyond)
                        + ". Point the run at your own reference (--reference DIR: a folder with mapping.py, "
                        "network.py and memory.py under the same contract) to verify against it.")
    reference = check_reference(reference_dir) if reference_dir is not None else None
    features = plan_features(agent_spec.features, loaded.path,
                             user_folder=Path(features_dir) if features_dir is not None else None,
                             template=template)
    chosen = list(generate) if generate is not None else list(agent_spec.generate or ROLES)
    roles = [r for r in ROLES if r in chosen]
    return Plan(
        spec_path=str(loaded.path.resolve()),
        spec_name=agent_spec.name,
        spec_sha256=spec_sha256 or hashlib.sha256(loaded.path.read_bytes()).hexdigest(),
        generate=roles,
        keep=[r for r in ROLES if r not in roles],
        tasks=[module_task(loaded, r, granularity) for r in roles],
        template=template,
        granularity=granularity,
        reference=str(reference) if reference is not None else "built-in",
        features=features,
        feature_tasks=[] if template else [feature_task(loaded, f) for f in features],
    )


def as_role(value: str) -> Role:
    """``value`` as a :data:`Role` (raises :class:`PlanError` when it is not one)."""
    if value not in ROLES:
        raise PlanError(f"unknown module {value!r} (modules: {', '.join(ROLES)})")
    return cast(Role, value)
