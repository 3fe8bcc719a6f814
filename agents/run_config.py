"""One run's settings, resolved once, and who may set each of them.

Three sources, applied in this order (a later one wins where it may set the field):

1. the **spec** (its ``model``, ``budget`` and ``generate`` sections; :mod:`agents.spec`);
2. the **operator** (:class:`OperatorSettings`): whoever runs the process, through the environment
   (``SIMCODER_*``, ``OPENAI_*``), ``langgraph.json`` or the command line on their own machine;
3. the **caller** (:class:`CallerRequest`): a remote caller's input, or the CLI's flags.

:func:`resolve` is the only place that combines them; every node reads the :class:`RunConfig` it
returns (stored in the run's state beside the plan).  Each :class:`RunConfig` field states in its schema
who may set it (``who``: ``operator`` or ``caller``).  When the requests come from remote callers
(``OperatorSettings.remote``), a caller value for an operator field is refused with one line naming the
field, budgets are capped at the operator's maxima, a spec the caller sent counts as the caller's, and
every path must resolve inside the operator's roots.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.spec import AgentSpec, Budget, ModelSettings
from reference_sim.errors import InputError

Who = Literal["operator", "caller"]
FieldsT = TypeVar("FieldsT", bound=BaseModel)
Strategy = Literal["zero_shot", "icl", "cot", "icl_cot"]
Granularity = Literal["module", "function"]
Role = Literal["mapping", "network", "memory"]
SandboxKind = Literal["default", "docker", "process"]

REPO = Path(__file__).resolve().parents[1]
REQUEST = "request"
"""What errors about a caller's fields name as their source."""

DEFAULT_MAX_SPEC_BYTES = 1024 * 1024
DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024
DEFAULT_MAX_LAYERS = 256
DEFAULT_MODEL_DEADLINE_S = 120.0
DEFAULT_MAX_FEATURE_REQUESTS = 1_000_000_000
FEATURES_DIR_ENV = "SIMCODER_FEATURES_DIR"


class ConfigError(InputError):
    """A setting that is wrong, or that its giver may not set: one line naming the field."""

    def __init__(self, field: str, message: str, *, source: str = REQUEST) -> None:
        super().__init__(source, message, field=field)


def _by(who: Who, description: str, default: Any = None, **limits: Any) -> Any:
    return Field(default, description=description, json_schema_extra={"who": who}, **limits)


