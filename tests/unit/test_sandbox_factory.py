"""make_sandbox and DockerSandbox construction without a real engine (fakes and a dead socket)."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

from sandbox import (
    CANDIDATE_MOUNT,
    CODE_MOUNT,
    INPUTS_MOUNT,
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
    """Just enough of docker.DockerClient for construction and cleanup_stale.

    ``list`` records the filters it was given and returns every container regardless, as an engine
    that ignored them would: the sandbox must check the labels itself too.
    """

    def __init__(self, *, image_present: bool = True, containers: list[FakeContainer] | None = None) -> None:
        self.image_present = image_present
        self.removed: list[str] = []
        self.list_filters: list[dict[str, Any] | None] = []
        self._containers = containers or []
        self.images = self
        self.containers = self

    def get(self, name: str) -> object:
        if not self.image_present:
            raise ImageNotFound(f"No such image: {name}")
        return object()

    def list(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[FakeContainer]:
        self.list_filters.append(filters)
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


FUTURE = f"{time.time() + 10 * 365 * 24 * 3600:.0f}"
PAST = f"{time.time() - 3600:.0f}"
DEAD_PROCESS = f"{socket.gethostname()}:999999999:1"


def _labels(owner: str, process: str, deadline: str) -> dict[str, str]:
    return {ds.LABEL: "1", ds.LABEL_OWNER: owner, ds.LABEL_PROCESS: process, ds.LABEL_DEADLINE: deadline}


def _stale_mix(me: str, removed: list[str]) -> list[FakeContainer]:
    """Stale and live containers of ``me`` and of other owners (dead processes, expired deadlines)."""
    live = ds._process_token()
    return [
        FakeContainer("mine-dead-process", _labels(me, DEAD_PROCESS, FUTURE), removed),
        FakeContainer("mine-expired", _labels(me, live, PAST), removed),
        FakeContainer("mine-live", _labels(me, live, FUTURE), removed),
        FakeContainer("mine-other-host", _labels(me, "elsewhere:1:1", FUTURE), removed),
        FakeContainer("other-dead-process", _labels("uid4242@elsewhere", DEAD_PROCESS, FUTURE), removed),
        FakeContainer("other-expired", _labels("uid4242@elsewhere", live, PAST), removed),
        FakeContainer("other-user-same-host", _labels(f"uid{os.getuid() + 1}@{socket.gethostname()}",
                                                      DEAD_PROCESS, PAST), removed),
        FakeContainer("unowned-old-format", {ds.LABEL: "1", ds.LABEL_OWNER: DEAD_PROCESS,
                                             ds.LABEL_DEADLINE: PAST}, removed),
    ]


def test_default_owner_is_this_user_on_this_host() -> None:
    sandbox = ds.DockerSandbox(SandboxConfig(), client=FakeClient())
    assert sandbox.owner == ds.default_owner() == f"uid{os.getuid()}@{socket.gethostname()}"
    assert ds.DockerSandbox(SandboxConfig(owner="ci-job-7"), client=FakeClient()).owner == "ci-job-7"


@pytest.mark.parametrize("owner", [None, "ci-job-7"])
def test_cleanup_stale_removes_only_this_owners_stale_containers(owner: str | None) -> None:
    me = owner or ds.default_owner()
    removed: list[str] = []
    client = FakeClient(containers=_stale_mix(me, removed))
    sandbox = ds.DockerSandbox(SandboxConfig(owner=owner), client=client)
    assert sorted(removed) == ["mine-dead-process", "mine-expired"]
    assert client.list_filters == [{"label": [ds.LABEL, f"{ds.LABEL_OWNER}={me}"]}]
    removed.clear()
    assert sandbox.cleanup_stale() == 2
    assert sorted(removed) == ["mine-dead-process", "mine-expired"]


def test_cleanup_stale_can_be_turned_off() -> None:
    removed: list[str] = []
    client = FakeClient(containers=_stale_mix(ds.default_owner(), removed))
    sandbox = ds.DockerSandbox(SandboxConfig(cleanup_stale=False), client=client)
    assert removed == [] and client.list_filters == []
    assert sandbox.cleanup_stale() == 2, "an explicit call still cleans up"


def test_created_containers_carry_owner_process_and_deadline(tmp_path: Path) -> None:
    client = RecordingClient()
    sandbox = ds.DockerSandbox(SandboxConfig(owner="ci-job-7"), client=client)
    (tmp_path / "c").mkdir()
    sandbox._create(tmp_path / "c", tmp_path / "c", tmp_path / "c", ["true"], 10.0, True)
    labels = client.created[0]["labels"]
    assert labels[ds.LABEL] == "1" and labels[ds.LABEL_OWNER] == "ci-job-7"
    assert labels[ds.LABEL_PROCESS] == ds._process_token()
    assert ds._process_alive(labels[ds.LABEL_PROCESS]) and not ds._process_alive(DEAD_PROCESS)
    assert float(labels[ds.LABEL_DEADLINE]) > time.time()


class RecordingClient(FakeClient):
    """A FakeClient whose ``containers.create`` records its arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[dict[str, Any]] = []

    def create(self, image: str, command: list[str], **kwargs: Any) -> FakeContainer:
        self.created.append({"image": image, "command": command, **kwargs})
        return FakeContainer(kwargs["name"], kwargs["labels"], self.removed)


def _mount_targets(client: RecordingClient) -> dict[str, dict[str, Any]]:
    return {m["Target"]: m for m in client.created[-1]["mounts"]}


def test_no_code_is_mounted_by_default(tmp_path: Path) -> None:
    client = RecordingClient()
    sandbox = ds.DockerSandbox(SandboxConfig(), client=client)
    assert sandbox.code_dir is None
    (tmp_path / "c").mkdir()
    sandbox._create(tmp_path / "c", tmp_path / "c", tmp_path / "c", ["true"], 10.0, True)
    assert CODE_MOUNT not in _mount_targets(client)
    assert set(_mount_targets(client)) == {CANDIDATE_MOUNT, INPUTS_MOUNT, ds.RESULT_MOUNT}


def test_an_explicit_code_dir_is_mounted_read_only(tmp_path: Path) -> None:
    client = RecordingClient()
    (tmp_path / "code").mkdir()
    (tmp_path / "c").mkdir()
    sandbox = ds.DockerSandbox(SandboxConfig(), tmp_path / "code", client=client)
    sandbox._create(tmp_path / "c", tmp_path / "c", tmp_path / "c", ["true"], 10.0, True)
    mount = _mount_targets(client)[CODE_MOUNT]
    assert (mount["Source"], mount["ReadOnly"], mount["Type"]) == (str(tmp_path / "code"), True, "bind")
    with pytest.raises(NotADirectoryError, match="code_dir"):
        ds.DockerSandbox(SandboxConfig(), tmp_path / "missing", client=client)
