"""Sandboxes that run candidate simulators with bounded time, memory, processes and output.

``make_sandbox()`` returns a :class:`DockerSandbox` when a Docker engine is reachable and otherwise a
:class:`ProcessSandbox` (not isolation).  See docs/sandbox.md for what each one enforces.
"""

from sandbox.base import (
    CANDIDATE_MOUNT,
    CODE_MOUNT,
    ENV_CANDIDATE,
    ENV_CODE,
    ENV_INPUTS,
    ENV_OUT,
    INPUTS_MOUNT,
    OUT_MOUNT,
    EngineUnavailable,
    ImageMissing,
    Outcome,
    RunResult,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
)
from sandbox.config import SandboxConfig
from sandbox.factory import make_sandbox
from sandbox.process_sandbox import ProcessSandbox

__all__ = [
    "CANDIDATE_MOUNT",
    "CODE_MOUNT",
    "ENV_CANDIDATE",
    "ENV_CODE",
    "ENV_INPUTS",
    "ENV_OUT",
    "INPUTS_MOUNT",
    "OUT_MOUNT",
    "EngineUnavailable",
    "ImageMissing",
    "Outcome",
    "ProcessSandbox",
    "RunResult",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxUnavailable",
    "make_sandbox",
]


def __getattr__(name: str) -> object:
    """``sandbox.DockerSandbox`` is imported lazily so the package works without the docker SDK."""
    if name == "DockerSandbox":
        from sandbox.docker_sandbox import DockerSandbox

        return DockerSandbox
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
