"""The agent run's state in a real PostgreSQL (a cluster initialised by the test, on a free loopback port).

A run (``--checkpoint postgresql://...``, ``--out runs`` in a folder of its own) is killed (SIGKILL)
after its mapping coder finished while the network coder waits for the model; a second process in
another folder (as on another machine: no ``run.json`` and no run folder there), with the database
named only by ``SIMCODER_CHECKPOINT``, resumes it: it asks the model for the network module only
and verifies.  No checkpoint file is written to the run folder and the database password is in no
file and no output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from judge import mutants
from tests import fakes
from tests.conftest import require
from tests.fake_openai_server import FakeOpenAIServer
from tests.integration.test_graph_http import (
    MAPPING,
    MUTANT,
    NETWORK,
    RUN_TIMEOUT_S,
    _command,
    _env,
    _first_user,
    _key,
    _resume_command,
)
from tests.langgraph_server import LANGGRAPH_CLI, OFFLINE_ENV
from tests.ports import free_port
from tests.postgres_server import PostgresServer, missing

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    reason = missing()
    require(reason is None, str(reason))
    try:
        import langgraph.checkpoint.postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "langgraph-checkpoint-postgres is not installed (pip install -e '.[postgres]')")
    with PostgresServer() as server:
        yield server


def _parent_writes(url: str, run_id: str, channel: str) -> int:
    """The parent graph's pending writes to ``channel`` in the database (0 before its tables exist)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SELECT COUNT(*) FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = '' "
                               "AND channel = %s", (run_id, channel)).fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def _killed_run(tmp: Path, url: str, key: str) -> tuple[Path, Path]:
    """A run killed once its mapping module was checkpointed; returns the spec and the run folder."""
    spec = fakes.small_spec(tmp)
    machine = tmp / "machine-a"
    machine.mkdir()
    out = machine / "runs"
    script: list[dict[str, Any]] = [
        {"match": MAPPING, "content": fakes.reference_answer("mapping")},
        {"match": NETWORK, "delay_s": 60, "content": fakes.reference_answer("network")}]
    stderr_path = tmp / "first_stderr.txt"
    with FakeOpenAIServer(script, tmp / "first") as server, stderr_path.open("w", encoding="utf-8") as stderr:
        command = _command(spec, Path("runs"), server.base_url, "--generate", "mapping,network", "--no-optimise",
                           "--max-sandboxes", "1", "--checkpoint", url)
        proc = subprocess.Popen(command, cwd=machine, env=_env(key), stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 90
            finished = False
            while time.monotonic() < deadline and proc.poll() is None:
                runs = [p for p in out.iterdir() if p.is_dir()] if out.is_dir() else []
                asked = [r for r in server.requests() if r["matched"]]
                if len(asked) == 2 and runs and _parent_writes(url, runs[0].name, "branch:to:assemble") >= 1:
                    finished = True
                    break
                time.sleep(0.2)
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before it could be killed: " \
                                        f"{stderr_path.read_text(encoding='utf-8')}"
            assert finished, f"the mapping coder did not finish in time: {stderr_path.read_text(encoding='utf-8')}"
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -9, proc.returncode
    progress = stderr_path.read_text(encoding="utf-8")
    assert "mapping: written" in progress and "network: written" not in progress, progress
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return spec, run_dir


def test_a_killed_run_resumes_in_a_second_process_from_postgres(docker: None, postgres: PostgresServer,
                                                                 tmp_path: Path) -> None:
    key = _key()
    _spec, first_dir = _killed_run(tmp_path, postgres.url, key)
    assert not (first_dir / "checkpoints.sqlite").exists(), "the state went to SQLite, not PostgreSQL"
    other = tmp_path / "machine-b"
    other.mkdir()
    script = [{"match": NETWORK, "content": fakes.reference_answer("network")}]
    with FakeOpenAIServer(script, tmp_path / "second") as server:
        done = subprocess.run(_resume_command(Path("runs"), first_dir.name, server.base_url), cwd=other,
                              env={**_env(key), "SIMCODER_CHECKPOINT": postgres.url}, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S, check=False)
        requests = server.requests()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    resumed_dir = other / "runs" / first_dir.name
    assert not (first_dir / "report.json").exists(), "the resumed run wrote into the first machine's folder"
    report = json.loads((resumed_dir / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "verified"
    assert len(requests) == 1 and NETWORK in _first_user(requests[0]), [_first_user(r)[:80] for r in requests]
    assert "mapping: answer" not in done.stderr and "plan:" not in done.stderr, done.stderr
    modules = {m["module"]: (m["source"], m["attempts"]) for m in report["modules"]}
    assert modules == {"mapping": ("generated", 1), "network": ("generated", 1), "memory": ("reference", 0)}
    assert "state in PostgreSQL at 127.0.0.1:" in done.stdout
    for folder in (first_dir, resumed_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                assert postgres.password.encode() not in path.read_bytes(), f"the database password is in {path}"
    assert postgres.password not in done.stdout + done.stderr


def test_an_unreachable_database_is_one_line_and_exit_2(postgres: PostgresServer, tmp_path: Path) -> None:
    spec = fakes.small_spec(tmp_path)
    wrong = postgres.url.replace(postgres.password, "not-the-password")
    done = subprocess.run(_command(spec, tmp_path / "runs", "http://127.0.0.1:9/v1", "--checkpoint", wrong),
                          cwd=tmp_path, env=_env(_key()), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: --checkpoint: cannot reach PostgreSQL at 127.0.0.1:")
    assert "not-the-password" not in done.stdout + done.stderr
    assert not (tmp_path / "runs").exists(), "a run folder was made for a run that could not start"


REPO = Path(__file__).resolve().parents[2]


def _checkpoints_of(url: str, thread_id: str) -> int:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = %s", (thread_id,)).fetchone()
    return int(row[0]) if row else 0


def test_the_verifier_graph_served_by_langgraph_dev_keeps_its_thread_in_postgres(
        docker: None, postgres: PostgresServer, tmp_path: Path) -> None:
    """``langgraph dev`` with ``checkpointer.path: graph.checkpoint.server_checkpointer`` in its config."""
    require(LANGGRAPH_CLI.is_file(), f"no {LANGGRAPH_CLI}: langgraph dev needs Python 3.11+ and the dev extra")
    from langgraph_sdk import get_sync_client

    config = {**json.loads((REPO / "langgraph.json").read_text(encoding="utf-8")), "dependencies": [str(REPO)],
              "checkpointer": {"path": "graph.checkpoint.server_checkpointer"}}
    (tmp_path / "langgraph.postgres.json").write_text(json.dumps(config), encoding="utf-8")
    candidate = tmp_path / "wrong-candidate"
    candidate.mkdir()
    for name, text in mutants.candidate_files(next(m for m in mutants.MUTANTS if m.id == MUTANT)).items():
        (candidate / name).write_text(text, encoding="utf-8")
    spec = fakes.small_spec(tmp_path)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(LANGGRAPH_CLI), "dev", "--config", str(tmp_path / "langgraph.postgres.json"), "--host", "127.0.0.1",
             "--port", str(port), "--no-browser", "--no-reload", "--allow-blocking"],
            cwd=tmp_path, env={**os.environ, **OFFLINE_ENV, "SIMCODER_CHECKPOINT": postgres.url,
                               "SIMCODER_PATH_ROOTS": str(tmp_path)},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "langgraph dev did not answer /ok: " + log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        client = get_sync_client(url=f"http://127.0.0.1:{port}", timeout=RUN_TIMEOUT_S)
        thread = client.threads.create()
        result = client.runs.wait(thread["thread_id"], "verifier",
                                  input={"candidate_dir": str(candidate), "spec_path": str(spec), "final_check": []})
        assert result["passed"] is False and result["blamed"] == ["mapping"]
        assert _checkpoints_of(postgres.url, thread["thread_id"]) >= 1, "the server's checkpoints are not in PostgreSQL"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
