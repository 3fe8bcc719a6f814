"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig, SandboxUnavailable, make_sandbox
from tests.conftest import require


@pytest.fixture(scope="module")
def docker() -> None:
    """A reachable Docker engine with the sandbox image (runs that use ``--sandbox docker``)."""
    try:
        make_sandbox(SandboxConfig(), kind="docker")
    except SandboxUnavailable as exc:
        require(False, f"no Docker sandbox: {exc}")
