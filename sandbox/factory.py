"""Choosing a sandbox: Docker when an engine is reachable, else (or on request) plain processes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from sandbox.base import EngineUnavailable, Sandbox
from sandbox.config import SandboxConfig
from sandbox.process_sandbox import ProcessSandbox

logger = logging.getLogger(__name__)

SandboxKind = Literal["auto", "docker", "process"]


def make_sandbox(
    config: SandboxConfig | None = None, code_dir: Path | None = None, *, kind: SandboxKind = "auto"
) -> Sandbox:
    """A sandbox of the given kind; ``code_dir`` (default: none) is mounted read-only at ``CODE_MOUNT``.

    ``"docker"`` raises :class:`sandbox.base.SandboxUnavailable` when it cannot be used.  ``"auto"``
    falls back to :class:`ProcessSandbox` (with a warning) only when no engine is reachable; a reachable
    engine without the image still raises ``ImageMissing``, so a missing build is never silently
    replaced by a run without isolation.
    """
    if kind == "process":
        return ProcessSandbox(config, code_dir)
    if kind not in ("auto", "docker"):
        raise ValueError(f"kind must be 'auto', 'docker' or 'process', got {kind!r}")
    try:
        from sandbox.docker_sandbox import DockerSandbox
    except ImportError as exc:
        if kind == "docker":
            raise EngineUnavailable(f"The docker Python package is not installed ({exc})") from exc
        logger.warning("docker SDK not importable (%s); falling back to the process sandbox", exc)
        return ProcessSandbox(config, code_dir)
    try:
        return DockerSandbox(config, code_dir)
    except EngineUnavailable as exc:
        if kind == "docker":
            raise
        logger.warning("%s; falling back to the process sandbox", exc)
        return ProcessSandbox(config, code_dir)
