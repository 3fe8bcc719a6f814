"""Pieces shared by the Docker and process sandboxes: bounded capture, output checks, classification."""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sandbox.base import ENV_CANDIDATE, ENV_CODE, ENV_INPUTS, ENV_OUT, Outcome
from sandbox.config import SandboxConfig

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
_LAST_LINE_CHARS = 200
_MEMORY_ERROR_RE = re.compile(r"^[\w.]*MemoryError\b")
_FILE_TOO_LARGE = "[Errno 27] File too large"
_NO_SPACE = "[Errno 28] No space left on device"


class StreamCapture:
    """Keeps the first third and the last two thirds of a byte stream within ``limit_bytes``.

    Memory stays bounded (about twice the limit) however much is fed; ``total_bytes`` counts it all.
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.total_bytes = 0
        self._head = bytearray()
        self._tail = bytearray()
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        with self._lock:
            self.total_bytes += len(data)
            room = self.limit_bytes - len(self._head)
            if room > 0:
                self._head += data[:room]
                data = data[room:]
            if data:
                self._tail += data
                if len(self._tail) > 2 * self.limit_bytes:
                    del self._tail[: len(self._tail) - self.limit_bytes]

    def render(self) -> tuple[str, int]:
        """The kept text (at most ``limit_bytes`` bytes before decoding) and how many bytes were cut."""
        with self._lock:
            if self.total_bytes <= self.limit_bytes:
                return (bytes(self._head) + bytes(self._tail)).decode("utf-8", errors="replace"), 0
            data = bytes(self._head) + bytes(self._tail[-self.limit_bytes :])
            total = self.total_bytes
        marker_room = len(_cut_marker(total))
        budget = max(self.limit_bytes - marker_room, 0)
        head_n = budget // 3
        tail_n = budget - head_n
        cut = total - head_n - tail_n
        head = data[:head_n].decode("utf-8", errors="replace")
        tail = data[len(data) - tail_n :].decode("utf-8", errors="replace") if tail_n else ""
        return head + _cut_marker(cut) + tail, cut


def _cut_marker(cut: int) -> str:
    return f"\n[... {cut} bytes cut by the sandbox ...]\n"


def pump(stream: IO[bytes], capture: StreamCapture) -> None:
    """Copy ``stream`` into ``capture`` until EOF (run in a thread)."""
    try:
        fd = stream.fileno()
        while chunk := os.read(fd, 65536):
            capture.feed(chunk)
    except (OSError, ValueError) as exc:
        logger.debug("stream reader stopped: %s", exc)


@dataclass(frozen=True)
class OutputScan:
    """What the output folder holds; ``problem`` names the first reason it is not acceptable."""

    files: tuple[str, ...]
    total_bytes: int
    entries: int
    problem: str | None


def scan_output(root: Path, limit_bytes: int, max_entries: int, *, size_only: bool = False) -> OutputScan:
    """Walk ``root`` without following links.  Rejects symlinks, special files, set-id bits, too much.

    With ``size_only`` only the size and entry-count limits are checked (used while the command runs).
    """
    files: list[str] = []
    total = 0
    entries = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError as exc:
            if size_only:
                continue
            problem = f"the folder {_rel(folder, root)!r} cannot be read ({exc.strerror})"
            return OutputScan(tuple(sorted(files)), total, entries, problem)
        for entry in children:
            entries += 1
            if entries > max_entries:
                return OutputScan(
                    tuple(sorted(files)), total, entries, f"it holds more than {max_entries} entries"
                )
            rel = _rel(Path(entry.path), root)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(st.st_mode):
                total += st.st_size
                files.append(rel)
                if total > limit_bytes:
                    return OutputScan(
                        tuple(sorted(files)),
                        total,
                        entries,
                        f"it holds more than the {limit_bytes / MIB:g} MiB output limit",
                    )
            if size_only:
                continue
            if stat.S_ISLNK(st.st_mode):
                return OutputScan(
                    tuple(sorted(files)),
                    total,
                    entries,
                    f"it contains a symbolic link {rel!r} (links are not allowed)",
                )
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                return OutputScan(
                    tuple(sorted(files)),
                    total,
                    entries,
                    f"it contains a special file {rel!r} (only regular files and folders)",
                )
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                return OutputScan(
                    tuple(sorted(files)), total, entries, f"{rel!r} has a set-user/group-id bit"
                )
    return OutputScan(tuple(sorted(files)), total, entries, None)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."


class OutputWatcher:
    """Polls the output folder while the command runs and calls ``on_violation`` once if it grows too big.

    The host disk is only protected by this (and RLIMIT_FSIZE per file): a bind mount has no quota, so
    a fast writer overshoots by what it writes in one poll.  Polls every ``interval_s``, or less often
    when the folder is big, so that scanning takes at most a fifth of one core.
    """

    def __init__(
        self, root: Path, config: SandboxConfig, on_violation: Callable[[], None], interval_s: float = 0.05
    ) -> None:
        self._root = root
        self._config = config
        self._on_violation = on_violation
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-output-watcher", daemon=True)
        self.violation: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        pause = self._interval_s
        while not self._stop.wait(pause):
            started = time.monotonic()
            scan = scan_output(
                self._root, self._config.output_limit_bytes, self._config.max_output_files, size_only=True
            )
            pause = max(self._interval_s, 4 * (time.monotonic() - started))
            if scan.problem is not None:
                self.violation = scan.problem
                logger.info("output folder %s: %s; killing the command", self._root, scan.problem)
                self._on_violation()
                return


def resolve_timeout(config: SandboxConfig, timeout_s: float | None) -> float:
    timeout = config.timeout_s if timeout_s is None else timeout_s
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout)


def prepare_dirs(
    candidate_dir: Path, inputs_dir: Path, output_dir: Path, command: Sequence[str]
) -> tuple[Path, Path, Path]:
    """Resolve the folders (the output folder is created) and check the command is a list of strings."""
    if isinstance(command, str | bytes) or not command or not all(isinstance(a, str) for a in command):
        raise ValueError(f"command must be a non-empty sequence of strings, got {command!r}")
    resolved = []
    for label, folder in (("candidate_dir", candidate_dir), ("inputs_dir", inputs_dir)):
        path = Path(folder).resolve()
        if not path.is_dir():
            raise NotADirectoryError(f"{label} {path} is not a folder")
        resolved.append(path)
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return resolved[0], resolved[1], out


def sandbox_env(candidate: str, inputs: str, code: str, out: str, cpus: float) -> dict[str, str]:
    """The environment of a sandboxed command; nothing is inherited from the host (no API keys leak)."""
    threads = str(max(1, math.floor(cpus)))
    return {
        ENV_CANDIDATE: candidate,
        ENV_INPUTS: inputs,
        ENV_CODE: code,
        ENV_OUT: out,
        "PYTHONPATH": code,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }


def last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and not line.startswith("[... "):
            return line if len(line) <= _LAST_LINE_CHARS else line[: _LAST_LINE_CHARS - 3] + "..."
    return ""


def _signal_name(exit_code: int) -> str | None:
    if 128 < exit_code < 128 + 65:
        try:
            return signal.Signals(exit_code - 128).name
        except ValueError:
            return f"signal {exit_code - 128}"
    return None


@dataclass(frozen=True)
class RunFacts:
    """What a sandbox observed about one run, before classification."""

    exit_code: int | None
    timed_out: bool
    timeout_s: float
    duration_s: float
    output_violation: str | None
    oom_killed: bool
    stderr: str
    memory_mechanism: str


def classify(facts: RunFacts, scan: OutputScan, config: SandboxConfig) -> tuple[Outcome, str]:
    """Outcome and one-sentence reason (without the stream notes), in order of precedence."""
    code = facts.exit_code
    tail = last_line(facts.stderr)
    said = f": {tail}" if tail else ""
    if facts.timed_out:
        return Outcome.TIMED_OUT, (
            f"The command did not finish within the {facts.timeout_s:g} s wall-clock "
            f"limit and was killed after {facts.duration_s:.2f} s"
        )
    if facts.output_violation is not None:
        return Outcome.BAD_OUTPUT, (
            f"The command was killed after {facts.duration_s:.2f} s because its "
            f"output folder grew too big: {facts.output_violation}"
        )
    if facts.oom_killed:
        return Outcome.OUT_OF_MEMORY, (
            f"The command ran out of memory: the kernel killed it at the "
            f"{config.memory_mib} MiB {facts.memory_mechanism} (exit {code})"
        )
    if code is not None and code != 0:
        if _MEMORY_ERROR_RE.match(tail):
            return Outcome.OUT_OF_MEMORY, (
                f"The command ran out of memory under the {config.memory_mib} MiB "
                f"{facts.memory_mechanism} and exited {code}{said}"
            )
        if code == 128 + signal.SIGKILL:
            return Outcome.OUT_OF_MEMORY, (
                f"The command was killed by SIGKILL (exit 137) before the "
                f"timeout, taken as out of memory at the {config.memory_mib} MiB "
                f"{facts.memory_mechanism}"
            )
        if _FILE_TOO_LARGE in facts.stderr[-4000:] or code == 128 + signal.SIGXFSZ:
            return Outcome.BAD_OUTPUT, (
                f"The command tried to write a file bigger than the "
                f"{config.output_limit_mib} MiB output limit and exited {code}{said}"
            )
        if _NO_SPACE in facts.stderr[-4000:]:
            return Outcome.BAD_OUTPUT, (
                f"The command ran out of space: it wrote more than the {config.output_limit_mib} MiB output "
                f"limit (or filled the {config.tmpfs_mib} MiB /tmp) and exited {code}{said}"
            )
        sig = _signal_name(code)
        if sig is not None:
            return Outcome.CRASHED, f"The command was killed by {sig} (exit {code}){said}"
        return Outcome.CRASHED, f"The command crashed with exit code {code}{said}"
    if scan.problem is not None:
        return Outcome.BAD_OUTPUT, f"The output folder is not acceptable: {scan.problem}"
    n = len(scan.files)
    return Outcome.PASSED, (
        f"The command exited 0 in {facts.duration_s:.2f} s with {n} output file{'s' if n != 1 else ''}"
    )


def stream_notes(cuts: Iterable[tuple[str, int, int]]) -> list[str]:
    """Notes like 'stdout was cut to 64000 of 9000000 bytes' for each (name, kept_limit, total) cut."""
    return [f"{name} was cut to {limit} of {total} bytes" for name, limit, total in cuts if total > limit]


def sentence(base: str, notes: Sequence[str]) -> str:
    text = base.rstrip(".")
    if notes:
        text += "; " + "; ".join(notes)
    return text + "."
