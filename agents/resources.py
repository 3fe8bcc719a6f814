"""What a run's nodes need besides the state: the suite, the sandbox pool and the chat model.

Built once per run from its plan and settings (kept by the graph's host, never in the state or a
checkpoint: the chat model holds the key).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from agents import llm
from agents import window as context_window
from agents.answer_cache import CACHE_FILE, AnswerCache
from agents.planner import Plan
from agents.run_config import RunConfig
from judge import executors, suites, user_reference
from judge.executors import FeatureExecutor
from sandbox.base import Sandbox
from sandbox.config import SandboxConfig
from sandbox.factory import SandboxKind, make_sandbox
from sandbox.process_sandbox import ProcessSandbox

logger = logging.getLogger(__name__)

PROCESS_WARNING = ("the process sandbox is not isolation: model-written code runs as your user on this machine "
                   "(only limits on time, memory and output apply)")
TEMPLATE_FALLBACK = ("no Docker engine is reachable: template mode runs its own (built-in) code in the process "
                     "sandbox instead")


def model_config(config: RunConfig, env: Mapping[str, str] | None = None) -> llm.ModelConfig | None:
    """The chat model's settings from the run's (``None``: template mode); fails now when no key is set for a
    remote endpoint.  The key's variable is the run's, else ``OPENAI_API_KEY`` when that one is unset."""
    if config.template:
        return None
    if config.model is None:
        raise llm.ModelConfigError("a base URL is configured but no model name: pass --model NAME, set "
                                   f"{llm.ENV_MODEL}, or set model.model in the spec")
    env = os.environ if env is None else env
    key_env = config.api_key_env
    if not env.get(key_env, "").strip() and env.get(llm.DEFAULT_API_KEY_ENV, "").strip():
        key_env = llm.DEFAULT_API_KEY_ENV
    made = llm.ModelConfig(model=config.model, base_url=config.base_url, api_key_env=key_env,
                           temperature=config.temperature, timeout_s=config.model_deadline_s,
                           max_retries=llm.DEFAULT_MAX_RETRIES, seed=config.seed,
                           deadline_s=config.model_deadline_s, max_answer_bytes=config.max_answer_bytes,
                           max_answer_tokens=config.max_answer_tokens)
    llm.api_key(made, env)
    return made


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

    suite: suites.Suite
    final_check: suites.Suite
    executor_for: executors.ExecutorFactory
    chat_model: BaseChatModel | None
    sandbox_note: str
    window: context_window.Window | None = None
    """The model's context window, when known (the server's, else the configured one)."""
    feature_executor: Callable[[], FeatureExecutor] | None = None
    """Runs written feature code (in the run's sandbox pool)."""


def make_sandbox_for(kind: SandboxKind, timeout_s: float, memory_mib: int = 3072) -> Sandbox:
    """The sandbox a run uses (Docker or processes)."""
    return make_sandbox(SandboxConfig(timeout_s=timeout_s, memory_mib=memory_mib), kind=kind)


def sandbox_note(sandbox: Sandbox, kind: SandboxKind) -> str:
    """What a user must be told about the sandbox: the template-mode fallback, or that processes are no isolation."""
    if not isinstance(sandbox, ProcessSandbox):
        return ""
    return TEMPLATE_FALLBACK if kind == "auto" else PROCESS_WARNING


def resources(plan: Plan, config: RunConfig, *, sandbox: Sandbox | None = None,
              chat_model: BaseChatModel | None = None,
              executor_factory: Callable[[Path], executors.Executor] | None = None,
              feature_executor: Callable[[], FeatureExecutor] | None = None) -> Resources:
    """One run's resources: the suite (a user's reference's expected results from its sandbox run), the sandbox
    pool (``sandbox`` when one was made already, e.g. by the CLI's preflight) and the chat model."""
    note = ""
    if executor_factory is not None:
        executor_for: executors.ExecutorFactory = executor_factory
    else:
        kind = sandbox_kind(config.sandbox, plan["template"])
        made = sandbox if sandbox is not None else make_sandbox_for(kind, config.sandbox_timeout_s,
                                                                    config.sandbox_memory_mib)
        note = sandbox_note(made, kind)
        pool = executors.Sandboxes(lambda: made, config.max_sandboxes, timeout_s=config.sandbox_timeout_s)
        executor_for = pool.executor
        feature_executor = feature_executor or (lambda: pool.feature_executor(config.sandbox_timeout_s))
    suite = suites.load_suite(plan["spec_path"])
    final_check = suites.load_final_check(plan["spec_path"])
    if plan["reference"] != "built-in":
        suite, final_check = user_reference.expected_suites(plan["reference"], executor_for, suite, final_check)
    model_obj = chat_model
    window = context_window.configured(config.context_tokens)
    if model_obj is None and not plan["template"]:
        found = model_config(config)
        if found is not None:
            cache = AnswerCache(Path(config.run_dir) / CACHE_FILE) if config.model_cache else None
            model_obj = llm.make_chat_model(found, cache=cache)
            window = context_window.resolve(found.base_url, found.model, config.context_tokens)
    return Resources(suite, final_check, executor_for, model_obj, note, window, feature_executor)
