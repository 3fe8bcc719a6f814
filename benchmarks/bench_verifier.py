"""Time of one full verification through the Docker sandbox, blame's cost, and the bare sandbox round trip.

    python benchmarks/bench_verifier.py [--runs 10] [--json PATH] [--spec scale_sim.yaml]

* **verification**: :func:`judge.verifier.verify` of the reference as a candidate folder on the spec's
  verification suite (edge_cases x its variants) with traces and without: static check, job files,
  one container running the harness over every workload twice, manifest and arrays read back,
  reports and traces diffed against the reference (computed on the host once and cached).
  Goal: median < 1 s.
* **final check**: the spec's ``final_check`` workloads alone (whole networks, report figures).
* **per stage**: a seeded network mutant is verified; the verification and the per-stage run (one
  more container: each module on the reference's inputs, on the failing workloads) are timed
  separately.  Goal: per-stage median < 1 s.
* **round trip**: ``Sandbox.run`` of a trivial candidate (``python3 -c pass``-like), for scale.

The first run of each kind is a warm-up and is not counted.  Prints figures, asserts nothing.
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

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from judge import executors, reference_runs, suites, verifier  # noqa: E402
from judge.mutants import MUTANTS, candidate_files  # noqa: E402
from sandbox import CANDIDATE_MOUNT, Sandbox, SandboxConfig, SandboxUnavailable, make_sandbox  # noqa: E402

GOAL_S = 1.0
BLAME_MUTANT = "net-os-ifmap-no-skew"


class _TimedExecutor:
    """An executor that records how long each job's sandbox run took."""

    def __init__(self, inner: executors.Executor) -> None:
        self.inner = inner
        self.run_seconds: list[float] = []

    @property
    def candidate_dir(self) -> Path | None:
        return self.inner.candidate_dir

    def run(self, job: dict[str, Any], arrays: dict[str, Any]) -> executors.Execution:
        start = time.perf_counter()
        try:
            return self.inner.run(job, arrays)
        finally:
            self.run_seconds.append(time.perf_counter() - start)


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median_s": statistics.median(ordered), "p90_s": ordered[min(len(ordered) - 1,
                                                                          math.ceil(0.9 * len(ordered)) - 1)],
            "min_s": ordered[0], "max_s": ordered[-1]}


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _verification(sandbox: Sandbox, folder: Path, suite: suites.Suite, final_check: suites.Suite, runs: int,
                  work: Path) -> dict[str, Any]:
    totals: list[float] = []
    sandbox_runs: list[float] = []
    outcomes: set[str] = set()
    for i in range(runs + 1):
        timed = _TimedExecutor(executors.SandboxExecutor(sandbox, folder, workdir=work))
        start = time.perf_counter()
        result = verifier.verify(timed, suite, final_check=final_check)
        elapsed = time.perf_counter() - start
        outcomes.add(result.outcome.value)
        if i > 0:
            totals.append(elapsed)
            sandbox_runs.append(timed.run_seconds[0])
    figures: dict[str, Any] = dict(_stats(totals))
    figures["sandbox_run_median_s"] = statistics.median(sandbox_runs)
    figures["diff_and_io_median_s"] = statistics.median(t - s for t, s in zip(totals, sandbox_runs))
    figures["outcomes"] = sorted(outcomes)
    return figures


def _blame(sandbox: Sandbox, folder: Path, suite: suites.Suite, runs: int, work: Path) -> dict[str, Any]:
    verify_s: list[float] = []
    blame_s: list[float] = []
    blamed: set[str] = set()
    for i in range(runs + 1):
        result = verifier.verify(executors.SandboxExecutor(sandbox, folder, workdir=work), suite, final_check=())
        blamed.add("+".join(result.blamed) or "-")
        if i > 0 and result.blame is not None:
            verify_s.append(result.seconds)
            blame_s.append(result.blame.seconds)
    return {"mutant": BLAME_MUTANT, "blamed": sorted(blamed), "verification": _stats(verify_s),
            "blame": _stats(blame_s)}