class RunConfig(BaseModel):
    """Everything a run's nodes need to know about its settings (no key: only the variable that holds it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy = _by("caller", "prompting strategy", "icl_cot")
    granularity: Granularity = _by("caller", "module: each module in one answer; function: unit by unit", "module")
    generate: tuple[Role, ...] = _by("caller", "the modules the run writes (the others are the reference's)",
                                     ("mapping", "network", "memory"))
    seed: int | None = _by("caller", "sampling seed sent to endpoints that take one")
    temperature: float = _by("caller", "sampling temperature", 0.0, ge=0.0, le=2.0)
    retry_temperature: float = _by("caller", "sampling temperature of a retry (at least temperature)", 0.7, ge=0.0,
                                   le=2.0)
    max_answer_tokens: int = _by("caller", "tokens one answer may have (sent as max_tokens)", 4096, gt=0,
                                 le=131_072)
    context_tokens: int | None = _by("caller", "the model's context window when its server does not say (the "
                                               "operator's --context-tokens, else the spec's)", None, gt=0)
    human_review: bool = _by("caller", "pause before each repair for a person", False)
    optimise: bool = _by("caller", "ask for a faster slowest module once verified", False)
    model_cache: bool = _by("caller", "keep answers in the run folder so a resume pays for none twice", True)
    attempts_per_module: int = _by("caller", "answers per module or unit (capped by the operator)", 3, gt=0)
    repair_rounds: int = _by("caller", "verify-repair rounds (capped by the operator)", 5, ge=0)
    max_tokens: int = _by("caller", "model tokens the run may spend (capped by the operator)", 2_000_000, gt=0)
    max_wall_s: float = _by("caller", "wall time of the run, seconds (capped by the operator)", 3600.0, gt=0)
    max_sandboxes: int = _by("caller", "sandbox runs at once (capped by the operator)", 2, gt=0)
    spec_path: str = _by("caller", "the spec file (inside the operator's roots for a remote caller)", "")
    run_dir: str = _by("caller", "the run's own new folder (inside the operator's run root for a remote caller)", "")
    model: str | None = _by("operator", "model name; a remote caller may only name one the operator lists")
    base_url: str | None = _by("operator", "OpenAI-compatible endpoint; a remote caller may only name one the "
                                           "operator lists (the key goes nowhere else)")
    api_key_env: str = _by("operator", "the environment variable that holds the key", "OPENAI_API_KEY")
    model_deadline_s: float = _by("operator", "total time one model call may take, retries included",
                                  DEFAULT_MODEL_DEADLINE_S, gt=0)
    max_answer_bytes: int = _by("operator", "largest model answer read, bytes", DEFAULT_MAX_ANSWER_BYTES, gt=0)
    sandbox: SandboxKind = _by("operator", "where candidates run: default (Docker; template mode may fall back to "
                                           "processes), docker, or process (no isolation)", "default")
    sandbox_timeout_s: float = _by("operator", "wall-clock limit of one sandbox run, seconds", 120.0, gt=0)
    sandbox_memory_mib: int = _by("operator", "memory limit of one sandbox run, MiB", 3072, gt=0)
    reference_dir: str | None = _by("operator", "a user's own reference folder (runs in the sandbox)")
    features_dir: str | None = _by("operator", "a folder of user features; their properties.py run on the host")
    run_root: str = _by("operator", "the folder run folders are made in", "runs")
    path_roots: tuple[str, ...] = _by("operator", "folders and files a remote caller's paths must resolve inside",
                                      ())
    max_spec_bytes: int = _by("operator", "largest spec accepted, bytes", DEFAULT_MAX_SPEC_BYTES, gt=0)
    max_layers: int = _by("operator", "most layers of all the spec's workloads together", DEFAULT_MAX_LAYERS, gt=0)

    @property
    def template(self) -> bool:
        """No model configured: the coders emit the built-in verified modules."""
        return self.model is None and self.base_url is None

    def cap_reached(self, tokens_spent: int, elapsed_s: float) -> str | None:
        """Which cap the run has reached (tokens first, then wall time), or ``None``."""
        if tokens_spent >= self.max_tokens:
            return f"token cap reached ({tokens_spent} of {self.max_tokens} tokens)"
        if elapsed_s > self.max_wall_s:
            return f"wall-time cap reached ({self.max_wall_s:.0f} s)"
        return None

    def budgets(self) -> dict[str, int | float]:
        """The budgets as the report records them."""
        return {"attempts_per_module": self.attempts_per_module, "repair_rounds": self.repair_rounds,
                "max_tokens": self.max_tokens, "max_wall_s": self.max_wall_s, "max_sandboxes": self.max_sandboxes}


def who_may_set() -> dict[str, Who]:
    """Every :class:`RunConfig` field and who may set it."""
    out: dict[str, Who] = {}
    for name, info in RunConfig.model_fields.items():
        extra = info.json_schema_extra
        who = extra.get("who") if isinstance(extra, dict) else None
        if who not in ("operator", "caller"):
            raise TypeError(f"RunConfig.{name} does not say who may set it")
        out[name] = who  # type: ignore[assignment]
    return out


BUDGET_FIELDS = ("attempts_per_module", "repair_rounds", "max_tokens", "max_wall_s", "max_sandboxes")


class CallerRequest(BaseModel):
    """What a caller (a remote input, or the CLI's flags) asks of one run; every field optional."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    spec_path: str | None = None
    spec_yaml: str | None = None
    run_dir: str | None = None
    run_id: str | None = None
    strategy: Strategy | None = None
    granularity: Granularity | None = None
    generate: list[Role] | None = None
    seed: int | None = None
    model: str | None = None
    base_url: str | None = None
    attempts_per_module: int | None = Field(default=None, gt=0)
    repair_rounds: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, gt=0)
    max_wall_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_sandboxes: int | None = Field(default=None, gt=0)
    optimise: bool | None = None
    human_review: bool | None = None
    model_cache: bool | None = None


OPERATOR_ONLY_HINTS: dict[str, str] = {
    "sandbox": "remote runs always use the Docker sandbox",
    "reference_dir": "a reference folder is the operator's (SIMCODER_REFERENCE_DIR)",
    "features_dir": "a folder of features is the operator's (SIMCODER_FEATURES_DIR): its code runs on the host",
    "api_key_env": "the key's variable is the operator's",
    "sandbox_timeout_s": "sandbox limits are the operator's",
    "sandbox_memory_mib": "sandbox limits are the operator's",
    "run_root": "the run root is the operator's (SIMCODER_RUN_ROOT)",
    "checkpoint": "the checkpointer is the operator's",
    "chat_model": "the chat model is the operator's",
    "executor_factory": "the sandbox is the operator's",
}
"""Fields a remote caller might try that only the operator may set, with what to say."""


