"""DockerSandbox against a real engine: hostile candidates from ``sandbox_candidates/``.

Every test checks the outcome and its message, that the host is untouched (the files the test
watches are unchanged) and, through the autouse fixture, that no container with our prefix is left.
Needs the image from ``bash .ci/provision-docker.sh``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import (
    CANDIDATE_MOUNT,
    CODE_MOUNT,
    ENV_CANDIDATE,
    ENV_CODE,
    ENV_INPUTS,
    ENV_OUT,
    INPUTS_MOUNT,
    OUT_MOUNT,
    ImageMissing,
    Outcome,
    RunResult,
    SandboxConfig,
    SandboxUnavailable,
)
from tests.conftest import require

pytestmark = pytest.mark.integration

CANDIDATES = Path(__file__).resolve().parent / "sandbox_candidates"
COMMAND = ["python3", "-I", f"{CANDIDATE_MOUNT}/main.py"]
PREFIX = f"simcoder-sbx-test-{uuid.uuid4().hex[:6]}-"
SHORT_TIMEOUT_S = 3.0


def _docker_client() -> Any:
    from sandbox.docker_sandbox import connect

    try:
        return connect(timeout_s=10)
    except SandboxUnavailable:
        return None


@pytest.fixture(scope="module")
def client() -> Any:
    found = _docker_client()
    require(found is not None, "no Docker engine reachable (run: bash .ci/provision-docker.sh)")
    return found


@pytest.fixture(scope="module")
def config(client: Any) -> SandboxConfig:
    cfg = SandboxConfig(
        memory_mib=256,
        pids_limit=64,
        timeout_s=20,
        output_limit_mib=8,
        stream_limit_bytes=4000,
        name_prefix=PREFIX,
    )
    images = [tag for image in client.images.list() for tag in image.tags]
    require(cfg.image in images, f"image {cfg.image} missing (run: bash .ci/provision-docker.sh)")
    return cfg


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the repo code, so that an escaped write could never land in the real repo."""
    folder = tmp_path_factory.mktemp("code")
    (folder / "simcoder_probe_module.py").write_text("VALUE = 42\n")
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def docker_sandbox(client: Any, config: SandboxConfig, code_dir: Path) -> Any:
    from sandbox.docker_sandbox import DockerSandbox

    return DockerSandbox(config, code_dir, client=client)


def _our_containers(client: Any) -> list[str]:
    return [c.name for c in client.containers.list(all=True, filters={"name": PREFIX})]


@pytest.fixture(autouse=True)
def no_container_left(client: Any) -> Iterator[None]:
    yield
    assert _our_containers(client) == [], "a sandbox container was left behind"


