"""A real ``langgraph dev`` server for integration tests: 127.0.0.1, a free port (never 2024), no phone-home,
stopped by PID whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[1]
OFFLINE_ENV = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "1", "LANGSMITH_TRACING": "false"}
LANGGRAPH_CLI = Path(sys.executable).with_name("langgraph")


class LangGraphDevServer:
    """``langgraph dev`` (in-memory runtime) on ``repo/langgraph.json``, its state files in ``workdir``."""

    def __init__(self, workdir: Path, *, startup_timeout_s: float = 120.0, env: dict[str, str] | None = None,
                 jobs: int = 4) -> None:
        self.workdir = workdir
        self.startup_timeout_s = startup_timeout_s
        self.env = dict(env or {})
        """The operator's settings (``SIMCODER_*``, ``OPENAI_*``); the run root defaults to ``workdir/runs``."""
        self.jobs = jobs
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: list[float] = []
        self.log = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LangGraphDevServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = [str(LANGGRAPH_CLI), "dev", "--config", str(REPO / "langgraph.json"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--no-browser", "--no-reload", "--allow-blocking",
                   "--n-jobs-per-worker", str(self.jobs)]
        env = {**os.environ, "SIMCODER_RUN_ROOT": str(self.workdir / "runs"), **self.env, **OFFLINE_ENV,
               "PYTHONUNBUFFERED": "1"}
        start = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        while time.monotonic() - start < self.startup_timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"langgraph dev exited {self.process.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ok", timeout=1) as answer:
                    if answer.status == 200:
                        self.startup_s.append(time.monotonic() - start)
                        return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"langgraph dev did not answer /ok in {self.startup_timeout_s:.0f} s: {self.tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's process group (it saves its state), SIGKILL after 30 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.is_file() else ""

    def __enter__(self) -> LangGraphDevServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
