"""Runs a command in a throw-away, locked-down Docker container (the sandbox used in CI and by default).

Limits enforced by the engine (measured in docs/sandbox.md): no network (only ``lo``), read-only root,
tmpfs ``/tmp``, uid 10001, no capabilities, no-new-privileges, memory without swap (OOM kill reported
as ``State.OOMKilled``), pids cgroup, CFS CPU quota.  The host adds the wall-clock timeout, bounded
stdout/stderr, the output-folder size watch, and always removes the container.  Only the candidate,
its inputs and the output folder are mounted; code (``CODE_MOUNT``) only when a ``code_dir`` is given.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Mount, Ulimit

from sandbox._common import (
    OutputWatcher,
    RunFacts,
    StreamCapture,
    classify,
    prepare_dirs,
    resolve_timeout,
    sandbox_env,
    scan_output,
    sentence,
    stream_notes,
)
from sandbox.base import (
    BUILD_HINT,
    CANDIDATE_MOUNT,
    CODE_MOUNT,
    INPUTS_MOUNT,
    OUT_MOUNT,
    EngineUnavailable,
    ImageMissing,
    RunResult,
    SandboxError,
)
from sandbox.config import SandboxConfig

logger = logging.getLogger(__name__)

SANDBOX_UID = 10001
RESULT_MOUNT = "/sandbox/result"
"""Where the host's output folder is mounted; the command writes to a size-limited tmpfs at ``OUT_MOUNT``
that is copied here when the command ends, so the kernel enforces the total output size."""
LABEL = "simcoder.sandbox"
LABEL_OWNER = "simcoder.sandbox.owner"
"""The owner identity (``DockerSandbox.owner``); only containers with ours are ever cleaned up."""
LABEL_PROCESS = "simcoder.sandbox.process"
"""``<hostname>:<pid>:<start ticks>`` of the process that created the container."""
LABEL_DEADLINE = "simcoder.sandbox.deadline"
API_TIMEOUT_S = 30.0
BACKSTOP_GRACE_S = 5.0
STALE_GRACE_S = 60.0

_active_lock = threading.Lock()
_active_ids: set[str] = set()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _process_start(pid: int) -> str:
    """Start time of ``pid`` in clock ticks (tells a live owner from a reused pid); '' if unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def default_owner() -> str:
    """The owner identity when ``SandboxConfig.owner`` is not set: ``uid<uid>@<hostname>``."""
    return f"uid{os.getuid()}@{socket.gethostname()}"


def _process_token() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def _process_alive(token: str) -> bool:
    """False only when ``token`` names a process on this host that has ended; unknown counts as alive."""
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _process_start(pid) in ("", start)