def _snapshot(*roots: Path) -> dict[str, tuple[int, int, str]]:
    state: dict[str, tuple[int, int, str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            state[str(path)] = (st.st_mode, st.st_mtime_ns, digest)
    return state


class Watched:
    """Files the test watches: they must be identical after the run."""

    def __init__(self, *roots: Path) -> None:
        self.roots = roots
        self.before = _snapshot(*roots)

    def assert_untouched(self) -> None:
        assert _snapshot(*self.roots) == self.before, "the sandboxed command changed a host file"


@pytest.fixture()
def run(docker_sandbox: Any, code_dir: Path, tmp_path: Path) -> Callable[..., tuple[RunResult, Path]]:
    """Run candidate ``name`` with input files ``inputs``; returns the result and the output folder."""

    def _run(
        name: str,
        inputs: dict[str, str] | None = None,
        *,
        timeout_s: float | None = None,
        sandbox: Any = None,
        watch: tuple[Path, ...] = (),
    ) -> tuple[RunResult, Path]:
        inputs_dir = tmp_path / "inputs"
        inputs_dir.mkdir(exist_ok=True)
        for file_name, text in (inputs or {}).items():
            (inputs_dir / file_name).write_text(text)
        out = tmp_path / "out"
        watched = Watched(CANDIDATES / name, inputs_dir, code_dir, *watch)
        result = (sandbox or docker_sandbox).run(
            CANDIDATES / name, inputs_dir, out, COMMAND, timeout_s=timeout_s
        )
        watched.assert_untouched()
        assert result.message.endswith(".") and "\n" not in result.message
        return result, out

    return _run


def test_trivial_candidate_passes_without_a_code_mount(
    client: Any, config: SandboxConfig, run: Callable[..., tuple[RunResult, Path]]
) -> None:
    from sandbox.docker_sandbox import DockerSandbox

    sandbox = DockerSandbox(config, client=client)
    result, out = run("trivial", {"params.json": '{"rows": 4}'}, sandbox=sandbox)
    assert result.outcome is Outcome.PASSED, result.message
    assert result.exit_code == 0
    assert result.message.startswith("The command exited 0 in ")
    assert result.stdout == "trivial ok\n"
    assert result.stderr == "a line on stderr\n"
    assert result.output_files == ("result.json",)
    assert 0 < result.duration_s < 10
    report = json.loads((out / "result.json").read_text())
    assert report["params"] == {"rows": 4}
    assert report["cwd"] == OUT_MOUNT
    assert report["uid"] == 10001
    assert report["env"] == {
        ENV_CANDIDATE: CANDIDATE_MOUNT,
        ENV_INPUTS: INPUTS_MOUNT,
        ENV_CODE: CODE_MOUNT,
        ENV_OUT: OUT_MOUNT,
    }
    assert report["code_listing"] == []
    assert sandbox.code_dir is None
    assert (out / "result.json").stat().st_uid == out.stat().st_uid, "output not given back to its owner"


NO_CODE_PROBE = """
import json, os
mounted = [line.split()[4] for line in open("/proc/self/mountinfo")]
found = {"listing": os.listdir("/sandbox/code"), "code_env": os.environ.get("SIMCODER_CODE"),
         "mounted": [m for m in mounted if m.startswith("/sandbox")]}
for module in ("reference_sim", "sandbox", "agents", "simcoder_probe_module"):
    try:
        __import__(module)
        found[module] = "imported"
    except ImportError as exc:
        found[module] = type(exc).__name__
print(json.dumps(found))
"""


def test_default_sandbox_sees_no_repository_files(client: Any, config: SandboxConfig, tmp_path: Path) -> None:
    from sandbox.docker_sandbox import RESULT_MOUNT, DockerSandbox

    (tmp_path / "empty").mkdir()
    sandbox = DockerSandbox(config, client=client)
    result = sandbox.run(tmp_path / "empty", tmp_path / "empty", tmp_path / "out", ["python3", "-c", NO_CODE_PROBE])
    assert result.outcome is Outcome.PASSED, result.message
    seen = json.loads(result.stdout)
    assert seen["listing"] == [] and seen["code_env"] == CODE_MOUNT
    assert CODE_MOUNT not in seen["mounted"]
    assert set(seen["mounted"]) == {CANDIDATE_MOUNT, INPUTS_MOUNT, OUT_MOUNT, RESULT_MOUNT}
    for module in ("reference_sim", "sandbox", "agents", "simcoder_probe_module"):
        assert seen[module] == "ModuleNotFoundError", module


def test_an_explicit_code_dir_is_visible_read_only(docker_sandbox: Any, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = docker_sandbox.run(
        tmp_path / "empty", tmp_path / "empty", tmp_path / "out", ["python3", "-c", NO_CODE_PROBE]
    )
    assert result.outcome is Outcome.PASSED, result.message
    seen = json.loads(result.stdout)
    assert seen["listing"] == ["simcoder_probe_module.py"] and CODE_MOUNT in seen["mounted"]
    assert seen["simcoder_probe_module"] == "imported" and seen["reference_sim"] == "ModuleNotFoundError"


@pytest.mark.parametrize("name", ["infinite_loop", "sleeper"])
def test_runaway_candidate_is_timed_out(name: str, run: Callable[..., tuple[RunResult, Path]]) -> None:
    start = time.monotonic()
    result, _ = run(name, timeout_s=SHORT_TIMEOUT_S)
    assert result.outcome is Outcome.TIMED_OUT, result.message
    assert result.exit_code is None
    assert "did not finish within the 3 s wall-clock limit" in result.message
    assert SHORT_TIMEOUT_S <= result.duration_s < SHORT_TIMEOUT_S + 2
    assert time.monotonic() - start < SHORT_TIMEOUT_S + 5


def test_fork_bomb_hits_the_pids_limit_and_times_out(run: Callable[..., tuple[RunResult, Path]]) -> None:
    result, _ = run("fork_bomb", timeout_s=SHORT_TIMEOUT_S)
    assert result.outcome is Outcome.TIMED_OUT, result.message
    assert "fork_refused" in result.stdout, "the pids limit never refused a fork"


def test_memory_bomb_is_out_of_memory(run: Callable[..., tuple[RunResult, Path]]) -> None:
    result, _ = run("memory_bomb")
    assert result.outcome is Outcome.OUT_OF_MEMORY, result.message
    assert result.exit_code == 137
    assert "ran out of memory: the kernel killed it at the 256 MiB cgroup memory limit" in result.message
    assert result.duration_s < 10


class LoopbackServer:
    """A TCP server on 127.0.0.1, on a free port chosen now (never 2024), recording what it receives.

    It stops itself after ``lifetime_s`` at the latest; ``stop()`` ends it at once.
    """

    def __init__(self, lifetime_s: float = 15.0) -> None:
        self.received: list[bytes] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        while self._sock.getsockname()[1] == 2024:
            self._sock.close()
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._sock.listen(4)
        self._sock.settimeout(0.1)
        self._deadline = time.monotonic() + lifetime_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(2)
                    self.received.append(conn.recv(100) or b"<connected>")
        finally:
            self._sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()


def test_network_is_only_loopback_and_host_server_unreachable(
    run: Callable[..., tuple[RunResult, Path]],
) -> None:
    server = LoopbackServer()
    try:
        # The server is reachable from the host, so a failure inside means isolation, not a dead server.
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as probe:
            probe.sendall(b"host-probe")
        deadline = time.monotonic() + 5
        while not server.received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.received == [b"host-probe"]
        result, out = run("network", {"port.txt": str(server.port)})
    finally:
        server.stop()
    assert result.outcome is Outcome.PASSED, result.message
    report = json.loads((out / "net.json").read_text())
    assert report["interfaces"] == ["lo"]
    assert report["connect"].startswith("failed:")
    assert server.received == [b"host-probe"], "the sandbox reached the host's loopback server"


def test_writes_outside_the_output_folder_fail(
    run: Callable[..., tuple[RunResult, Path]], code_dir: Path, tmp_path: Path
) -> None:
    name = f"simcoder-escape-{uuid.uuid4().hex[:8]}.txt"
    result, out = run("write_outside", {"probe_name.txt": name})
    assert result.outcome is Outcome.PASSED, result.message
    report: dict[str, str] = json.loads((out / "report.json").read_text())
    allowed = {f"/tmp/{name}"}
    for path, status in report.items():
        if path in allowed:
            assert status == "written", path
        else:
            assert status.startswith("refused:"), f"{path}: {status}"
    assert len(report) == 8
    for host_path in (
        CANDIDATES / "write_outside" / name,
        code_dir / name,
        Path("/tmp") / name,
        tmp_path / "inputs" / name,
        Path("/") / name,
    ):
        assert not host_path.exists(), f"{host_path} appeared on the host"
    assert result.output_files == ("report.json",)


def test_host_files_outside_the_mounts_are_unreachable(
    run: Callable[..., tuple[RunResult, Path]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret_dir = tmp_path_factory.mktemp("secret")
    token = uuid.uuid4().hex
    secret = secret_dir / "secret.txt"
    secret.write_text(token)
    result, out = run("read_host", {"secret_path.txt": str(secret)}, watch=(secret_dir,))
    assert result.outcome is Outcome.PASSED, result.message
    report = json.loads((out / "report.json").read_text())
    assert report[str(secret)].startswith("refused: FileNotFoundError")
    assert report["/etc/shadow"].startswith("refused: PermissionError")
    assert token not in result.stdout and token not in (out / "report.json").read_text()


def test_stdout_flood_is_cut_and_said(
    run: Callable[..., tuple[RunResult, Path]], config: SandboxConfig
) -> None:
    result, _ = run("stdout_flood")
    assert result.outcome is Outcome.PASSED, result.message
    assert len(result.stdout.encode()) <= config.stream_limit_bytes
    assert result.stdout.startswith("flood flood")
    assert result.stdout.endswith("END OF FLOOD\n")
    assert "bytes cut by the sandbox" in result.stdout
    assert f"stdout was cut to {config.stream_limit_bytes} of " in result.message


def _host_processes_with(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_child_left_running_is_killed(run: Callable[..., tuple[RunResult, Path]]) -> None:
    token = f"simcoder-orphan-{uuid.uuid4().hex}"
    result, out = run("child_left_running", {"token.txt": token})
    assert result.outcome is Outcome.PASSED, result.message
    assert (out / "child_pid.txt").read_text().strip().isdigit()
    assert _host_processes_with(token) == [], "the detached child survived the sandbox"


def test_crash_on_import_is_crashed_with_stderr_tail(run: Callable[..., tuple[RunResult, Path]]) -> None:
    result, _ = run("crash_on_import")
    assert result.outcome is Outcome.CRASHED, result.message
    assert result.exit_code == 1
    assert result.message == (
        "The command crashed with exit code 1: ModuleNotFoundError: No module named "
        "'simcoder_module_that_does_not_exist'."
    )
    assert "Traceback (most recent call last)" in result.stderr


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("one_big", "tried to write a file bigger than the 8 MiB output limit"),
        ("many", "the 8 MiB output limit"),
        ("endless", "the 8 MiB output limit"),
    ],
)
def test_huge_output_is_bad_output(
    mode: str, expected: str, run: Callable[..., tuple[RunResult, Path]], config: SandboxConfig
) -> None:
    result, out = run("huge_output", {"mode.txt": mode})
    assert result.outcome is Outcome.BAD_OUTPUT, result.message
    assert expected in result.message
    on_disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    if mode == "one_big":
        assert on_disk == config.output_limit_bytes, "RLIMIT_FSIZE did not stop the file at the limit"
    if mode in ("many", "endless"):
        assert result.duration_s < 5, "the run was not stopped"
        # The command writes to a tmpfs one MiB larger than the limit (the kernel refuses more), which is
        # copied out at the end; the host's watcher and final scan then flag the excess.
        assert on_disk <= config.output_limit_bytes + (1 << 20), f"{on_disk} bytes reached the host"


@pytest.mark.parametrize(
    ("mode", "outcome", "expected"),
    [
        ("garbage", Outcome.PASSED, "with 1 output file"),
        ("symlink", Outcome.BAD_OUTPUT, "contains a symbolic link 'result.json'"),
        ("fifo", Outcome.BAD_OUTPUT, "contains a special file 'result.json'"),
    ],
)
def test_malformed_output(
    mode: str, outcome: Outcome, expected: str, run: Callable[..., tuple[RunResult, Path]]
) -> None:
    result, _ = run("malformed_output", {"mode.txt": mode})
    assert result.outcome is outcome, result.message
    assert expected in result.message


def test_limits_enforced_by_engine_and_inside(
    run: Callable[..., tuple[RunResult, Path]], config: SandboxConfig
) -> None:
    """Which mechanism holds each limit on this engine (see docs/sandbox.md)."""
    result, out = run("probe_limits")
    assert result.outcome is Outcome.PASSED, result.message
    seen = json.loads((out / "limits.json").read_text())
    # Engine: credentials and privileges.
    assert (seen["uid"], seen["gid"]) == (10001, 10001)
    assert int(seen["cap_eff"], 16) == 0 and int(seen["cap_bnd"], 16) == 0
    assert seen["no_new_privs"] == "1"
    assert seen["seccomp"] == "2"
    assert seen["pid1"].startswith("/sbin/docker-init")
    # Engine: cgroups (v1 here; v2 files are read too so the test also holds on a v2 host).
    memory = seen["memory_limit"] if seen["memory_limit"].isdigit() else seen["memory_max_v2"]
    assert int(memory) == config.memory_bytes
    if seen["memsw_limit"].isdigit():
        assert int(seen["memsw_limit"]) == config.memory_bytes, "swap is not disabled"
    pids = seen["pids_max"] if seen["pids_max"].isdigit() else seen["pids_max_v2"]
    assert int(pids) == config.pids_limit
    quota, period = (
        (int(seen["cpu_quota"]), int(seen["cpu_period"]))
        if seen["cpu_quota"].lstrip("-").isdigit()
        else map(int, seen["cpu_max_v2"].split())
    )
    assert quota / period == pytest.approx(config.cpus)
    # Engine: network and file system.
    assert seen["interfaces"] == ["lo"]
    assert "ro" in seen["mounts"]["/"]["options"]
    assert seen["mounts"]["/tmp"]["type"] == "tmpfs"
    assert {"noexec", "nosuid", f"size={config.tmpfs_mib * 1024}k"} <= set(seen["mounts"]["/tmp"]["options"])
    for mount in (CANDIDATE_MOUNT, INPUTS_MOUNT, CODE_MOUNT):
        assert "ro" in seen["mounts"][mount]["options"], mount
    assert "rw" in seen["mounts"][OUT_MOUNT]["options"]
    # Inside, set by us: per-file size cap (the bind-mounted output folder has no quota), no core dumps.
    assert seen["rlimit_fsize"] == config.output_limit_bytes
    assert seen["rlimit_core"] == 0
    assert seen["rlimit_as"] == -1, "memory is held by the cgroup, not RLIMIT_AS"
    assert seen["numpy"]


def _stale_labels(owner: str) -> dict[str, str]:
    """Labels of a container whose creating process on this host is dead and whose deadline passed."""
    from sandbox.docker_sandbox import LABEL, LABEL_DEADLINE, LABEL_OWNER, LABEL_PROCESS

    return {
        LABEL: "1",
        LABEL_OWNER: owner,
        LABEL_PROCESS: f"{socket.gethostname()}:999999999:1",
        LABEL_DEADLINE: f"{time.time() - 3600:.0f}",
    }


def _remove_quietly(client: Any, *names: str) -> None:
    from docker.errors import NotFound

    for name in names:
        with contextlib.suppress(NotFound):
            client.containers.get(name).remove(force=True, v=True)


def test_stale_containers_of_this_owner_are_removed_at_construction(
    client: Any, config: SandboxConfig, code_dir: Path
) -> None:
    from sandbox.docker_sandbox import DockerSandbox

    owner = f"simcoder-test-{uuid.uuid4().hex[:8]}"
    name = f"{PREFIX}stale"
    try:
        client.containers.run(
            config.image, ["sleep", "600"], name=name, detach=True, network_mode="none", labels=_stale_labels(owner)
        )
        assert _our_containers(client) == [name]
        DockerSandbox(config.model_copy(update={"owner": owner, "cleanup_stale": False}), code_dir, client=client)
        assert _our_containers(client) == [name], "cleanup_stale=False still removed a container"
        DockerSandbox(config.model_copy(update={"owner": owner}), code_dir, client=client)
        assert _our_containers(client) == []
    finally:
        _remove_quietly(client, name)


def test_stale_containers_of_another_owner_survive(client: Any, config: SandboxConfig, code_dir: Path) -> None:
    from sandbox.docker_sandbox import LABEL_OWNER, DockerSandbox, default_owner

    others = {
        f"{PREFIX}other-owner": f"simcoder-test-other-{uuid.uuid4().hex[:8]}",
        f"{PREFIX}other-user": f"uid{os.getuid() + 4242}@{socket.gethostname()}",
    }
    try:
        for name, owner in others.items():
            client.containers.create(
                config.image, ["sleep", "600"], name=name, network_mode="none", labels=_stale_labels(owner)
            )
        sandbox = DockerSandbox(config, code_dir, client=client)
        assert sandbox.owner == default_owner()
        assert sandbox.cleanup_stale() == 0
        assert sorted(_our_containers(client)) == sorted(others)
        labels = {c.name: c.labels[LABEL_OWNER] for c in client.containers.list(all=True, filters={"name": PREFIX})}
        assert labels == others
    finally:
        _remove_quietly(client, *others)


def test_missing_image_says_how_to_build(client: Any, config: SandboxConfig, code_dir: Path) -> None:
    from sandbox.docker_sandbox import DockerSandbox

    with pytest.raises(ImageMissing, match=r"provision-docker\.sh") as caught:
        DockerSandbox(
            config.model_copy(update={"image": "simcoder-no-such-image:never"}), code_dir, client=client
        )
    assert "\n" not in str(caught.value)


class Killer:
    """Kills (``docker kill``, SIGKILL) the first ``times`` sandbox containers it sees, from outside."""

    def __init__(self, client: Any, times: int) -> None:
        self.client = client
        self.times = times
        self.killed: list[str] = []
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            for container in self.client.containers.list(filters={"name": PREFIX, "status": "running"}):
                if container.id in self.seen:
                    continue
                self.seen.add(container.id)
                if len(self.killed) < self.times:
                    time.sleep(0.5)
                    with contextlib.suppress(Exception):
                        container.kill()
                        self.killed.append(container.id)
            time.sleep(0.05)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_a_container_killed_from_outside_is_run_again_not_blamed(
        client: Any, run: Callable[..., tuple[RunResult, Path]]) -> None:
    with Killer(client, times=1) as killer:
        result, _ = run("sleeper", timeout_s=SHORT_TIMEOUT_S)
    assert len(killer.killed) == 1 and len(killer.seen) == 2, "killed once, then run once more"
    assert result.outcome is Outcome.TIMED_OUT, result.message


def test_a_container_killed_from_outside_twice_is_an_infrastructure_error(
        client: Any, run: Callable[..., tuple[RunResult, Path]]) -> None:
    from sandbox.base import SandboxError

    with Killer(client, times=2) as killer, pytest.raises(SandboxError, match="killed from outside 2 times"):
        run("sleeper", timeout_s=20)
    assert len(killer.killed) == 2
