"""Round-trip time of one sandboxed run of a trivial candidate: DockerSandbox vs ProcessSandbox.

    python benchmarks/bench_sandbox.py [--runs 10] [--json PATH]

Each run is a full ``Sandbox.run`` (create, start, wait, inspect, remove, output scan for Docker) of
``python3 -I main.py`` writing one small file.  Reports median and p90 per sandbox and the ratio of
the medians; the goal for Docker is a median under 0.5 s.  Prints figures only, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sandbox import CANDIDATE_MOUNT, ProcessSandbox, Sandbox, SandboxConfig, SandboxUnavailable

logger = logging.getLogger("bench_sandbox")

TRIVIAL = """\
import os
with open(os.path.join(os.environ["SIMCODER_OUT"], "result.json"), "w") as f:
    f.write('{"ok": true}')
"""
DOCKER_GOAL_S = 0.5


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def _time_runs(sandbox: Sandbox, work: Path, command: list[str], runs: int) -> dict[str, Any]:
    cand = work / "candidate"
    inputs = work / "inputs"
    cand.mkdir(exist_ok=True)
    inputs.mkdir(exist_ok=True)
    (cand / "main.py").write_text(TRIVIAL)
    times: list[float] = []
    outcomes: set[str] = set()
    for i in range(runs + 1):
        out = work / f"out-{sandbox.name}-{i}"
        start = time.perf_counter()
        result = sandbox.run(cand, inputs, out, command)
        elapsed = time.perf_counter() - start
        outcomes.add(result.outcome.value)
        if i > 0:  # the first run warms caches (page cache, image layers) and is not counted
            times.append(elapsed)
    return {
        "runs": runs,
        "median_s": statistics.median(times),
        "p90_s": _p90(times),
        "min_s": min(times),
        "max_s": max(times),
        "outcomes": sorted(outcomes),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs per sandbox (default 10)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--image", default=SandboxConfig().image, help="Docker image to use")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    config = SandboxConfig(image=args.image, timeout_s=30)
    figures: dict[str, Any] = {"runs": args.runs, "docker_goal_median_s": DOCKER_GOAL_S}
    command = ["python3", "-I", f"{CANDIDATE_MOUNT}/main.py"]
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        work = Path(tmp)
        figures["process"] = _time_runs(
            ProcessSandbox(config), work, [sys.executable, *command[1:]], args.runs
        )
        try:
            from sandbox.docker_sandbox import DockerSandbox

            docker_sandbox = DockerSandbox(config)
        except (SandboxUnavailable, ImportError) as exc:
            figures["docker"] = None
            figures["docker_unavailable"] = str(exc)
        else:
            figures["docker"] = _time_runs(docker_sandbox, work, command, args.runs)

    rows = [("process", figures["process"])]
    if figures["docker"] is not None:
        rows.insert(0, ("docker", figures["docker"]))
        figures["ratio_docker_to_process"] = figures["docker"]["median_s"] / figures["process"]["median_s"]
    print(f"sandbox round trip, trivial candidate, {args.runs} timed runs each (after one warm-up run)")
    print(f"{'sandbox':<9} {'median s':>9} {'p90 s':>8} {'min s':>8} {'max s':>8}  outcomes")
    for name, row in rows:
        print(
            f"{name:<9} {row['median_s']:>9.3f} {row['p90_s']:>8.3f} {row['min_s']:>8.3f} "
            f"{row['max_s']:>8.3f}  {','.join(row['outcomes'])}"
        )
    if figures["docker"] is None:
        print(f"docker: not measured ({figures['docker_unavailable']})")
    else:
        verdict = "meets" if figures["docker"]["median_s"] < DOCKER_GOAL_S else "misses"
        print(
            f"docker/process median ratio: {figures['ratio_docker_to_process']:.1f}x; "
            f"docker median {verdict} the {DOCKER_GOAL_S} s goal"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