def _first_error(exc: ValidationError, where: str) -> ConfigError:
    error = exc.errors()[0]
    loc = ".".join(str(p) for p in error["loc"]) or "request"
    message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
    more = len(exc.errors()) - 1
    return ConfigError(loc, message + (f" (and {more} more)" if more else ""), source=where)


def checked_fields(values: Mapping[str, Any] | None, schema: type[FieldsT], *, where: str = REQUEST) -> FieldsT:
    """A caller's fields validated against ``schema``: a field the operator sets is refused naming it, as is an
    unknown field and a value of the wrong type (``None`` values count as not given)."""
    data = dict(values or {})
    fields = set(schema.model_fields)
    for name in data:
        if name in fields:
            continue
        operator_only = OPERATOR_ONLY_HINTS.get(name) or (
            "set by the operator" if who_may_set().get(name) == "operator" else None)
        if operator_only is not None:
            raise ConfigError(name, f"a caller may not set this ({operator_only})", source=where)
        raise ConfigError(name, f"unknown field (a caller may set: {', '.join(sorted(fields))})", source=where)
    try:
        return schema.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        raise _first_error(exc, where) from None


def caller_request(values: Mapping[str, Any] | None, *, where: str = REQUEST) -> CallerRequest:
    """A run's request from a caller's fields (:func:`checked_fields`)."""
    return checked_fields(values, CallerRequest, where=where)


class Maxima(BaseModel):
    """The operator's upper bounds on what a caller (or the spec a caller sent) may ask for; ``None``: no bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts_per_module: int | None = 10
    repair_rounds: int | None = 20
    max_tokens: int | None = 5_000_000
    max_wall_s: float | None = 4 * 3600.0
    max_sandboxes: int | None = 4
    feature_requests: int | None = DEFAULT_MAX_FEATURE_REQUESTS
    """Work one feature's run on the final-check workloads may take, in the reference's requests
    (:func:`reference_sim.engine.estimate_requests`) times the parameters that multiply it (images, cores)."""


NO_MAXIMA = Maxima(attempts_per_module=None, repair_rounds=None, max_tokens=None, max_wall_s=None,
                   max_sandboxes=None, feature_requests=None)


class OperatorSettings(BaseModel):
    """What the operator decides: where code runs, which model gets the key, where files go, and the bounds.

    ``remote``: requests come from callers the operator does not control (the served graphs); then the
    sandbox is always Docker, caller paths must resolve inside ``path_roots`` and budgets are capped at
    ``maxima``.  The command line on one's own machine is the operator: ``remote`` is false.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    remote: bool
    sandbox: SandboxKind = "default"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    allowed_models: tuple[str, ...] = ()
    allowed_base_urls: tuple[str, ...] = ()
    reference_dir: str | None = None
    features_dir: str | None = None
    """A folder of user features (:func:`features.catalogue.load_catalogue`); its ``properties.py`` files run
    on the host, so only the operator names it."""
    run_root: str = "runs"
    path_roots: tuple[str, ...] = ()
    maxima: Maxima = Maxima()
    model_deadline_s: float | None = None
    """Total time one model call may take; ``None``: the spec's ``model.timeout_s``."""
    context_tokens: int | None = None
    """The model's context window when neither its server nor the spec says it."""
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    max_spec_bytes: int = DEFAULT_MAX_SPEC_BYTES
    max_layers: int = DEFAULT_MAX_LAYERS
    sandbox_timeout_s: float = 120.0
    sandbox_memory_mib: int = 3072

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, remote: bool = True) -> OperatorSettings:
        """The served graphs' settings: ``SIMCODER_*`` and ``OPENAI_*`` variables (``langgraph.json``'s ``env``)."""
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def items(name: str) -> tuple[str, ...]:
            return tuple(p.strip() for p in (text(name) or "").split(",") if p.strip())

        def number(name: str, kind: type[int] | type[float], default: Any) -> Any:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(name, f"not a {kind.__name__}", source="environment") from None
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(name, "must be a positive finite number", source="environment")
            return value

        run_root = str(Path(text("SIMCODER_RUN_ROOT") or "runs").resolve())
        roots = items("SIMCODER_PATH_ROOTS") or (run_root, str(REPO / "scale_sim.yaml"), str(REPO / "examples"))
        maxima = Maxima(
            attempts_per_module=number("SIMCODER_MAX_ATTEMPTS", int, Maxima().attempts_per_module),
            repair_rounds=number("SIMCODER_MAX_REPAIR_ROUNDS", int, Maxima().repair_rounds),
            max_tokens=number("SIMCODER_MAX_TOKENS", int, Maxima().max_tokens),
            max_wall_s=number("SIMCODER_MAX_WALL_S", float, Maxima().max_wall_s),
            max_sandboxes=number("SIMCODER_MAX_SANDBOXES", int, Maxima().max_sandboxes),
            feature_requests=number("SIMCODER_MAX_FEATURE_REQUESTS", int, Maxima().feature_requests))
        features_dir = text(FEATURES_DIR_ENV)
        if features_dir is not None and not Path(features_dir).is_dir():
            raise ConfigError(FEATURES_DIR_ENV, "is not a folder", source="environment")
        return cls(
            remote=remote, sandbox="docker" if remote else "default", model=text("OPENAI_MODEL"),
            base_url=text("OPENAI_BASE_URL"), api_key_env=text("SIMCODER_API_KEY_ENV"),
            allowed_models=items("SIMCODER_ALLOWED_MODELS"), allowed_base_urls=items("SIMCODER_ALLOWED_BASE_URLS"),
            reference_dir=text("SIMCODER_REFERENCE_DIR"), run_root=run_root,
            features_dir=str(Path(features_dir).resolve()) if features_dir is not None else None,
            path_roots=tuple(str(Path(r).resolve()) for r in roots), maxima=maxima,
            model_deadline_s=number("SIMCODER_MODEL_DEADLINE_S", float, None),
            max_answer_bytes=number("SIMCODER_MAX_ANSWER_BYTES", int, DEFAULT_MAX_ANSWER_BYTES),
            max_spec_bytes=number("SIMCODER_MAX_SPEC_BYTES", int, DEFAULT_MAX_SPEC_BYTES),
            max_layers=number("SIMCODER_MAX_LAYERS", int, DEFAULT_MAX_LAYERS),
            sandbox_timeout_s=number("SIMCODER_SANDBOX_TIMEOUT_S", float, 120.0),
            sandbox_memory_mib=number("SIMCODER_SANDBOX_MEMORY_MIB", int, 3072))


