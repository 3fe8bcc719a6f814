"""The run context: the model, strategy, granularity, budgets, caps and sandbox of one run.

Passed as ``context=`` to ``graph.invoke``/``stream`` (LangGraph's ``context_schema``); never
checkpointed, so the model object and any key stay out of the run's files.  A limit left ``None``
takes the spec's ``budget`` value (see :func:`limits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agents.planner import Plan

SandboxChoice = Literal["default", "docker", "process"]


@dataclass(kw_only=True)
class Context:
    """Settings of one run (CLI flags, Studio's context form, or a caller's values)."""

    strategy: Literal["zero_shot", "icl", "cot", "icl_cot"] | None = None
    """Prompting strategy; ``None``: the spec's ``model.strategy``."""
    granularity: Literal["module", "function"] = "module"
    """``module``: each module in one answer; ``function``: unit by unit from the skeleton."""
    model: str | None = None
    """Model name (overrides ``OPENAI_MODEL`` and the spec)."""
    base_url: str | None = None
    """OpenAI-compatible endpoint (overrides ``OPENAI_BASE_URL`` and the spec)."""
    seed: int | None = None
    generate: list[str] | None = None
    """Modules to write (default: the spec's ``generate``, else all three)."""
    reference_dir: str | None = None
    """A folder with the user's own reference modules to verify against."""
    attempts_per_module: int | None = None
    """Answers a coder or repairer may take per module (or unit) before giving up."""
    repair_rounds: int | None = None
    """Verify-repair rounds of the whole run."""
    max_tokens: int | None = None
    max_wall_s: float | None = None
    """Wall-time cap of this invocation, seconds (a resumed run gets it afresh)."""
    clock_start: float | None = None
    """When this invocation started (seconds since the epoch); ``None``: the run's start."""
    max_sandboxes: int | None = None
    sandbox: SandboxChoice = "default"
    """``default``: Docker for model-written code; template mode falls back to processes without an engine."""
    sandbox_timeout_s: float = 120.0
    """Wall-clock limit of one sandbox run, seconds."""
    sandbox_memory_mib: int = 3072
    """Memory limit of one sandbox run (a literal memory module on a whole network needs about 2 GiB)."""
    human_review: bool = False
    """Pause before each repair (``interrupt()``) for a person to approve, edit the repair instruction, or stop."""
    optimise: bool | None = None
    """Ask for a faster slowest module once verified; ``None``: on with a model, off in template mode."""
    chat_model: Any = None
    """A chat model object to use instead of building one from the settings (tests, embedding graphs)."""
    executor_factory: Any = None
    """A ``Callable[[Path], agents.verifier.Executor]`` that runs candidates instead of a sandbox (unit tests with
    trusted code only; typed ``Any`` so the context has a JSON schema for Studio)."""
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Objects built once per run from these settings (the sandbox pool, the chat model); not a setting."""


@dataclass(frozen=True)
class Limits:
    """The effective limits of a run: the context's values, else the spec's budget."""

    attempts_per_module: int
    repair_rounds: int
    max_tokens: int
    max_wall_s: float
    max_sandboxes: int

    def cap_reached(self, tokens_spent: int, elapsed_s: float) -> str | None:
        """Which cap the run has reached (tokens first, then wall time), or ``None``."""
        if tokens_spent >= self.max_tokens:
            return f"token cap reached ({tokens_spent} of {self.max_tokens} tokens)"
        if elapsed_s > self.max_wall_s:
            return f"wall-time cap reached ({self.max_wall_s:.0f} s)"
        return None


def limits(context: Context, plan: Plan | None) -> Limits:
    """Context values win; the spec's ``budget`` fills the rest (see ``reference_sim.spec.Budget``)."""
    from reference_sim.spec import Budget

    spec_budget = Budget.model_validate(plan["budget"]) if plan is not None and plan.get("budget") else Budget()

    def pick(name: str) -> Any:
        value = getattr(context, name)
        return value if value is not None else getattr(spec_budget, name)

    return Limits(pick("attempts_per_module"), pick("repair_rounds"), pick("max_tokens"), pick("max_wall_s"),
                  pick("max_sandboxes"))
