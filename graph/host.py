"""What a compiled graph is bound to: the operator's settings and the objects its runs share.

The served graphs are bound to :meth:`OperatorSettings.from_env` (remote callers); the CLI binds its own
settings; tests and embedding code may bind a chat model or a candidate runner.  None of this is in a
run's state, context or checkpoints (a caller cannot reach it), and the chat model (which holds the key)
never leaves the process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from agents import resources
from agents.intake import Intake
from agents.planner import Plan
from agents.run_config import ConfigError, OperatorSettings, RunConfig
from judge import executors
from sandbox.base import Sandbox

KEPT_RUNS = 16
"""Runs whose resources (sandbox pool, chat model, suite) a host keeps at once."""


@dataclass
class Host:
    """The operator's settings and the objects a graph's runs share."""

    operator: OperatorSettings
    chat_model: BaseChatModel | None = None
    """A chat model to use instead of one built from the settings (tests, embedding graphs)."""
    executor_factory: Callable[[Path], executors.Executor] | None = None
    """Runs candidates instead of a sandbox (unit tests with trusted code only)."""
    feature_executor: Callable[[], executors.FeatureExecutor] | None = None
    """Runs written feature code instead of a sandbox (unit tests with trusted code only)."""
    sandbox: Sandbox | None = None
    """A sandbox made already (the CLI's preflight)."""
    clock_start: float | None = None
    """When this invocation started (the CLI's resume gets its wall-time cap afresh); ``None``: the run's start."""
    prepared: Intake | None = None
    """The request the CLI checked before starting (its ``plan`` node uses it instead of checking it again)."""
    resume_overrides: dict[str, Any] = field(default_factory=dict)
    """Settings the operator changes on resume (a new endpoint, more budget): applied over the run's own."""
    _runs: OrderedDict[str, resources.Resources] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def config(self, state: Any) -> RunConfig:
        """The run's settings (resolved once by the ``plan`` node, kept in the state)."""
        config = RunConfig.model_validate(state["config"])
        return config.model_copy(update=self.resume_overrides) if self.resume_overrides else config

    def resources(self, plan: Plan, config: RunConfig) -> resources.Resources:
        """The run's suite, sandbox pool and chat model, made on first use."""
        with self._lock:
            found = self._runs.get(config.run_dir)
            if found is not None:
                self._runs.move_to_end(config.run_dir)
                return found
            made = resources.resources(plan, config, sandbox=self.sandbox, chat_model=self.chat_model,
                                       executor_factory=self.executor_factory,
                                       feature_executor=self.feature_executor)
            self._runs[config.run_dir] = made
            while len(self._runs) > KEPT_RUNS:
                self._runs.popitem(last=False)
            return made

    def release(self, config: RunConfig) -> None:
        """Forget a finished run's resources."""
        with self._lock:
            self._runs.pop(config.run_dir, None)


def request_of(state: Mapping[str, Any], context: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The caller's fields: the run's context (a mapping, e.g. a server run's ``context``), then the input's
    ``fields``."""
    if context is not None and not isinstance(context, Mapping):
        raise ConfigError("context", "must be a mapping of the request's fields")
    values = dict(context or {})
    values.update({k: state[k] for k in fields if state.get(k) is not None})
    return values