# --------------------------------------------------------------------------- paths


def inside(path: str | Path, roots: tuple[str, ...]) -> bool:
    """True when ``path`` (symlinks resolved) is one of ``roots`` or lies below one of them."""
    resolved = Path(path).resolve()
    for root in roots:
        base = Path(root).resolve()
        if resolved == base or base in resolved.parents:
            return True
    return False


def caller_path(field: str, value: str, operator: OperatorSettings, *, base: Path | None = None) -> Path:
    """A path a caller gave, resolved; for a remote caller it must lie inside the operator's roots."""
    if "\x00" in value or not value.strip():
        raise ConfigError(field, "not a path")
    path = Path(value) if base is None or Path(value).is_absolute() else base / value
    if operator.remote and not inside(path, operator.path_roots):
        raise ConfigError(field, "outside the folders this server may read (its run root and specs); give a path "
                                 "inside them, or send the spec inline")
    return path.resolve()


def new_run_dir(request: CallerRequest, operator: OperatorSettings, default_name: str) -> Path:
    """The run's own folder: a new one inside the run root (a caller's ``run_dir`` must not exist yet)."""
    root = Path(operator.run_root).resolve()
    if request.run_dir is None:
        return root / default_name
    path = Path(request.run_dir)
    if operator.remote:
        path = path if path.is_absolute() else root / path
        if not inside(path, (str(root),)) or path.resolve() == root:
            raise ConfigError("run_dir", "must be a new folder inside the server's run root")
        if path.exists() or path.is_symlink():
            raise ConfigError("run_dir", "already exists; a run always makes a new folder")
    return path.resolve()


# --------------------------------------------------------------------------- resolution


