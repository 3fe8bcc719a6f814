"""make_sandbox and DockerSandbox construction without a real engine (fakes and a dead socket)."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

from sandbox import (
    EngineUnavailable,
    ImageMissing,
    ProcessSandbox,
    Sandbox,
    SandboxConfig,
    SandboxUnavailable,
    make_sandbox,
)
from sandbox import docker_sandbox as ds


@pytest.fixture()
def dead_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the docker SDK at a socket nobody listens on."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")


class FakeContainer:
    def __init__(self, name: str, labels: dict[str, str], removed: list[str]) -> None:
        self.id = name
        self.name = name
        self.labels = labels
        self._removed = removed

    def remove(self, force: bool = False, v: bool = False) -> None:
        self._removed.append(self.name)


class FakeClient:
    """Just enough of docker.DockerClient for construction and cleanup_stale."""

    def __init__(self, *, image_present: bool = True, containers: list[FakeContainer] | None = None) -> None:
        self.image_present = image_present
        self.removed: list[str] = []
        self._containers = containers or []
        self.images = self
        self.containers = self

    def get(self, name: str) -> object:
        if not self.image_present:
            raise ImageNotFound(f"No such image: {name}")
        return object()

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:
        assert filters == {"label": ds.LABEL}
        return self._containers

    def info(self) -> dict[str, Any]:
        return {"NCPU": 2}

    def ping(self) -> bool:
        return True


def test_process_kind_is_process_sandbox(tmp_path: Path) -> None:
    sandbox = make_sandbox(SandboxConfig(), tmp_path, kind="process")
    assert isinstance(sandbox, ProcessSandbox) and sandbox.name == "process"
    assert isinstance(sandbox, Sandbox)


def test_auto_falls_back_to_processes_without_engine(
    dead_engine: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        sandbox = make_sandbox(SandboxConfig(), tmp_path, kind="auto")
    assert isinstance(sandbox, ProcessSandbox)
    messages = [r.getMessage() for r in caplog.records]
    assert any("No Docker engine is reachable" in m and "falling back" in m for m in messages)
    assert any("NOT isolation" in m for m in messages)


def test_docker_kind_without_engine_raises_one_line(dead_engine: None, tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="No Docker engine is reachable") as caught:
        make_sandbox(SandboxConfig(), tmp_path, kind="docker")
    assert isinstance(caught.value, SandboxUnavailable)
    assert "\n" not in str(caught.value) and "provision-docker.sh" in str(caught.value)


def test_missing_image_is_not_silently_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds, "connect", lambda: FakeClient(image_present=False))
    with pytest.raises(
        ImageMissing, match=r"bash \.ci/provision-docker\.sh .* docker build -t simulatorcoder"
    ):
        make_sandbox(SandboxConfig(), tmp_path, kind="auto")


def test_auto_picks_docker_when_reachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds, "connect", lambda: FakeClient())
    sandbox = make_sandbox(SandboxConfig(), tmp_path, kind="auto")
    assert isinstance(sandbox, ds.DockerSandbox) and sandbox.name == "docker"
    assert isinstance(sandbox, Sandbox)


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        make_sandbox(SandboxConfig(), tmp_path, kind="vm")  # type: ignore[arg-type]


def test_cleanup_stale_removes_dead_owners_and_expired_deadlines(tmp_path: Path) -> None:
    host = socket.gethostname()
    future = f"{time.time() + 600:.0f}"
    past = f"{time.time() - 3600:.0f}"
    removed: list[str] = []
    containers = [
        FakeContainer(
            "dead-owner",
            {ds.LABEL: "1", ds.LABEL_OWNER: f"{host}:999999999:1", ds.LABEL_DEADLINE: future},
            removed,
        ),
        FakeContainer(
            "expired", {ds.LABEL: "1", ds.LABEL_OWNER: ds._owner_token(), ds.LABEL_DEADLINE: past}, removed
        ),
        FakeContainer(
            "live-owner",
            {ds.LABEL: "1", ds.LABEL_OWNER: ds._owner_token(), ds.LABEL_DEADLINE: future},
            removed,
        ),
        FakeContainer(
            "other-host", {ds.LABEL: "1", ds.LABEL_OWNER: "elsewhere:1:1", ds.LABEL_DEADLINE: future}, removed
        ),
    ]
    sandbox = ds.DockerSandbox(SandboxConfig(), tmp_path, client=FakeClient(containers=containers))
    assert sorted(removed) == ["dead-owner", "expired"]
    removed.clear()
    assert sandbox.cleanup_stale() == 2
