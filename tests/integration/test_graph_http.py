"""The whole CLI (``python -m graph.run``) over real HTTP against the scripted fake OpenAI server, in Docker.

Each test starts the fake server (127.0.0.1, a free port), runs the CLI as a subprocess with a small
spec (``tests.fakes.small_spec``) and the Docker sandbox, and reads what it left: the exit code, the
run folder (``report.json``, ``report.md``, the package, the checkpoints) and the server's request log.
Most runs write the mapping module only (``--generate mapping``): the requests are then sequential,
so the fake server's script (consumed one step per request) fixes which answer each request gets.
The three coders run in parallel otherwise; the fake server cannot route by content (a step whose
``match`` fails is answered 500 and not consumed), so no test scripts all three modules at once.

The API key is a distinctive fake (``sk-simcoder-test-<hex>``) so a test can look for its bytes in
every file the run wrote.  Needs the image from ``bash .ci/provision-docker.sh``; fails instead of
skipping when ``SIMCODER_CI=1``.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import fakes
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
MAPPING = "## The module: `mapping.py`"
NETWORK = "## The module: `network.py`"
REPAIR_OPENING = ("Your `mapping.py` module of the simulator described below was run by the verifier against "
                  "the reference simulator and rejected")
MUTANT = "map-row-folds-floor"
RUN_TIMEOUT_S = 180
TOPOLOGY = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 30, 30, 3, 3, 3, 40, 1,
FC, 1, 1, 1, 1, 300, 50, 1,
"""


def _key() -> str:
    return "sk-simcoder-test-" + secrets.token_hex(12)