def _endpoint(spec_model: ModelSettings | None, operator: OperatorSettings,
              request: CallerRequest, spec_from_caller: bool) -> tuple[str | None, str | None]:
    """The model name and base URL: spec < operator < caller, with a remote caller's choices checked."""
    spec_name = spec_model.model if spec_model else None
    spec_url = spec_model.base_url if spec_model else None
    remote = operator.remote
    asked_url = request.base_url or (spec_url if spec_from_caller else None)
    asked_name = request.model or (spec_name if spec_from_caller else None)
    url = operator.base_url or (None if remote and spec_from_caller else spec_url)
    name = operator.model or (None if remote and spec_from_caller else spec_name)
    if remote:
        where = "base_url" if request.base_url else "model.base_url"
        if asked_url is not None and asked_url != url and asked_url not in operator.allowed_base_urls:
            raise ConfigError(where, "names an endpoint the operator has not listed (SIMCODER_ALLOWED_BASE_URLS); "
                                     "the server's key goes only to endpoints its operator configured")
        where = "model" if request.model else "model.model"
        if asked_name is not None and asked_name != name and asked_name not in operator.allowed_models:
            raise ConfigError(where, "names a model the operator has not listed (SIMCODER_ALLOWED_MODELS)")
    return asked_name or name, _check_url("base_url", asked_url or url)


def _check_url(field: str, url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url.strip())
    try:
        _ = parts.port
    except ValueError:
        raise ConfigError(field, "has a bad port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(field, "is not an http(s) URL with a host (example: http://127.0.0.1:8000/v1)")
    return url.strip()


def _capped(name: str, value: Any, maximum: Any, remote: bool, from_caller: bool) -> Any:
    if remote and from_caller and maximum is not None and value > maximum:
        raise ConfigError(name, f"{value} is over this server's maximum of {maximum}")
    return value


def count_layers(spec: AgentSpec) -> int:
    """Layers written inline in the spec (topology files are counted when read)."""
    return sum(len(w.layers or ()) for w in spec.workloads)


def resolve(spec: AgentSpec, spec_path: Path, run_dir: Path, operator: OperatorSettings, request: CallerRequest, *,
            spec_from_caller: bool) -> RunConfig:
    """The run's settings: the spec's, then the operator's, then the caller's; refusals name the field.

    ``spec_from_caller``: the spec came from the caller (a remote caller's inline spec or path), so its
    model endpoint and budgets count as the caller's choices.
    """
    remote = operator.remote
    model_settings = spec.model or ModelSettings()
    budget = spec.budget or Budget()
    if remote and spec_from_caller and spec.model is not None and (
            spec.model.api_key_env != ModelSettings().api_key_env and spec.model.api_key_env != operator.api_key_env):
        raise ConfigError("model.api_key_env", "a caller's spec may not name the key's variable (the operator's)")
    name, url = _endpoint(spec.model, operator, request, spec_from_caller)
    budgets: dict[str, Any] = {}
    for field in BUDGET_FIELDS:
        asked = getattr(request, field)
        value = asked if asked is not None else getattr(budget, field)
        budgets[field] = _capped(field, value, getattr(operator.maxima, field), remote,
                                 asked is not None or spec_from_caller)
    deadline = model_settings.timeout_s
    if operator.model_deadline_s is not None:
        deadline = min(deadline, operator.model_deadline_s) if remote and spec_from_caller \
            else operator.model_deadline_s
    generate = request.generate if request.generate is not None else (spec.generate or list(("mapping", "network",
                                                                                              "memory")))
    order = ("mapping", "network", "memory")
    optimise = request.optimise if request.optimise is not None else (name is not None or url is not None)
    template = name is None and url is None
    return RunConfig(
        strategy=request.strategy or model_settings.strategy,
        granularity=request.granularity or "module",
        generate=tuple(r for r in order if r in generate),
        seed=request.seed if request.seed is not None else model_settings.seed,
        temperature=model_settings.temperature,
        retry_temperature=max(model_settings.retry_temperature, model_settings.temperature),
        max_answer_tokens=model_settings.max_answer_tokens,
        context_tokens=operator.context_tokens or model_settings.context_tokens,
        human_review=bool(request.human_review),
        model_cache=request.model_cache is not False,
        optimise=bool(optimise) and not template,
        spec_path=str(spec_path), run_dir=str(run_dir),
        model=name, base_url=url,
        api_key_env=operator.api_key_env or model_settings.api_key_env,
        model_deadline_s=deadline, max_answer_bytes=operator.max_answer_bytes,
        sandbox="docker" if remote else operator.sandbox,
        sandbox_timeout_s=operator.sandbox_timeout_s, sandbox_memory_mib=operator.sandbox_memory_mib,
        reference_dir=operator.reference_dir, features_dir=operator.features_dir, run_root=operator.run_root,
        path_roots=operator.path_roots,
        max_spec_bytes=operator.max_spec_bytes, max_layers=operator.max_layers,
        **budgets)
