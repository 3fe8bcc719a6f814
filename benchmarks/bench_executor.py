"""The executors' throughput: local against a two-node Ray cluster on 127.0.0.1.

    python -m benchmarks.bench_executor                     # sweep and benchmark, Docker sandbox
    python -m benchmarks.bench_executor --sandbox process   # without Docker (no isolation; trusted answers)
    python -m benchmarks.bench_executor --json out.json     # also write the figures as JSON (from the repo root)

* **Sweep**: configurations per second of :func:`reference_sim.sweep.sweep`, a grid of
  ``--configs`` architectures over a three-layer topology, with 2 local processes and on the cluster
  (one Ray task per configuration and layer shape).
* **Benchmark**: tasks (samples) per second of ``python -m graph.bench tasks``, ``--samples``
  samples of one probe task answered at once by a fake OpenAI-compatible model on 127.0.0.1, each
  judged in the sandbox, with ``--jobs 2`` locally and on the cluster (each node its own sandbox).

The cluster is a head and one worker, one CPU each (the same two cores as the local run), started
with ``ray start`` and stopped by PID.  On one machine this shows Ray's overhead, not a speed-up:
both sides have the same two cores.  Each side runs ``--repeat`` times, alternating, and the
fastest run counts (the machine may be shared).  Every run's results are checked equal to the local ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reference_sim import Hardware, Layer
from reference_sim.executors import RayExecutor
from reference_sim.sweep import grid, sweep
from taskbench.suite import load_suite
from tests.fake_openai_server import FakeOpenAIServer
from tests.fakes import fenced
from tests.ray_cluster import LoopbackCluster

REPO = Path(__file__).resolve().parents[1]
TASK = "spec._fields"
BASE = Hardware(array_rows=8, array_cols=8, dataflow="os", ifmap_sram_kib=8, filter_sram_kib=8, ofmap_sram_kib=8,
                bandwidth_mode="USER", dram_words_per_cycle=4)
LAYERS = [Layer("conv", 28, 28, 3, 3, 32, 32, 1, 1), Layer("deep", 14, 14, 3, 3, 64, 128, 1, 1),
          Layer("fc", 1, 1, 1, 1, 512, 256, 1, 1)]


def _configs(count: int) -> list[Hardware]:
    arrays = [(r, c) for r in (4, 8, 16, 32) for c in (4, 8, 16, 32)]
    configs = grid(BASE, arrays=arrays, dataflows=["os", "ws", "is"], bandwidths=[("USER", 4), ("CALC", None)])
    return configs[:count]


def measure_sweep(cluster: LoopbackCluster, count: int, repeat: int) -> dict[str, Any]:
    import ray

    configs = _configs(count)
    executor = RayExecutor(cluster.address)
    executor.cpus()
    local_times, ray_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        local = sweep(LAYERS, configs, jobs=2)
        local_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        remote = sweep(LAYERS, configs, executor=executor)
        ray_times.append(time.perf_counter() - start)
        if remote != local:
            raise SystemExit("the sweep on Ray differs from the local sweep")
    ray.shutdown()
    local_s, ray_s = min(local_times), min(ray_times)
    return {"configs": len(configs), "local_s": round(local_s, 2), "ray_s": round(ray_s, 2),
            "local_per_s": round(len(configs) / local_s, 1), "ray_per_s": round(len(configs) / ray_s, 1)}


def _bench(tmp: Path, samples: int, sandbox: str, *executor: str) -> tuple[float, list[dict[str, Any]]]:
    answer = {"content": fenced(load_suite().task(TASK).solution)}
    out = tmp / f"out-{executor[1]}"
    with FakeOpenAIServer([answer] * (2 * samples), tmp / executor[1]) as server:
        command = [sys.executable, "-m", "graph.bench", "tasks", "--model", "fake-coder", "--base-url",
                   server.base_url, "--samples", str(samples), "--k", "1", "--tasks", TASK, "--sandbox", sandbox,
                   "--out", str(out), *executor]
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench-not-a-key", "RAY_USAGE_STATS_ENABLED": "0"}
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the benchmark ({' '.join(executor)}) failed: {done.stderr[-2000:]}")
    keep = ("task", "sample", "passed", "failure", "stage", "detail")
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    results = sorted(({k: json.loads(line)[k] for k in keep} for line in lines), key=lambda s: s["sample"])
    return seconds, results


def measure_tasks(cluster: LoopbackCluster, samples: int, sandbox: str, tmp: Path, repeat: int) -> dict[str, Any]:
    local_times, ray_times = [], []
    for n in range(repeat):
        seconds, local = _bench(tmp / f"local-{n}", samples, sandbox, "--executor", "local", "--jobs", "2")
        local_times.append(seconds)
        seconds, remote = _bench(tmp / f"ray-{n}", samples, sandbox, "--executor", "ray", "--ray-address",
                                 cluster.address)
        ray_times.append(seconds)
        if remote != local:
            raise SystemExit("the benchmark's samples on Ray differ from the local ones")
    local_s, ray_s = min(local_times), min(ray_times)
    return {"samples": samples, "sandbox": sandbox, "local_s": round(local_s, 2), "ray_s": round(ray_s, 2),
            "local_per_s": round(samples / local_s, 2), "ray_per_s": round(samples / ray_s, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=48, help="sweep configurations (default 48)")
    parser.add_argument("--samples", type=int, default=12, help="benchmark samples (default 12)")
    parser.add_argument("--sandbox", choices=("docker", "process"), default="docker", help="where answers run")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating; the fastest counts "
                        "(default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as folder:
        tmp = Path(folder)
        start = time.perf_counter()
        with LoopbackCluster(tmp / "ray", workers=1, cpus_per_node=1) as cluster:
            up_s = time.perf_counter() - start
            figures = {"cluster": {"nodes": 2, "cpus_per_node": 1, "start_s": round(up_s, 1)},
                       "sweep": measure_sweep(cluster, args.configs, args.repeat),
                       "tasks": measure_tasks(cluster, args.samples, args.sandbox, tmp, args.repeat)}
    sw, tk = figures["sweep"], figures["tasks"]
    sys.stdout.write(
        f"two-node Ray cluster on 127.0.0.1 (1 CPU per node) up in {up_s:.1f} s\n"
        f"| workload | local (2 jobs) | Ray, 2 nodes | local s | Ray s |\n|---|---:|---:|---:|---:|\n"
        f"| sweep, {sw['configs']} configs x {len(LAYERS)} layers | {sw['local_per_s']} configs/s | "
        f"{sw['ray_per_s']} configs/s | {sw['local_s']} | {sw['ray_s']} |\n"
        f"| benchmark, {tk['samples']} samples ({tk['sandbox']} sandbox) | {tk['local_per_s']} tasks/s | "
        f"{tk['ray_per_s']} tasks/s | {tk['local_s']} | {tk['ray_s']} |\n"
        f"fastest of {args.repeat} alternating runs each; results on Ray equal the local ones (every row, "
        "every sample)\n")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