def connect(timeout_s: float = API_TIMEOUT_S) -> Any:
    """A docker SDK client that answered a ping, or ``EngineUnavailable`` with a one-line reason."""
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except (DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineUnavailable(
            f"No Docker engine is reachable ({_one_line(exc)}); start one with bash .ci/provision-docker.sh "
            "or use the process sandbox"
        ) from exc
    return client


class _OutputPermissions:
    """Lets the container's uid write the output folder during the run, then gives everything back.

    The folder is made world-writable for the run.  When we are root, whatever it already holds is
    lent to the container's uid for the run, and afterwards everything is chowned to the folder's
    owner.  A non-root host user cannot chown, so the container then runs with umask 0: its files stay
    writable and removable by that user (files the user put there beforehand stay read-only to it).
    """

    def __init__(self, folder: Path, sandbox_uid: int) -> None:
        self.folder = folder
        st = folder.stat()
        self._mode = st.st_mode & 0o7777
        self._uid = st.st_uid
        self._gid = st.st_gid
        self._sandbox_uid = sandbox_uid
        self.is_root = os.geteuid() == 0

    def __enter__(self) -> _OutputPermissions:
        os.chmod(self.folder, 0o777)
        if self.is_root:
            self._chown_all(self._sandbox_uid, self._sandbox_uid)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.is_root:
            self._chown_all(self._uid, self._gid)
        try:
            os.chmod(self.folder, self._mode)
        except OSError as err:
            logger.warning("could not restore the mode of %s: %s", self.folder, err)

    def _chown_all(self, uid: int, gid: int) -> None:
        for path in self._walk():
            try:
                os.lchown(path, uid, gid)
            except OSError as err:
                logger.warning("could not chown %s to uid %d: %s", path, uid, err)

    def _walk(self) -> Iterator[str]:
        for top, dirs, files in os.walk(self.folder):
            for name in dirs + files:
                yield os.path.join(top, name)


EXTERNAL_KILL_RETRIES = 1
"""Runs repeated when the container was killed from outside (not the candidate's fault)."""


def killed_from_outside(facts: RunFacts) -> bool:
    """SIGKILL that neither the kernel's memory limit (Docker reports ``State.OOMKilled``), the timeout nor the
    output watcher sent: ``docker kill``, the engine or the machine."""
    return (facts.exit_code == 128 + signal.SIGKILL and not facts.oom_killed and not facts.timed_out
            and facts.output_violation is None)


def _empty(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class DockerSandbox:
    """Docker-backed :class:`sandbox.base.Sandbox`.

    ``code_dir``, when given, is mounted read-only at ``CODE_MOUNT``; by default nothing is mounted
    there (the image's folder is empty).  ``client`` may be an existing docker SDK client (tests inject
    fakes); by default one is created from the environment (``DOCKER_HOST`` etc.).  Construction checks
    the engine and the image and, unless ``config.cleanup_stale`` is off, removes this owner's
    containers left behind by crashed earlier runs.
    """

    name = "docker"

    def __init__(
        self, config: SandboxConfig | None = None, code_dir: Path | None = None, *, client: Any = None
    ) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.code_dir = Path(code_dir).resolve() if code_dir is not None else None
        if self.code_dir is not None and not self.code_dir.is_dir():
            raise NotADirectoryError(f"code_dir {self.code_dir} is not a folder")
        self.owner = self.config.owner or default_owner()
        self._client = client if client is not None else connect()
        self._check_image()
        self._engine_cpus = self._read_engine_cpus()
        if self.config.cleanup_stale:
            self.cleanup_stale()

    def _check_image(self) -> None:
        try:
            self._client.images.get(self.config.image)
        except ImageNotFound as exc:
            raise ImageMissing(
                f"Docker image {self.config.image!r} is not built; build it with {BUILD_HINT}"
            ) from exc
        except (APIError, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(f"The Docker engine did not answer ({_one_line(exc)})") from exc

    def _read_engine_cpus(self) -> int:
        try:
            return int(self._client.info().get("NCPU") or os.cpu_count() or 1)
        except (APIError, requests.exceptions.RequestException, TypeError, ValueError):
            return os.cpu_count() or 1

    def cleanup_stale(self) -> int:
        """Remove this owner's stale containers; returns how many.

        A container is removed only when its owner label is ``self.owner`` and it is stale: the
        process that created it (on this host) has ended, or its deadline passed more than
        ``STALE_GRACE_S`` ago.  Containers of other owners, and runs of this process, are never touched.
        """
        removed = 0
        try:
            containers = self._client.containers.list(
                all=True, filters={"label": [LABEL, f"{LABEL_OWNER}={self.owner}"]}
            )
        except (APIError, requests.exceptions.RequestException) as exc:
            logger.warning("could not list stale sandbox containers: %s", _one_line(exc))
            return 0
        now = time.time()
        for container in containers:
            with _active_lock:
                if container.id in _active_ids:
                    continue
            labels: dict[str, str] = container.labels or {}
            if labels.get(LABEL) != "1" or labels.get(LABEL_OWNER) != self.owner:
                continue
            try:
                deadline = float(labels.get(LABEL_DEADLINE, "0"))
            except ValueError:
                deadline = 0.0
            process = labels.get(LABEL_PROCESS, "")
            if not _process_alive(process) or now > deadline + STALE_GRACE_S:
                logger.warning(
                    "removing stale sandbox container %s (owner %s, process %s)",
                    container.name,
                    self.owner,
                    process or "?",
                )
                if self._remove(container):
                    removed += 1
        return removed

    def run(
        self,
        candidate_dir: Path,
        inputs_dir: Path,
        output_dir: Path,
        command: Sequence[str],
        *,
        timeout_s: float | None = None,
    ) -> RunResult:
        cfg = self.config
        timeout = resolve_timeout(cfg, timeout_s)
        candidate, inputs, out = prepare_dirs(candidate_dir, inputs_dir, output_dir, command)
        for attempt in range(1 + EXTERNAL_KILL_RETRIES):
            stdout = StreamCapture(cfg.stream_limit_bytes)
            stderr = StreamCapture(cfg.stream_limit_bytes)
            with _OutputPermissions(out, SANDBOX_UID) as perms:
                container = self._create(candidate, inputs, out, list(command), timeout, perms.is_root)
                try:
                    facts = self._execute(container, out, timeout, stdout, stderr)
                finally:
                    self._remove(container)
                    with _active_lock:
                        _active_ids.discard(container.id)
            if not killed_from_outside(facts):
                break
            if attempt == EXTERNAL_KILL_RETRIES:
                raise SandboxError(f"the sandbox container was killed from outside {attempt + 1} times (SIGKILL, "
                                   "not by its memory limit): an infrastructure failure, not the candidate's")
            logger.warning("the sandbox container was killed from outside (SIGKILL, not by its memory limit); "
                           "running it once more")
            _empty(out)
        scan = scan_output(out, cfg.output_limit_bytes, cfg.max_output_files)
        outcome, base = classify(facts, scan, cfg)
        out_text, _ = stdout.render()
        err_text, _ = stderr.render()
        notes = stream_notes(
            [
                ("stdout", cfg.stream_limit_bytes, stdout.total_bytes),
                ("stderr", cfg.stream_limit_bytes, stderr.total_bytes),
            ]
        )
        killed = facts.timed_out or facts.output_violation is not None
        result = RunResult(
            outcome=outcome,
            exit_code=None if killed else facts.exit_code,
            stdout=out_text,
            stderr=err_text,
            duration_s=facts.duration_s,
            output_dir=out,
            output_files=scan.files,
            message=sentence(base, notes),
        )
        logger.info("docker sandbox: %s: %s", result.outcome.value, result.message)
        return result

    def _create(
        self, candidate: Path, inputs: Path, out: Path, command: list[str], timeout: float, host_is_root: bool
    ) -> Any:
        cfg = self.config
        name = f"{cfg.name_prefix}{uuid.uuid4().hex[:12]}"
        umask = "0022" if host_is_root else "0000"
        backstop = math.ceil(timeout + BACKSTOP_GRACE_S)
        script = (
            f'umask {umask} && timeout -s KILL {backstop} "$@"; rc=$?; '
            f'cp -R {OUT_MOUNT}/. {RESULT_MOUNT}/ || {{ [ "$rc" -eq 0 ] && rc=74; }}; exit "$rc"'
        )
        entry = ["/bin/sh", "-c", script, "simcoder-sandbox", *command]
        cpus = min(cfg.cpus, float(self._engine_cpus))
        if cpus < cfg.cpus:
            logger.warning(
                "cpus=%g exceeds the engine's %d CPUs; using %g", cfg.cpus, self._engine_cpus, cpus
            )
        fsize = cfg.output_limit_bytes
        mounts = [
            Mount(CANDIDATE_MOUNT, str(candidate), type="bind", read_only=True),
            Mount(INPUTS_MOUNT, str(inputs), type="bind", read_only=True),
            Mount(RESULT_MOUNT, str(out), type="bind", read_only=False),
        ]
        if self.code_dir is not None:
            mounts.append(Mount(CODE_MOUNT, str(self.code_dir), type="bind", read_only=True))
        staging_mib = cfg.output_limit_mib + 1
        labels = {
            LABEL: "1",
            LABEL_OWNER: self.owner,
            LABEL_PROCESS: _process_token(),
            LABEL_DEADLINE: f"{time.time() + timeout + BACKSTOP_GRACE_S:.0f}",
        }
        try:
            container = self._client.containers.create(
                cfg.image,
                entry,
                name=name,
                labels=labels,
                hostname="sandbox",
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                working_dir=OUT_MOUNT,
                environment={
                    **sandbox_env(CANDIDATE_MOUNT, INPUTS_MOUNT, CODE_MOUNT, OUT_MOUNT, cpus),
                    "HOME": "/tmp",
                    "TMPDIR": "/tmp",
                },
                mounts=mounts,
                network_mode="none",
                read_only=True,
                tmpfs={
                    "/tmp": f"rw,noexec,nosuid,nodev,size={cfg.tmpfs_mib}m",
                    OUT_MOUNT: f"rw,noexec,nosuid,nodev,size={staging_mib}m,uid={SANDBOX_UID},gid={SANDBOX_UID},"
                    "mode=0755",
                },
                shm_size=f"{cfg.tmpfs_mib}m",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                init=True,
                mem_limit=f"{cfg.memory_mib}m",
                memswap_limit=f"{cfg.memory_mib}m",
                pids_limit=cfg.pids_limit,
                nano_cpus=max(int(cpus * 1e9), 10_000_000),
                ulimits=[Ulimit(name="fsize", soft=fsize, hard=fsize), Ulimit(name="core", soft=0, hard=0)],
                oom_score_adj=500,
                log_config=LogConfig(type="none"),
                stdin_open=False,
                tty=False,
            )
        except ImageNotFound as exc:
            raise ImageMissing(
                f"Docker image {cfg.image!r} is not built; build it with {BUILD_HINT}"
            ) from exc
        except (APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker could not create the sandbox container: {_one_line(exc)}") from exc
        with _active_lock:
            _active_ids.add(container.id)
        return container

    def _execute(
        self, container: Any, out: Path, timeout: float, stdout: StreamCapture, stderr: StreamCapture
    ) -> RunFacts:
        try:
            frames = self._client.api.attach(
                container.id, stdout=True, stderr=True, stream=True, logs=False, demux=True
            )
        except (APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker could not attach to the sandbox container: {_one_line(exc)}") from exc
        reader = threading.Thread(
            target=_read_frames, args=(frames, stdout, stderr), name="sandbox-attach", daemon=True
        )
        reader.start()
        watcher = OutputWatcher(out, self.config, lambda: self._kill(container))
        start = time.monotonic()
        try:
            container.start()
        except (APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker could not start the sandbox container: {_one_line(exc)}") from exc
        watcher.start()
        try:
            exit_code = self._wait(container, timeout, start)
            timed_out = exit_code is None
            if timed_out:
                self._kill(container)
                exit_code = self._wait(container, API_TIMEOUT_S, time.monotonic())
            duration = time.monotonic() - start
        finally:
            watcher.stop()
        reader.join(timeout=5)
        try:
            container.reload()
            oom_killed = bool(container.attrs["State"].get("OOMKilled"))
        except (APIError, requests.exceptions.RequestException, KeyError) as exc:
            logger.warning("could not inspect %s after the run: %s", container.name, _one_line(exc))
            oom_killed = False
        err_text, _ = stderr.render()
        return RunFacts(
            exit_code=exit_code,
            timed_out=timed_out,
            timeout_s=timeout,
            duration_s=duration,
            output_violation=watcher.violation,
            oom_killed=oom_killed,
            stderr=err_text,
            memory_mechanism="cgroup memory limit",
        )

    def _wait(self, container: Any, timeout: float, start: float) -> int | None:
        """Exit code, or ``None`` when ``timeout`` seconds since ``start`` passed first."""
        remaining = max(timeout - (time.monotonic() - start), 0.01)
        try:
            result = container.wait(timeout=remaining)
        except requests.exceptions.RequestException as exc:
            if time.monotonic() - start + 0.5 < timeout:
                raise SandboxError(f"Lost the Docker engine while waiting: {_one_line(exc)}") from exc
            return None
        return int(cast(dict[str, Any], result)["StatusCode"])

    def _kill(self, container: Any) -> None:
        try:
            container.kill()
        except (APIError, requests.exceptions.RequestException) as exc:
            logger.debug("kill %s: %s", container.name, _one_line(exc))

    def _remove(self, container: Any) -> bool:
        for attempt in range(3):
            try:
                container.remove(force=True, v=True)
                return True
            except NotFound:
                return True
            except (APIError, requests.exceptions.RequestException) as exc:
                logger.warning(
                    "removing %s failed (attempt %d): %s", container.name, attempt + 1, _one_line(exc)
                )
                time.sleep(0.2 * (attempt + 1))
        logger.error("sandbox container %s was not removed; cleanup_stale() will retry", container.name)
        return False


def _read_frames(frames: Any, stdout: StreamCapture, stderr: StreamCapture) -> None:
    try:
        for out_chunk, err_chunk in frames:
            if out_chunk:
                stdout.feed(out_chunk)
            if err_chunk:
                stderr.feed(err_chunk)
    except (OSError, ValueError, requests.exceptions.RequestException, DockerException) as exc:
        logger.debug("attach stream ended: %s", _one_line(exc))
