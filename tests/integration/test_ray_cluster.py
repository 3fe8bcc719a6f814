"""The Ray executor on a real two-node cluster on 127.0.0.1 (a head and a worker, ``ray start``, stopped by PID).

A fake-model benchmark (the CLI, answers judged in the Docker sandbox of whichever node runs them)
and a design-space sweep run on it while the worker node is killed mid-run (SIGKILL of its process
group).  Every sample and every row must be there, equal to the local executor's, and the
benchmark's lost job must have been run again: the worker is killed while one of its jobs waits for the
model's answer, so the model is asked once more than there are samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_sim import Hardware, Layer
from reference_sim.executors import RayExecutor
from reference_sim.sweep import grid, sweep
from taskbench.suite import load_suite
from tests.conftest import require
from tests.fake_openai_server import FakeOpenAIServer
from tests.fakes import fenced
from tests.ray_cluster import LoopbackCluster, RayNode, ray_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TASK = "spec._fields"
SAMPLES = 6
MODEL_DELAY_S = 2.0
COMPARED = ("task", "digest", "sample", "passed", "failure", "stage", "detail", "attempts", "input_tokens",
            "output_tokens")
"""A sample's fields that must not depend on the executor (its times do)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    try:
        import ray  # noqa: F401
    except ImportError:
        require(False, "Ray is not installed (pip install -e '.[ray]', or bash .ci/provision-ray.sh)")
    require(ray_binary() is not None, "the ray command is not installed (pip install -e '.[ray]')")
    with LoopbackCluster(tmp_path_factory.mktemp("ray"), workers=1, cpus_per_node=1,
                         env={"OPENAI_API_KEY": "sk-test-not-a-key"}) as running:
        yield running


def _bench(out: Path, server: FakeOpenAIServer, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "graph.bench", "tasks", "--model", "fake-coder", "--base-url", server.base_url,
               "--samples", str(SAMPLES), "--k", "1", "--tasks", TASK, "--sandbox", "docker", "--out", str(out),
               *extra]
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-key", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _script() -> list[dict[str, Any]]:
    answer = {"content": fenced(load_suite().task(TASK).solution), "delay_s": MODEL_DELAY_S}
    return [answer] * (3 * SAMPLES)


def _asking(server: FakeOpenAIServer, node: RayNode) -> bool:
    """Whether a job on ``node`` is waiting for the model's answer now (its request came in less than the
    model's delay ago, from a socket a process of that node holds)."""
    recent = [r for r in server.requests() if time.time() - r["time"] < MODEL_DELAY_S / 2]
    return any(node.holds_connection(r["client_port"]) for r in recent)


def _samples(out: Path) -> list[dict[str, Any]]:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return sorted(({k: json.loads(line)[k] for k in COMPARED} for line in lines), key=lambda s: s["sample"])


def test_benchmark_on_ray_survives_a_killed_worker_and_equals_local(cluster: LoopbackCluster, docker: None,
                                                                    tmp_path: Path) -> None:
    with FakeOpenAIServer(_script(), tmp_path / "local") as server:
        local = _bench(tmp_path / "local-out", server, "--executor", "local", "--jobs", "2")
        _, err = local.communicate(timeout=600)
        assert local.returncode == 0, err[-3000:]
    expected = _samples(tmp_path / "local-out")
    assert [s["sample"] for s in expected] == list(range(SAMPLES))

    with FakeOpenAIServer(_script(), tmp_path / "ray") as server:
        run = _bench(tmp_path / "ray-out", server, "--executor", "ray", "--ray-address", cluster.address)
        worker = cluster.workers[0]
        deadline = time.monotonic() + 300
        while not _asking(server, worker) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.poll() is None, f"the run ended before a job on the worker node asked the model: {run.stderr}"
        worker.kill()
        out, err = run.communicate(timeout=600)
        asked = len(server.requests())
    assert run.returncode == 0, err[-3000:]
    assert _samples(tmp_path / "ray-out") == expected, "a sample was lost, doubled or judged differently on Ray"
    assert asked > SAMPLES, "no job was running on the killed worker (nothing was retried)"
    assert f"[{SAMPLES}/{SAMPLES}]" in err, "progress did not stream"
    assert "| all | 1 | 6 | 100.0% | 6/6 |" in out


BASE = Hardware(array_rows=8, array_cols=8, dataflow="os", ifmap_sram_kib=8, filter_sram_kib=8, ofmap_sram_kib=8,
                bandwidth_mode="USER", dram_words_per_cycle=4)
LAYERS = [Layer("conv", 28, 28, 3, 3, 32, 32, 1, 1), Layer("deep", 14, 14, 3, 3, 64, 128, 1, 1),
          Layer("conv_again", 28, 28, 3, 3, 32, 32, 1, 1)]


def test_sweep_on_ray_survives_a_killed_worker_and_equals_local(cluster: LoopbackCluster) -> None:
    import ray

    if not cluster.workers or cluster.workers[-1].proc.poll() is not None:
        cluster.add_worker()
    configs = grid(BASE, arrays=[(8, 8), (16, 8), (8, 16)], dataflows=["os", "ws", "is"],
                   bandwidths=[("USER", 4), ("USER", 2)])
    expected = sweep(LAYERS, configs, jobs=2)
    killed_at: list[int] = []

    def kill_the_worker_once(done: int, total: int) -> None:
        if done == total // 4 and not killed_at:
            cluster.workers[-1].kill()
            killed_at.append(done)

    executor = RayExecutor(cluster.address, chunksize=1)
    try:
        rows = sweep(LAYERS, configs, executor=executor, on_progress=kill_the_worker_once)
    finally:
        ray.shutdown()
    assert killed_at, "the worker was not killed mid-run"
    assert rows == expected
