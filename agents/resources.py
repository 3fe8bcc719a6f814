"""What a run's nodes need besides the state: the suite, the sandbox pool and the chat model.

Built once per run from the context and the plan (kept in the context's cache, never in the state
or a checkpoint: the chat model holds the key).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from agents import checks, llm, verifier
from agents.planner import Plan, load_reference
from reference_sim import engine
from reference_sim.spec import ModelSettings
from sandbox.base import Sandbox
from sandbox.config import SandboxConfig
from sandbox.factory import SandboxKind, make_sandbox
from sandbox.process_sandbox import ProcessSandbox

logger = logging.getLogger(__name__)

PROCESS_WARNING = ("the process sandbox is not isolation: model-written code runs as your user on this machine "
                   "(only limits on time, memory and output apply)")
TEMPLATE_FALLBACK = ("no Docker engine is reachable: template mode runs its own (built-in) code in the process "
                     "sandbox instead")


def model_config(plan: Plan | None, *, model: str | None, base_url: str | None, seed: int | None,
                 env: Mapping[str, str] | None = None) -> llm.ModelConfig | None:
    """The model settings of a run (``None``: template mode)."""
    settings = plan.get("model_settings") if plan is not None else None
    parsed = ModelSettings.model_validate(settings) if settings else None
    return llm.resolve_model_config(parsed, model=model, base_url=base_url, seed=seed, env=env)


def sandbox_kind(choice: str, template: bool) -> SandboxKind:
    """``default`` is Docker for model-written code and Docker-else-processes for template mode."""
    if choice == "process":
        return "process"
    if choice == "docker":
        return "docker"
    return "auto" if template else "docker"


@dataclass
class Resources:
    """One run's suite, final check, candidate runner and chat model."""

    suite: verifier.Suite
    final_check: verifier.Suite
    executor_for: checks.ExecutorFactory
    chat_model: BaseChatModel | None
    sandbox_note: str


def _reference(plan: Plan) -> engine.Modules:
    return engine.REFERENCE if plan["reference"] == "built-in" else load_reference(plan["reference"])


def make_sandbox_for(kind: SandboxKind, timeout_s: float, memory_mib: int = 3072) -> Sandbox:
    """The sandbox a run uses (Docker or processes)."""
    return make_sandbox(SandboxConfig(timeout_s=timeout_s, memory_mib=memory_mib), kind=kind)


def sandbox_note(sandbox: Sandbox, kind: SandboxKind) -> str:
    """What a user must be told about the sandbox: the template-mode fallback, or that processes are no isolation."""
    if not isinstance(sandbox, ProcessSandbox):
        return ""
    return TEMPLATE_FALLBACK if kind == "auto" else PROCESS_WARNING


_lock = threading.Lock()


def resources(cache: dict[str, Any], plan: Plan, *, sandbox_choice: str, max_sandboxes: int, timeout_s: float,
              memory_mib: int, workdir: Path | None, chat_model: BaseChatModel | None,
              executor_factory: Callable[[Path], verifier.Executor] | None,
              model: str | None, base_url: str | None, seed: int | None) -> Resources:
    """The run's resources, made on first use and kept in ``cache`` (the context's; a sandbox already made, e.g.
    by the CLI's preflight, is taken from ``cache["sandbox"]``)."""
    with _lock:
        found = cache.get("resources")
        if isinstance(found, Resources):
            return found
        reference = _reference(plan)
        suite = verifier.load_suite(plan["spec_path"], reference)
        final_check = verifier.load_final_check(plan["spec_path"], reference)
        note = ""
        if executor_factory is not None:
            executor_for: checks.ExecutorFactory = executor_factory
        else:
            kind = sandbox_kind(sandbox_choice, plan["template"])
            made_before = cache.get("sandbox")
            sandbox = made_before if made_before is not None else make_sandbox_for(kind, timeout_s, memory_mib)
            note = sandbox_note(sandbox, kind)
            pool = checks.Sandboxes(lambda: sandbox, max_sandboxes, timeout_s=timeout_s, workdir=workdir)
            executor_for = pool.executor
        model_obj = chat_model
        if model_obj is None and not plan["template"]:
            config = model_config(plan, model=model, base_url=base_url, seed=seed)
            if config is not None:
                model_obj = llm.make_chat_model(config)
        made = Resources(suite, final_check, executor_for, model_obj, note)
        cache["resources"] = made
        return made
