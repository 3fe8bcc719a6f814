"""A throw-away PostgreSQL server on 127.0.0.1 for tests: a cluster initialised in a temporary folder.

Uses Debian's binaries (``/usr/lib/postgresql/<version>/bin``, ``apt-get install postgresql``, or
``bash .ci/provision-postgres.sh``).  PostgreSQL refuses to run as root, so as root the server runs
as the ``postgres`` user the package creates, in a folder owned by it.  It listens on a free
loopback port chosen at run time (its socket in the same folder), takes a password (SCRAM) over
TCP, and is stopped by its PID.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.ports import free_port

SERVICE_USER = "postgres"
START_TIMEOUT_S = 60.0


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` and ``postgres``; ``None`` without one."""
    root = Path("/usr/lib/postgresql")
    found = sorted((p for p in root.glob("*/bin") if (p / "initdb").is_file() and (p / "postgres").is_file()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if root.is_dir() else []
    return found[-1] if found else None


def missing() -> str | None:
    """Why no server can be started here, or ``None``."""
    if binaries() is None:
        return "no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql, or " \
               "bash .ci/provision-postgres.sh)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as"
    return None


class PostgresServer:
    """``with PostgresServer() as pg:`` a fresh cluster; ``pg.url`` is ``postgresql://simcoder:...@127.0.0.1:PORT/postgres``."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError(missing() or "no PostgreSQL")
        self.bin = bin_dir
        self.user = SERVICE_USER if os.geteuid() == 0 else None
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="simcoder-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://simcoder:{self.password}@127.0.0.1:{self.port}/postgres"

    def _as_user(self) -> dict[str, object]:
        if self.user is None:
            return {}
        return {"user": self.user, "group": self.user, "extra_groups": []}

    def start(self) -> PostgresServer:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n", encoding="utf-8")
        if self.user is not None:
            os.chown(password_file, pwd.getpwnam(self.user).pw_uid, -1)
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "simcoder", "--pwfile",
                        str(password_file), "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                        "--no-instructions"], check=True, capture_output=True, cwd=self.folder,
                       **self._as_user())  # type: ignore[call-overload]
        password_file.unlink()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                 "-k", str(self.folder), "-c", "fsync=off"], stdout=out, stderr=subprocess.STDOUT,
                cwd=self.folder, start_new_session=True, **self._as_user())  # type: ignore[call-overload]
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"postgres did not accept connections in {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster's PID), SIGKILL if it lingers; then the folder goes."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
