"""A real model through the real benchmark CLI: the local llama.cpp server (``make local-model``) answers two
probe tasks, which run in the Docker sandbox; each sample must end classified (passed, or a named failure
class) with its transcript saved.

The server and the model come from the cache outside the repository (``tools/local_model.py install``;
``.ci/run`` provisions it, and only a machine's first run builds it).  A server already running is reused;
one this test started is stopped by PID at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskbench import hidden, passk
from tests.conftest import require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOOL = [sys.executable, str(REPO / "tools" / "local_model.py")]
TASKS = ("spec._fields", "spec._parse_int")


def _line(output: str) -> dict[str, str]:
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return dict(part.split("=", 1) for part in last.split() if "=" in part)


@pytest.fixture(scope="module")
def local_model() -> Iterator[dict[str, str]]:
    running = subprocess.run([*TOOL, "status"], capture_output=True, text=True, timeout=60)
    if running.returncode == 0:
        yield _line(running.stdout)
        return
    require("model: " in running.stderr and "not installed" not in running.stderr
            and "not built" not in running.stderr,
            "no local model installed (run `make local-model` once; CI provisions it)")
    started = subprocess.run([*TOOL, "start", "--context-tokens", "8192"], capture_output=True, text=True,
                             timeout=600)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield _line(started.stdout)
    finally:
        subprocess.run([*TOOL, "stop"], capture_output=True, text=True, timeout=120)


def test_two_probe_tasks_are_classified_with_their_transcripts(docker: None, local_model: dict[str, str],
                                                                tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "graph.bench", "tasks", "--base-url", local_model["OPENAI_BASE_URL"],
         "--model", local_model["OPENAI_MODEL"], "--strategy", "zero_shot", "--samples", "1", "--k", "1",
         "--tasks", ",".join(TASKS), "--jobs", "1", "--sandbox", "docker", "--model-timeout-s", "240",
         "--max-answer-tokens", "512", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    samples = passk.current(passk.Store(out).load())
    assert sorted(s.task for s in samples) == sorted(TASKS)
    for sample in samples:
        assert sample.passed or sample.failure in hidden.FAILURE_CLASSES, sample
        transcript = json.loads((out / sample.transcript).read_text(encoding="utf-8"))
        assert transcript["task"] == sample.task and transcript["calls"], sample.task
        assert all(call["messages"] and "answer" in call for call in transcript["calls"])
    assert "tokens (the server's /props)" in done.stderr, "the window was not read from the server"
