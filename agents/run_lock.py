"""One process at a time per run folder: a lock file holding the owner's PID.

Taken with ``O_CREAT | O_EXCL`` so two processes cannot both take it; a lock whose process no longer
exists (a run killed with ``kill -9``) is taken over.  Another live holder is a one-line error naming
its PID.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from reference_sim.errors import InputError

LOCK_FILE = "run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip() or "0") or None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/run.lock`` while the block runs; refuse when a live process holds it."""
    path = run_dir / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is not None and holder != os.getpid() and _alive(holder):
                raise InputError(run_dir, f"the run is in use by process {holder} (its {LOCK_FILE}); wait for it, "
                                          f"or stop it first") from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        try:
            yield
        finally:
            if _holder(path) == os.getpid():
                path.unlink(missing_ok=True)
        return
    raise InputError(run_dir, f"cannot take the run's {LOCK_FILE}")
