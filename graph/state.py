"""The run's state: what the graph takes in, carries between nodes, and hands back.

Values are plain data (dicts, lists, strings, numbers) so that checkpoints, LangGraph Studio and
``--resume`` see exactly what the nodes saw.  Fields that parallel coder branches write have reducers.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict

from agents.planner import ModuleTask, Plan


class ModuleRecord(TypedDict):
    """One module of the current candidate."""

    role: str
    source: str
    """``generated`` (a model wrote it), ``template`` (the built-in verified module) or ``reference`` (kept)."""
    status: str
    """``written``, ``repaired``, ``optimised``, ``failed`` or ``kept``."""
    code: str
    """The module's source; empty when the coder failed."""
    units: dict[str, str]
    """At ``function`` granularity, each unit's source; else empty."""
    attempts: int
    """Model answers this module has taken so far (writing and repairs)."""
    history: list[list[str]]
    """Earlier versions and their diagnoses, ``[code, diagnosis]``, oldest first (what the repairer is shown)."""
    message: str
    """Why the coder gave up (when ``status`` is ``failed``)."""


class TokenUse(TypedDict):
    """Model use of one node."""

    calls: int
    input_tokens: int
    output_tokens: int


def merge_modules(left: dict[str, ModuleRecord], right: dict[str, ModuleRecord]) -> dict[str, ModuleRecord]:
    """Parallel coders each write their own module."""
    return {**left, **right}


def add_tokens(left: dict[str, TokenUse], right: dict[str, TokenUse]) -> dict[str, TokenUse]:
    """Token use per node, summed over branches and rounds."""
    out = dict(left)
    for node, use in right.items():
        old = out.get(node, TokenUse(calls=0, input_tokens=0, output_tokens=0))
        out[node] = TokenUse(calls=old["calls"] + use["calls"], input_tokens=old["input_tokens"] + use["input_tokens"],
                             output_tokens=old["output_tokens"] + use["output_tokens"])
    return out


def tokens_spent(tokens: dict[str, TokenUse]) -> int:
    """All tokens spent (prompt and answer)."""
    return sum(u["input_tokens"] + u["output_tokens"] for u in tokens.values())


class InputState(TypedDict, total=False):
    """What a run is started with."""

    spec_path: str
    """The architecture spec (default the repo's ``scale_sim.yaml``; on a server, inside its roots)."""
    run_dir: str
    """The run's new folder (default ``<run root>/<run id>``; on a server, inside its run root)."""
    run_id: str
    """The run's id (a folder name)."""
    spec_yaml: str
    """An inline spec (YAML text, size-limited) instead of ``spec_path``; saved as ``spec.yaml`` in the run folder."""
    strategy: str
    """The prompting strategy: ``zero_shot``, ``icl``, ``cot`` or ``icl_cot`` (default: the spec's)."""
    granularity: str
    """``module`` or ``function``."""
    generate: list[str]
    """The modules to write (``mapping``, ``network``, ``memory``; default: the spec's, else all three)."""
    seed: int
    """The sampling seed, for endpoints that take one."""
    model: str
    """A model name; a remote caller may only name one the server's operator lists."""
    base_url: str
    """An OpenAI-compatible endpoint; a remote caller may only name one the server's operator lists."""
    attempts_per_module: int
    """Answers per module or unit (at most the server's maximum)."""
    repair_rounds: int
    """Verify-repair rounds (at most the server's maximum)."""
    max_tokens: int
    """The token cap (at most the server's maximum)."""
    max_wall_s: float
    """The wall-time cap, seconds (at most the server's maximum)."""
    max_sandboxes: int
    """Sandbox runs at once (at most the server's maximum)."""
    optimise: bool
    """Whether the optimiser runs once verified."""
    human_review: bool
    """Whether a person reviews each repair (``interrupt()``)."""
    model_cache: bool
    """Whether answers are kept in the run folder (``model-cache.sqlite``) so a resume pays for none twice."""


REQUEST_FIELDS: tuple[str, ...] = tuple(InputState.__annotations__)
"""The input's fields: what a caller asks of a run (``agents.run_config.CallerRequest`` validates them)."""


class OutputState(TypedDict, total=False):
    """What a run hands back."""

    status: str
    """``verified``, ``failed``, ``budget_exhausted`` or ``cancelled``."""
    run_dir: str
    report_path: str
    """``report.md`` in the run folder."""
    package_path: str
    """The standalone simulator package (only when verified)."""
    summary: str
    """One line: the status and why."""


