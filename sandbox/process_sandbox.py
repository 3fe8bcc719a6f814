"""Runs a command as a plain subprocess with resource limits.  This is NOT isolation.

Use it only when asked for, or when no Docker engine is reachable.  The command runs as the calling
user with full network and file-system access.  It is bounded by: RLIMIT_AS (memory), RLIMIT_FSIZE
(per-file output size), RLIMIT_CPU (a CPU-time backstop), RLIMIT_NPROC (only for a non-root user,
set to what the user already runs plus ``pids_limit``; the kernel ignores it for root), a wall-clock
timeout that kills the whole process group, and the same output-folder checks as Docker.  A process
that calls setsid() leaves the group and survives the kill.

A command whose program is ``python3`` or ``python`` runs the interpreter running this process
(``sys.executable``), not whatever comes first on ``PATH``.  Without a ``code_dir`` the code folder is
an empty, read-only folder made for the run (the candidate can still import whatever that
interpreter has installed: this is not isolation).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sandbox._common import (
    OutputWatcher,
    RunFacts,
    StreamCapture,
    classify,
    prepare_dirs,
    pump,
    resolve_timeout,
    sandbox_env,
    scan_output,
    sentence,
    stream_notes,
)
from sandbox.base import (
    CANDIDATE_MOUNT,
    CODE_MOUNT,
    INPUTS_MOUNT,
    OUT_MOUNT,
    Outcome,
    RunResult,
)
from sandbox.config import SandboxConfig

logger = logging.getLogger(__name__)

NOT_ISOLATION_WARNING = (
    "ProcessSandbox is NOT isolation: candidates run as %s with the host's network and files, bounded "
    "only by rlimits and a timeout; use the Docker sandbox for untrusted code"
)

Limit = tuple[int, int, int]
PYTHON_NAMES = ("python3", "python")
"""Programs replaced by ``sys.executable`` when they are a command's first argument."""


def _apply_limits(limits: Sequence[Limit]) -> None:
    """Runs in the child between fork and exec: only async-signal-safe-ish C calls, no imports, no locks."""
    for which, soft, hard in limits:
        resource.setrlimit(which, (soft, hard))


def _clamp(which: int, wanted: int) -> Limit:
    _, hard = resource.getrlimit(which)
    value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    return which, value, value


def _tasks_of_user(uid: int) -> int:
    """Threads the real ``uid`` runs now (RLIMIT_NPROC counts threads of the real uid, host-wide)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def _wait_exit(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """True once ``proc`` exited (left unreaped, so its process group id stays valid), False at deadline."""
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(proc.pid)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0.0))
                return bool(ready)
            finally:
                os.close(fd)
    while True:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class ProcessSandbox:
    """Subprocess-backed :class:`sandbox.base.Sandbox`; same env vars as Docker, pointing at host folders.

    Arguments of ``command`` that start with a Docker mount path (``/sandbox/candidate`` ...) are
    rewritten to the matching host folder, so one command works in both sandboxes, and a first
    argument ``python3``/``python`` becomes ``sys.executable``.  ``code_dir`` is the folder behind
    ``CODE_MOUNT``; without one, each run gets an empty read-only folder there.
    """

    name = "process"

    def __init__(self, config: SandboxConfig | None = None, code_dir: Path | None = None) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.code_dir = Path(code_dir).resolve() if code_dir is not None else None
        if self.code_dir is not None and not self.code_dir.is_dir():
            raise NotADirectoryError(f"code_dir {self.code_dir} is not a folder")
        user = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        logger.warning(NOT_ISOLATION_WARNING, user)

    def _limits(self, timeout: float) -> list[Limit]:
        cfg = self.config
        cpu_s = math.ceil(timeout * max(cfg.cpus, 1.0)) + 1
        limits = [
            _clamp(resource.RLIMIT_AS, cfg.memory_bytes),
            _clamp(resource.RLIMIT_FSIZE, cfg.output_limit_bytes),
            _clamp(resource.RLIMIT_CPU, cpu_s),
            _clamp(resource.RLIMIT_CORE, 0),
        ]
        if os.geteuid() != 0:
            limits.append(_clamp(resource.RLIMIT_NPROC, _tasks_of_user(os.getuid()) + cfg.pids_limit))
        return limits

    def _translate(self, command: Sequence[str], paths: dict[str, Path]) -> list[str]:
        argv = []
        if command and command[0] in PYTHON_NAMES and sys.executable:
            argv.append(sys.executable)
            command = command[1:]
        for arg in command:
            for mount, host in paths.items():
                if arg == mount or arg.startswith(mount + "/"):
                    arg = str(host) + arg[len(mount) :]
                    break
            argv.append(arg)
        return argv

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
        tmp = Path(tempfile.mkdtemp(prefix="simcoder-proc-"))
        home = tmp / "home"
        home.mkdir()
        code = self.code_dir
        if code is None:
            code = tmp / "code"
            code.mkdir(mode=0o555)
        paths = {CANDIDATE_MOUNT: candidate, INPUTS_MOUNT: inputs, CODE_MOUNT: code, OUT_MOUNT: out}
        argv = self._translate(command, paths)
        env = sandbox_env(str(candidate), str(inputs), str(code), str(out), cfg.cpus)
        host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(PATH=host_path, HOME=str(home), TMPDIR=str(home))
        stdout = StreamCapture(cfg.stream_limit_bytes)
        stderr = StreamCapture(cfg.stream_limit_bytes)
        try:
            facts = self._execute(argv, out, env, timeout, stdout, stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if facts is None:
            return RunResult(
                Outcome.CRASHED,
                127,
                "",
                "",
                0.0,
                out,
                (),
                f"The command {argv[0]!r} could not be started (not found or not executable).",
            )
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
        logger.info("process sandbox: %s: %s", result.outcome.value, result.message)
        return result

    def _execute(
        self,
        argv: list[str],
        out: Path,
        env: dict[str, str],
        timeout: float,
        stdout: StreamCapture,
        stderr: StreamCapture,
    ) -> RunFacts | None:
        limits = self._limits(timeout)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=out,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                preexec_fn=lambda: _apply_limits(limits),
            )
        except (FileNotFoundError, PermissionError) as exc:
            logger.info("could not start %s: %s", argv[0], exc)
            return None
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(target=pump, args=(proc.stdout, stdout), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, stderr), daemon=True),
        ]
        for reader in readers:
            reader.start()
        pgid = proc.pid
        watcher = OutputWatcher(out, self.config, lambda: _kill_group(pgid))
        watcher.start()
        try:
            exited = _wait_exit(proc, start + timeout)
            duration = time.monotonic() - start
        finally:
            watcher.stop()
            _kill_group(pgid)
            returncode = proc.wait()
        for reader, pipe in zip(readers, (proc.stdout, proc.stderr), strict=True):
            reader.join(timeout=2)
            if reader.is_alive():
                logger.warning("a process that left the group still holds the output pipes; not waiting")
            else:
                pipe.close()
        exit_code = 128 - returncode if returncode < 0 else returncode
        err_text, _ = stderr.render()
        return RunFacts(
            exit_code=exit_code,
            timed_out=not exited,
            timeout_s=timeout,
            duration_s=duration,
            output_violation=watcher.violation,
            oom_killed=False,
            stderr=err_text,
            memory_mechanism="address-space limit (RLIMIT_AS)",
        )
