"""The verifier graph: verify a simulator against the reference on chosen workloads, as a service.

One node over :mod:`agents.service`.  Input: a candidate folder (e.g. a run's standalone package)
or the three module sources, and optionally a spec (path or inline YAML), workload names and a
user's reference folder.  Output: the verdict, the blamed modules, the stage evidence, the diagnosis,
and per workload and path whether it matched.  The graph is bound to a :class:`VerifierHost`: the
operator's settings (for the served graph, the environment's: remote callers, the Docker sandbox,
paths inside the operator's roots) and, in tests, a candidate runner.  A caller's input and context
are checked by :func:`agents.service.verify_request`; nothing in them can choose where code runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from agents import resources, service
from agents.run_config import OperatorSettings
from graph.host import request_of
from judge import executors
from sandbox.base import Sandbox


@dataclass
class VerifierHost:
    """The operator's settings and the candidate runner of a verifier graph."""

    operator: OperatorSettings
    executor_factory: Callable[[Path], executors.Executor] | None = None
    """Runs candidates instead of a sandbox (unit tests with trusted code only)."""
    _sandbox: Sandbox | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def executor_for(self) -> Callable[[Path], executors.Executor]:
        if self.executor_factory is not None:
            return self.executor_factory
        with self._lock:
            if self._sandbox is None:
                kind = "docker" if self.operator.remote else resources.sandbox_kind(self.operator.sandbox, False)
                self._sandbox = resources.make_sandbox_for(kind, self.operator.sandbox_timeout_s,
                                                           self.operator.sandbox_memory_mib)
            sandbox = self._sandbox
        timeout = self.operator.sandbox_timeout_s
        return lambda folder: executors.SandboxExecutor(sandbox, Path(folder), timeout_s=timeout)


class VerifyInput(TypedDict, total=False):
    """What to verify, and on what."""

    candidate_dir: str
    """A folder with ``mapping.py``, ``network.py`` and ``memory.py`` (a run's package is one); on a server,
    inside its roots."""
    modules: dict[str, str]
    """The three modules' sources instead of a folder (role -> source)."""
    spec_path: str
    """The spec whose verification workloads and final check to use (default ``scale_sim.yaml``)."""
    spec_yaml: str
    """An inline spec instead of ``spec_path`` (size-limited)."""
    workloads: list[str]
    """Only these verification workloads (``edge_cases`` or ``edge_cases@spec``); default all."""
    final_check: list[str]
    """Only these final-check workloads; default the spec's; ``[]`` for none."""
    reference_dir: str
    """Verify against the user's own reference modules in this folder (inside the server's roots; they run in
    the sandbox)."""


VERIFY_FIELDS: tuple[str, ...] = tuple(VerifyInput.__annotations__)


class VerifyOutput(TypedDict, total=False):
    """The verifier's answer."""

    passed: bool
    outcome: str
    """``passed``, ``wrong_result``, ``crashed``, ``forbidden``, ``timeout``, ..."""
    message: str
    diagnosis: str
    """At most 1,200 characters, the blamed module and its stage evidence first."""
    blamed: list[str]
    stages: list[dict[str, str]]
    """Per blamed stage: the workload, the first differing field, expected and actual."""
    checked: list[dict[str, Any]]
    """Each workload and path (``traced``, ``untraced``, ``final_check``) and whether it matched."""
    total_cycle_error: float | None
    layers: list[dict[str, Any]]
    """Per-layer total cycles, expected and the candidate's."""


class VerifyState(VerifyInput, VerifyOutput, total=False):
    """Input and output together."""


def build_verifier_graph(host: VerifierHost | None = None) -> Any:
    """The verifier service graph bound to ``host`` (default: the environment's settings, remote callers)."""
    bound = host or VerifierHost(OperatorSettings.from_env(remote=True))

    def verify(state: VerifyState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Verify the candidate in the sandbox and answer with the verdict and the evidence."""
        values = request_of(state, runtime.context, VERIFY_FIELDS)
        record = service.verify_request(values, bound.operator, bound.executor_for())
        return {"passed": record["passed"], "outcome": record["outcome"], "message": record["message"],
                "diagnosis": record["diagnosis"], "blamed": record["blamed"], "stages": record["stages"],
                "checked": record["workloads"], "total_cycle_error": record["total_cycle_error"],
                "layers": record["layers"]}

    builder = StateGraph(VerifyState, input_schema=VerifyInput, output_schema=VerifyOutput)
    builder.add_node("verify", verify)
    builder.add_edge(START, "verify")
    builder.add_edge("verify", END)
    return builder.compile()


graph = build_verifier_graph()
"""The module-level compiled verifier graph (``langgraph.json``: ``verifier``)."""