class RunState(InputState, OutputState, total=False):
    """Everything the nodes share."""

    started_at: float
    """Wall-clock start (seconds since the epoch), for the wall-time cap."""
    plan: Plan
    """The planner's answer."""
    modules: Annotated[dict[str, ModuleRecord], merge_modules]
    """The current candidate's modules, by role."""
    feature_modules: Annotated[dict[str, ModuleRecord], merge_modules]
    """The feature modules the agent wrote, by feature name (judged when the modules verify)."""
    attempts: Annotated[list[dict[str, Any]], operator.add]
    """Every model answer or template emission, in order (``agents.report.AttemptRecord`` fields)."""
    tokens: Annotated[dict[str, TokenUse], add_tokens]
    """Model use per node."""
    notes: Annotated[list[str], operator.add]
    """What a reader of the report should know (template mode, fallbacks, caps reached)."""
    features: list[dict[str, Any]]
    """Each catalogue feature's verdict once the modules verify (``agents.run_features.FeatureOutcome``)."""
    verification: dict[str, Any]
    """The last verification (``agents.report.VerificationRecord`` fields plus ``layers``)."""
    best: dict[str, Any]
    """The best candidate so far: ``modules`` (role -> code), ``score``, ``verification``."""
    repair_round: int
    """Repair rounds done (the limit is the context's)."""
    stop_reason: str
    """Why the loop ended early (a cap reached, a coder failing); empty when it did not."""
    optimiser: dict[str, Any]
    """What the optimiser did (``agents.report.OptimiserRecord`` fields)."""
    pending_optimisation: dict[str, Any]
    """The optimiser's request in flight: role, conversation, the time to beat, the answer."""
    repairs: list[dict[str, Any]]
    """The repairs of this round, one per blamed module the run writes: ``role``, ``unit``, ``diagnosis``."""
    config: dict[str, Any]
    """The run's settings (``agents.run_config.RunConfig``), resolved once by the ``plan`` node."""


class CoderOutput(TypedDict, total=False):
    """What a coder branch hands back to the run."""

    modules: Annotated[dict[str, ModuleRecord], merge_modules]
    feature_modules: Annotated[dict[str, ModuleRecord], merge_modules]
    attempts: Annotated[list[dict[str, Any]], operator.add]
    tokens: Annotated[dict[str, TokenUse], add_tokens]
    notes: Annotated[list[str], operator.add]


class CoderState(CoderOutput, total=False):
    """One coder (or repairer) branch: one module."""

    task: ModuleTask
    plan: Plan
    """The run's plan (template mode, the spec's budget and model settings; not handed back)."""
    config: dict[str, Any]
    """The run's settings (``agents.run_config.RunConfig``)."""
    decision: dict[str, Any]
    """A person's answer to the review before this repair: ``action`` and, when edited, ``instruction``."""
    last_seconds: float
    """Seconds the last model call took."""
    last_tokens: list[int]
    """Prompt and answer tokens of the last model call."""
    mode: str
    """``write`` or ``repair``."""
    unit_index: int
    """At ``function`` granularity, the unit being written."""
    attempt: int
    """Answers taken for the current unit or module in this branch (the limit is the context's)."""
    conversation: list[dict[str, str]]
    """The messages so far, ``{"role": system|user|assistant, "content": ...}``."""
    written: dict[str, str]
    """Accepted code so far: the module (key: role) or the units (key: unit name)."""
    base: ModuleRecord
    """The module record before this branch (history, attempts, other units)."""
    repair_unit: str
    """At ``function`` granularity, the unit a repair rewrites."""
    diagnosis: str
    """The verifier's diagnosis a repair starts from."""
    tokens_before: int
    """Tokens spent by the run when this branch started (for the token cap)."""
    run_started_at: float
    """The run's wall-clock start (for the wall-time cap)."""
    answer: str
    """The model's last answer."""
    truncated: bool
    """The last answer was cut off at the length limit (``finish_reason: length``)."""
    answer_digests: list[str]
    """SHA-256 of each answer to the current module or unit (a repeated answer is told so)."""
    failure: str
    """Why the branch gave up."""
    done: bool
    """The module is finished (written, or given up)."""