def _env(key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_MODEL", "PYTHONPATH")}
    env.update({"OPENAI_API_KEY": key, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"})
    return env


def _command(spec: Path, out: Path, base_url: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "graph.run", "--arch", str(spec), "--out", str(out), "--base-url", base_url,
            "--model", "fake-model", "--sandbox", "docker", *flags]


def _resume_command(out: Path, run_id: str, base_url: str) -> list[str]:
    return [sys.executable, "-m", "graph.run", "--resume", run_id, "--out", str(out), "--base-url", base_url]


@dataclass
class Run:
    """One finished CLI run: its exit code, output, run folder and the requests the server received."""

    returncode: int
    stdout: str
    stderr: str
    run_dir: Path
    requests: list[dict[str, Any]]
    seconds: float

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "report.json").read_text(encoding="utf-8"))
        return data

    def why(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f} s\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def _single_run_dir(out: Path) -> Path:
    found = [p for p in out.iterdir() if p.is_dir()]
    assert len(found) == 1, f"expected one run folder under {out}, found {found}"
    return found[0]


def _run(script: list[dict[str, Any]], tmp: Path, key: str, *flags: str) -> Run:
    spec = fakes.small_spec(tmp)
    out = tmp / "runs"
    with FakeOpenAIServer(script, tmp) as server:
        start = time.monotonic()
        done = subprocess.run(_command(spec, out, server.base_url, *flags), cwd=REPO_ROOT, env=_env(key),
                              capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
        seconds = time.monotonic() - start
        requests = server.requests()
    return Run(done.returncode, done.stdout, done.stderr, _single_run_dir(out), requests, seconds)


def _last_user(request: dict[str, Any]) -> str:
    users = [m for m in request["messages"] if m.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def _first_user(request: dict[str, Any]) -> str:
    users = [m for m in request["messages"] if m.get("role") == "user"]
    content = users[0]["content"] if users else ""
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


# --------------------------------------------------------------------------- one repair round


@pytest.fixture(scope="module")
def repaired(docker: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, str]:
    """Mapping only: the first answer is a seeded mutant, the repair is the reference; and the key used."""
    key = _key()
    script = [{"content": fakes.mutant_answer(MUTANT, "mapping")}, {"content": fakes.reference_answer("mapping")}]
    return _run(script, tmp_path_factory.mktemp("repaired"), key, "--generate", "mapping", "--no-optimise"), key


def test_repaired_after_one_round(repaired: tuple[Run, str], scalesim_data: Path, tmp_path: Path) -> None:
    run, _ = repaired
    assert run.returncode == 0, run.why()
    report = run.report
    assert report["status"] == "verified", run.why()
    assert len(run.requests) == 2, [r["step"] for r in run.requests]
    assert all(r["matched"] and r["model"] == "fake-model" for r in run.requests)
    assert MAPPING in _first_user(run.requests[0])
    repair = _last_user(run.requests[1])
    assert " ".join(repair.split()).startswith(REPAIR_OPENING), repair[:300]
    assert "Stage evidence" in repair and "mapping" in repair and "row_folds" in repair

    package = Path(report["package"])
    assert package.parent == run.run_dir and (package / "__main__.py").is_file(), report["package"]
    topology = tmp_path / "small.csv"
    topology.write_text(TOPOLOGY, encoding="utf-8")
    out = tmp_path / "package_out"
    ran = subprocess.run([sys.executable, "-m", package.name, "-c", str(scalesim_data / "configs" / "scale.cfg"),
                          "-t", str(topology), "-p", str(out)], cwd=run.run_dir, capture_output=True, text=True,
                         timeout=300, check=False, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert ran.returncode == 0, ran.stderr
    reports = list(out.rglob("COMPUTE_REPORT.csv"))
    assert len(reports) == 1, list(out.rglob("*"))
    assert len(reports[0].read_text(encoding="utf-8").splitlines()) == 3  # header and two layers


def test_key_never_written(repaired: tuple[Run, str]) -> None:
    run, key = repaired
    assert run.returncode == 0, run.why()
    assert run.requests and all(r["authorization"] for r in run.requests), "the key was not sent"
    files = [p for p in run.run_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"report.md", "report.json", "run.json", "checkpoints.sqlite"} <= names, sorted(names)
    assert any(p.suffix == ".png" for p in files) and any("candidates" in p.parts for p in files)
    _assert_key_not_in(run.run_dir, key)
    assert key not in run.stdout and key not in run.stderr
    assert key[:24] not in run.stdout + run.stderr


def _assert_key_not_in(folder: Path, key: str) -> None:
    """No file under ``folder`` (the SQLite database and its -wal/-shm files included) holds the key's bytes."""
    holding = [str(p) for p in folder.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert not holding, f"the key is in {holding}"


# --------------------------------------------------------------------------- budget, transient errors


def test_budget_exhausted_exit_code(docker: None, tmp_path: Path) -> None:
    script = [{"content": fakes.mutant_answer(MUTANT, "mapping")}] * 4
    run = _run(script, tmp_path, _key(), "--generate", "mapping", "--repair-rounds", "1", "--no-optimise")
    assert run.returncode == 4, run.why()
    assert run.report["status"] == "budget_exhausted"
    assert len(run.requests) == 2  # the first answer and one repair
    assert (run.run_dir / "best").is_dir() and (run.run_dir / "best" / "mapping.py").is_file()
    assert (run.run_dir / "report.md").is_file()
    assert "package" not in run.report or not run.report["package"]


def test_transient_429_retried(docker: None, tmp_path: Path) -> None:
    script: list[dict[str, Any]] = [
        {"status": 429, "headers": {"retry-after-ms": "50"},
         "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}},
        {"content": fakes.reference_answer("mapping")}]
    run = _run(script, tmp_path, _key(), "--generate", "mapping", "--no-optimise")
    assert run.returncode == 0, run.why()
    assert run.report["status"] == "verified"
    assert [r["step"] for r in run.requests] == [0, 1]
    assert _first_user(run.requests[0]) == _first_user(run.requests[1])


# --------------------------------------------------------------------------- kill and resume


def _parent_writes(checkpoints: Path, channel: str) -> int:
    """Rows of the parent graph's pending writes to ``channel`` (0 while the database cannot be read)."""
    if not checkpoints.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{checkpoints}?mode=ro", uri=True, timeout=1.0)) as conn:
            row = conn.execute("SELECT COUNT(*) FROM writes WHERE checkpoint_ns = '' AND channel = ?",
                               (channel,)).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


@dataclass
class Killed:
    """A run killed (SIGKILL) after the mapping coder finished while the network coder waited for the model."""

    spec: Path
    out: Path
    run_dir: Path
    key: str
    first_requests: list[dict[str, Any]]


def _killed_run(tmp: Path) -> Killed:
    spec = fakes.small_spec(tmp)
    out = tmp / "runs"
    key = _key()
    script: list[dict[str, Any]] = [
        {"match": MAPPING, "content": fakes.reference_answer("mapping")},
        {"match": NETWORK, "delay_s": 60, "content": fakes.reference_answer("network")}]
    stderr_path = tmp / "first_stderr.txt"
    with FakeOpenAIServer(script, tmp) as server, stderr_path.open("w", encoding="utf-8") as stderr:
        command = _command(spec, out, server.base_url, "--generate", "mapping,network", "--no-optimise",
                           "--max-sandboxes", "1")
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(key), stdout=subprocess.DEVNULL, stderr=stderr,
                                text=True)
        try:
            deadline = time.monotonic() + 60
            finished = False
            while time.monotonic() < deadline and proc.poll() is None:
                runs = [p for p in out.iterdir() if p.is_dir()] if out.is_dir() else []
                # the mapping coder's result, saved as a pending write of the parent graph's superstep, and
                # the network's request taken by its (delayed) step: a network request that came first was
                # answered 500 and is asked again by the node's retry policy a second later
                asked = [r for r in server.requests() if r["matched"]]
                if len(asked) == 2 and runs and \
                        _parent_writes(runs[0] / "checkpoints.sqlite", "branch:to:assemble") >= 1:
                    finished = True
                    break
                time.sleep(0.2)
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before it could be killed: " \
                                        f"{stderr_path.read_text(encoding='utf-8')}"
            assert finished, f"the mapping coder did not finish in time: {stderr_path.read_text(encoding='utf-8')}"
            requests = server.requests()
            time.sleep(1.0)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -9, proc.returncode
    progress = stderr_path.read_text(encoding="utf-8")
    assert "mapping: written" in progress and "network: written" not in progress, progress
    answered = [r for r in requests if r["matched"]]
    assert [MAPPING in _first_user(r) for r in answered] == [True, False], [r["step"] for r in requests]
    return Killed(spec, out, _single_run_dir(out), key, requests)


def _resume(killed: Killed, tmp: Path) -> Run:
    script = [{"match": NETWORK, "content": fakes.reference_answer("network")}]
    with FakeOpenAIServer(script, tmp / "second") as server:
        start = time.monotonic()
        done = subprocess.run(_resume_command(killed.out, killed.run_dir.name, server.base_url), cwd=REPO_ROOT,
                              env=_env(killed.key), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              check=False)
        seconds = time.monotonic() - start
        requests = server.requests()
    return Run(done.returncode, done.stdout, done.stderr, killed.run_dir, requests, seconds)


def _assert_resumed_without_redoing_mapping(run: Run) -> None:
    assert run.returncode == 0, run.why()
    assert run.report["status"] == "verified"
    assert len(run.requests) == 1, [(r["step"], _first_user(r)[:80]) for r in run.requests]
    assert NETWORK in _first_user(run.requests[0])
    assert "mapping: answer" not in run.stderr and "plan:" not in run.stderr, run.stderr
    modules = {m["module"]: (m["source"], m["attempts"]) for m in run.report["modules"]}
    assert modules == {"mapping": ("generated", 1), "network": ("generated", 1), "memory": ("reference", 0)}


def test_kill_and_resume(docker: None, tmp_path: Path) -> None:
    """Killed mid-run, resumed against a new endpoint (``--base-url`` given with ``--resume``): the finished
    mapping module is not asked for again, and the killed run's files (its checkpoints' -wal too) hold no key."""
    killed = _killed_run(tmp_path)
    run = _resume(killed, tmp_path)
    _assert_resumed_without_redoing_mapping(run)
    assert f"run {killed.run_dir.name}: " in run.stdout
    assert json.loads((killed.run_dir / "run.json").read_text(encoding="utf-8"))["base_url"].startswith(
        "http://127.0.0.1:")
    _assert_key_not_in(killed.run_dir, killed.key)
    assert killed.key not in run.stdout + run.stderr
