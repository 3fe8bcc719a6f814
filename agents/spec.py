"""The agents' spec: the simulator's ``scale_sim.yaml`` plus what a SimulatorCoder run needs.

The architecture, workloads and verification sections are the simulator's (:class:`reference_sim.spec.Spec`);
this module adds the sections only the agents read (:data:`reference_sim.spec.OTHER_TOOLS_SECTIONS`): the
module descriptions the coders get, the model back-end, the budget and the modules to write.  A bad file
raises :class:`~reference_sim.errors.InputError` naming the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt

from reference_sim.spec import LoadedSpec, Spec, load_spec, parse_spec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModuleDescriptions(_Strict):
    """Natural-language descriptions the coder agents get for each module."""

    mapping: str = ""
    memory: str = ""
    network: str = ""


class ModelSettings(_Strict):
    """The LLM back-end: any OpenAI-compatible endpoint; none means template mode."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the key (the key itself never goes in the spec)."""
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    strategy: Literal["zero_shot", "icl", "cot", "icl_cot"] = "icl_cot"
    timeout_s: PositiveFloat = 120.0
    """The total time one model call may take, seconds (the client's retries included)."""
    seed: int | None = None
    """Sent to endpoints that take one (OpenAI, vLLM); recorded in every report."""
    retry_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    """The temperature of a retry (at least ``temperature``): at 0 a model repeats its answer byte for byte."""
    max_answer_tokens: PositiveInt = Field(default=4096, le=131_072)
    """Tokens one answer may have, sent as ``max_tokens``; an answer cut there is reported as truncated."""
    context_tokens: PositiveInt | None = Field(default=None, le=10_000_000)
    """The model's context window, when the server does not say it (llama.cpp's ``/props`` does)."""


class Budget(_Strict):
    """Attempt limits of the agent loop."""

    attempts_per_module: PositiveInt = 3
    repair_rounds: NonNegativeInt = 5
    max_tokens: PositiveInt = 2_000_000
    """Model tokens (prompt and answer) a run may spend; past it the run stops asking and reports."""
    max_wall_s: PositiveFloat = 3600.0
    """Wall time of a run, seconds; past it the run stops and reports."""
    max_sandboxes: PositiveInt = 2
    """Sandbox runs at the same time (the coders run in parallel)."""


class AgentSpec(Spec):
    """A whole ``scale_sim.yaml`` as a run reads it: the simulator's sections and the agents' own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modules: ModuleDescriptions | None = None
    model: ModelSettings | None = None
    budget: Budget | None = None
    generate: list[Literal["mapping", "network", "memory"]] | None = None
    """The modules a run writes (default: all three); the others are the reference's."""
    features: dict[str, dict[str, Any] | None] | None = None
    """Catalogue features beyond the reference, each with its parameters (:mod:`agents.run_features` checks them)."""


def load_agent_spec(path: str | Path) -> LoadedSpec[AgentSpec]:
    """Read and validate a spec with the agents' sections."""
    return load_spec(path, AgentSpec)


def parse_agent_spec(text: str, source: str | Path) -> AgentSpec:
    """Validate spec text with the agents' sections; errors name ``source``, the line and the field."""
    return parse_spec(text, source, AgentSpec)
