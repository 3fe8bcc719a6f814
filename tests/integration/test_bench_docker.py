"""The pass@k benchmark end to end: ``python -m graph.bench tasks`` against a scripted model over real
HTTP (127.0.0.1), answers judged in the Docker sandbox; its pass@k is known exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskbench.suite import load_suite
from tests.fake_openai_server import FakeOpenAIServer
from tests.fakes import fenced

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SUITE = load_suite()

CHEAT_STATIC = '''def folder_name_problem(name):
    reader = getattr(__builtins__, "op" + "en") if not isinstance(__builtins__, dict) else __builtins__["op" + "en"]
    return reader("/sandbox/inputs/probe.json").read()[:10]
'''
CHEAT_AT_RUN_TIME = '''import numpy as np


def folder_name_problem(name):
    loader = getattr(np, "lo" + "ad")
    return str(loader("/sandbox/inputs/inputs.npz").files)
'''
"""Two answers that read the job instead of computing: one the static check refuses, one only the guard can."""


def _step(task_id: str, answer: str) -> dict[str, str]:
    task = SUITE.task(task_id)
    return {"content": answer, "match": " ".join(task.description.split()[:12])}


def test_the_benchmark_cli_gives_the_exact_pass_at_k_through_docker(tmp_path: Path, docker: None) -> None:
    map_layer = SUITE.task("mapping.map_layer.os-rect")
    fields = SUITE.task("spec._fields")
    wrong_map = fenced(map_layer.solution.replace("math.ceil(spatial_rows / rows)", "spatial_rows // rows + 1"))
    script = [
        _step(map_layer.id, wrong_map), _step(map_layer.id, fenced(map_layer.solution)),
        _step("memory._sram_words.os-calc", "Sorry, I cannot."),
        _step("memory._sram_words.os-calc", "Still no."),
        _step(fields.id, fenced(fields.solution)), _step(fields.id, fenced(fields.solution)),
        _step("spec.folder_name_problem", fenced(CHEAT_STATIC)),
        _step("spec.folder_name_problem", fenced(CHEAT_AT_RUN_TIME)),
    ]
    out = tmp_path / "bench"
    with FakeOpenAIServer(script, tmp_path) as server:
        run = subprocess.run(
            [sys.executable, "-m", "graph.bench", "tasks", "--model", "fake-coder", "--base-url", server.base_url,
             "--samples", "2", "--k", "1,2", "--jobs", "1", "--sandbox", "docker", "--out", str(out),
             "--tasks", "mapping.map_layer.os-rect,memory._sram_words.os-calc,spec._fields,spec.folder_name_problem"],
            cwd=REPO, capture_output=True, text=True, timeout=900,
            env={**os.environ, "OPENAI_API_KEY": "sk-test-not-a-key"})
        served = len(server.requests())
    assert run.returncode == 0, run.stderr[-3000:]
    assert served == 8
    table = json.loads((out / "table1.json").read_text())
    assert table["overall"]["pass@1"] == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert table["overall"]["pass@2"] == pytest.approx((1 + 0 + 1 + 0) / 4)
    assert table["failures"] == {"no_code": 2, "refused_import": 2, "wrong (mapping)": 1}
    samples = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    static, at_run_time = [s["detail"] for s in samples if s["task"] == "spec.folder_name_problem"]
    assert "__builtins__" in static
    assert "run-time guard refused" in at_run_time and "inputs.npz" in at_run_time
    assert "| all | 4 | 8 | 37.5% | 50.0% | 3/8 |" in run.stdout


FEATURE_CHEAT = '''def run(layers, hardware, params, *, traces=False):
    reader = getattr(__builtins__, "op" + "en") if not isinstance(__builtins__, dict) else __builtins__["op" + "en"]
    return reader("/sandbox/inputs/feature-job.json").read()
'''


def test_a_feature_task_is_judged_whole_in_docker(tmp_path: Path, docker: None) -> None:
    from taskbench import feature_tasks

    task = SUITE.task("feature.sparsity")
    mutant = feature_tasks.seeded_mutants("sparsity")[0][1]
    match = "## The feature: `sparsity`"
    script = [{"content": fenced(task.solution), "match": match}, {"content": fenced(mutant), "match": match},
              {"content": fenced(FEATURE_CHEAT), "match": match}]
    out = tmp_path / "bench"
    with FakeOpenAIServer(script, tmp_path) as server:
        run = subprocess.run(
            [sys.executable, "-m", "graph.bench", "tasks", "--model", "fake-coder", "--base-url", server.base_url,
             "--samples", "3", "--k", "1,3", "--jobs", "1", "--sandbox", "docker", "--out", str(out),
             "--tasks", task.id],
            cwd=REPO, capture_output=True, text=True, timeout=900,
            env={**os.environ, "OPENAI_API_KEY": "sk-test-not-a-key"})
        served = len(server.requests())
    assert run.returncode == 0, run.stderr[-3000:]
    assert served == 3
    table = json.loads((out / "table1.json").read_text())
    assert table["by_module"]["feature"]["pass@1"] == pytest.approx(1 / 3)
    assert table["failures"] == {"wrong (oracle)": 1, "refused_import": 1}
    assert "| module feature | 1 | 3 | 33.3% | 100.0% | 1/3 |" in run.stdout