def _round_trip(sandbox: Sandbox, work: Path, runs: int) -> dict[str, Any]:
    cand = _write(work / "trivial", {"main.py": "import os\nopen(os.path.join(os.environ['SIMCODER_OUT'], "
                                                "'r.json'), 'w').write('{}')\n"})
    inputs = work / "trivial-inputs"
    inputs.mkdir()
    times: list[float] = []
    for i in range(runs + 1):
        start = time.perf_counter()
        sandbox.run(cand, inputs, work / f"trivial-out-{i}", ["python3", "-I", f"{CANDIDATE_MOUNT}/main.py"])
        if i > 0:
            times.append(time.perf_counter() - start)
    return _stats(times)


def _in_process(suite: suites.Suite, runs: int) -> dict[str, float]:
    modules = reference_runs.reference_modules()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        verifier.verify(executors.InProcessExecutor(modules), suite, final_check=())
        times.append(time.perf_counter() - start)
    return _stats(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each kind (default 10)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--spec", type=Path, default=suites.DEFAULT_SPEC, help="spec with the verification suite")
    parser.add_argument("--cpus", type=float, default=2.0, help="CPUs of the sandbox container (default 2)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    suite = suites.load_suite(args.spec)
    try:
        sandbox = make_sandbox(SandboxConfig(timeout_s=60, cpus=args.cpus), kind="docker")
    except SandboxUnavailable as exc:
        print(f"Docker sandbox unavailable: {exc}")
        return 1
    final_check = suites.load_final_check(args.spec)
    for workload in suite:
        reference_runs.reference_run(workload, True)
    for workload in final_check:
        reference_runs.reference_run(workload, False)
    mutant = next(m for m in MUTANTS if m.id == BLAME_MUTANT)
    figures: dict[str, Any] = {"runs": args.runs, "goal_median_s": GOAL_S, "cpus": args.cpus,
                               "workloads": len(suite), "layers": sum(len(w.layers) for w in suite)}
    with tempfile.TemporaryDirectory(prefix="bench-verifier-") as tmp:
        work = Path(tmp)
        (work / "runs").mkdir()
        reference = _write(work / "reference", candidate_files())
        figures["verification"] = _verification(sandbox, reference, suite, (), args.runs, work / "runs")
        figures["final_check"] = _verification(sandbox, reference, (), final_check, args.runs, work / "runs")
        figures["blame"] = _blame(sandbox, _write(work / "mutant", candidate_files(mutant)), suite,
                                  max(1, args.runs // 2), work / "runs")
        figures["round_trip"] = _round_trip(sandbox, work, args.runs)
    figures["in_process_verification"] = _in_process(suite, args.runs)

    v, b = figures["verification"], figures["blame"]
    print(f"suite: {figures['workloads']} workloads, {figures['layers']} layers; {args.runs} timed runs "
          f"(after one warm-up); container cpus={args.cpus}")
    print(f"{'what':<44} {'median s':>9} {'p90 s':>8} {'min s':>8} {'max s':>8}")
    rows = [
        ("verification of the reference (Docker)", v),
        (f"  verification of {BLAME_MUTANT} (Docker)", b["verification"]),
        (f"  per-stage run of {BLAME_MUTANT} (Docker)", b["blame"]),
        ("final check alone (Docker)", figures["final_check"]),
        ("sandbox round trip, trivial candidate", figures["round_trip"]),
        ("verification of the reference (in-process)", figures["in_process_verification"]),
    ]
    for name, row in rows:
        print(f"{name:<44} {row['median_s']:>9.3f} {row['p90_s']:>8.3f} {row['min_s']:>8.3f} {row['max_s']:>8.3f}")
    print(f"verification median: sandbox run {v['sandbox_run_median_s']:.3f} s + diff and reading "
          f"{v['diff_and_io_median_s']:.3f} s; outcomes {','.join(v['outcomes'])}; blamed {','.join(b['blamed'])}")
    for what, median in (("verification", v["median_s"]), ("per-stage run", b["blame"]["median_s"])):
        verdict = "meets" if median < GOAL_S else "misses"
        print(f"{what} median {median:.3f} s {verdict} the {GOAL_S} s goal")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
