"""The verifier graph: verify a simulator against the reference on chosen workloads, as a service.

One node over :mod:`agents.service`.  Input: a candidate folder (e.g. a run's standalone package)
or the three module sources, and optionally a spec (path or inline YAML), workload names and a
user's reference.  Output: the verdict, the blamed modules, the stage evidence, the diagnosis, and
per workload and path whether it matched.  The candidate runs in Docker unless the context says
``sandbox: process``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from agents import resources, service, verifier


@dataclass(kw_only=True)
class VerifierContext:
    """Where the candidate runs."""

    sandbox: Literal["docker", "process"] = "docker"
    """``docker`` (isolation) or ``process`` (not isolation: trusted code only)."""
    sandbox_timeout_s: float = 120.0
    sandbox_memory_mib: int = 3072
    executor_factory: Any = None
    """Runs candidates instead of a sandbox (unit tests with trusted code only)."""
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class VerifyInput(TypedDict, total=False):
    """What to verify, and on what."""

    candidate_dir: str
    """A folder with ``mapping.py``, ``network.py`` and ``memory.py`` (a run's package is one)."""
    modules: dict[str, str]
    """The three modules' sources instead of a folder (role -> source)."""
    spec_path: str
    """The spec whose verification workloads and final check to use (default ``scale_sim.yaml``)."""
    spec_yaml: str
    """An inline spec instead of ``spec_path``."""
    workloads: list[str]
    """Only these verification workloads (``edge_cases`` or ``edge_cases@spec``); default all."""
    final_check: list[str]
    """Only these final-check workloads; default the spec's; ``[]`` for none."""
    reference_dir: str
    """Verify against the user's own reference modules in this folder."""


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


def _executor_for(ctx: VerifierContext) -> Any:
    if ctx.executor_factory is not None:
        return ctx.executor_factory
    if "sandbox" not in ctx.cache:
        ctx.cache["sandbox"] = resources.make_sandbox_for(ctx.sandbox, ctx.sandbox_timeout_s, ctx.sandbox_memory_mib)
    sandbox = ctx.cache["sandbox"]
    return lambda folder: verifier.SandboxExecutor(sandbox, Path(folder), timeout_s=ctx.sandbox_timeout_s)


def verify(state: VerifyState, runtime: Runtime[VerifierContext]) -> dict[str, Any]:
    """Verify the candidate in the sandbox and answer with the verdict and the evidence."""
    modules = service.candidate_modules(state.get("candidate_dir"), state.get("modules"))
    with service.spec_file(state.get("spec_path"), state.get("spec_yaml")) as spec:
        suite, final = service.workloads(spec, state.get("workloads"), state.get("final_check"),
                                         state.get("reference_dir"))
    record = service.verify_modules(modules, _executor_for(runtime.context), suite, final)
    return {"passed": record["passed"], "outcome": record["outcome"], "message": record["message"],
            "diagnosis": record["diagnosis"], "blamed": record["blamed"], "stages": record["stages"],
            "checked": record["workloads"], "total_cycle_error": record["total_cycle_error"],
            "layers": record["layers"]}


def build_verifier_graph() -> Any:
    """The verifier service graph, compiled."""
    builder = StateGraph(VerifyState, context_schema=VerifierContext, input_schema=VerifyInput,
                         output_schema=VerifyOutput)
    builder.add_node("verify", verify)
    builder.add_edge(START, "verify")
    builder.add_edge("verify", END)
    return builder.compile()


graph = build_verifier_graph()
"""The module-level compiled verifier graph (``langgraph.json``: ``verifier``)."""
