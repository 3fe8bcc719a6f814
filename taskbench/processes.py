"""One way to run a benchmark's child process: timed, its peak RSS taken, killed with its children.

The child runs in its own process group.  The whole group is killed at the timeout, and also when
the benchmark itself stops early (Ctrl-C, or SIGTERM once :func:`stop_children_on_sigterm` is set),
so no SCALE-Sim run is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

STDERR_TAIL_CHARS = 2000


@dataclass(frozen=True)
class ProcessRun:
    """One child process: wall time from spawn to reap, the child's peak resident set, its exit code,
    its standard error, and whether it was killed at its timeout."""

    seconds: float
    max_rss_kib: int
    returncode: int
    stderr: str
    timed_out: bool = False

    @property
    def max_rss_mib(self) -> float:
        return self.max_rss_kib / 1024

    @property
    def stderr_tail(self) -> str:
        return self.stderr[-STDERR_TAIL_CHARS:]


def run_process(command: Sequence[str], cwd: Path | None = None, timeout: float | None = None,
                env: dict[str, str] | None = None, stdout: Path | None = None) -> ProcessRun:
    """Run ``command`` to completion, or kill its process group after ``timeout`` seconds (``timed_out``).
    Peak RSS from ``wait4`` (KiB on Linux).  Standard output goes to the file ``stdout`` when given,
    else nowhere."""
    with tempfile.TemporaryFile() as err, (stdout.open("wb") if stdout else open(os.devnull, "wb")) as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(command), cwd=cwd, stdout=out, stderr=err, env=env, start_new_session=True)
        fired = threading.Event()

        def kill_group() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        def expire() -> None:
            fired.set()
            kill_group()

        killer = threading.Timer(timeout, expire) if timeout is not None else None
        if killer is not None:
            killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            kill_group()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            raise
        finally:
            if killer is not None:
                killer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return ProcessRun(seconds, int(usage.ru_maxrss), proc.returncode, text, fired.is_set())


def stop_children_on_sigterm() -> None:
    """Make SIGTERM end the benchmark through ``SystemExit``, so a running child's group is killed too."""

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
