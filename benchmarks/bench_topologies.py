"""Time and peak memory of the reference simulator on every SCALE-Sim topology, one process per run.

    python benchmarks/bench_topologies.py                      # all topologies, scale.cfg + eyeriss.cfg, CALC + USER
    python benchmarks/bench_topologies.py --mode CALC          # CALC bandwidth only
    python benchmarks/bench_topologies.py --filter conv_nets/  # topologies whose path contains the text
    python benchmarks/bench_topologies.py --quick              # a handful of small topologies (CI)

Every topology under ``scalesim/topologies/`` of the shared folder runs with ``configs/scale.cfg``
and ``configs/eyeriss.cfg``, in CALC mode (the configs as they are) and in USER mode (the same
config with ``InterfaceBandwidth: USER`` and ``Bandwidth: 10``).  Each run is its own process,
``python -m reference_sim -c CFG -t TOPOLOGY -p <tmp> -q`` (``-i gemm`` when the topology's header
is ``M, N, K``), killed after ``--timeout`` seconds.  Wall time runs from spawn to reap; peak RSS
is the child's ``ru_maxrss`` from ``os.wait4``.

A run's status is ``ok``, ``over 1 GiB`` (finished, but its peak RSS reached 1 GiB), ``timeout``,
``limit`` (refused with the simulator's one-line work-limit error), ``traceback`` or ``error``
(another non-zero exit; the message is its last stderr line).  Times are printed, never asserted.
The exit code is 1 when a run is neither ``ok`` nor ``limit``; with ``--quick``, only when a run
ends with neither exit code 0 nor the one-line limit error.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_reference import REPO_ROOT, default_shared, format_table, machine
from reference_sim.errors import InputError
from reference_sim.scalesim_io import read_config, read_topology
from taskbench.processes import ProcessRun, run_process, stop_children_on_sigterm

CONFIGS = ("scale.cfg", "eyeriss.cfg")
MODES = ("CALC", "USER")
USER_WORDS_PER_CYCLE = 10
RSS_LIMIT_MIB = 1024.0
LIMIT_MARK = "--max-requests"
"""Every work-limit error names the flag that raises the limit; no other error does."""
QUICK_TOPOLOGIES = (
    "conv_nets/test.csv",
    "GEMM_mnk/test_mnk_input.csv",
    "mlperf/div256q/AlphaGoZero.csv",
)


@dataclass(frozen=True)
class Run:
    """One whole-process run of one topology on one configuration."""

    topology: str
    config: str
    mode: str
    layers: int | None
    seconds: float
    max_rss_mib: float
    returncode: int | None
    """``None`` when the run was killed at the timeout."""
    status: str
    message: str = ""

    @property
    def acceptable(self) -> bool:
        return self.status in ("ok", "limit")

    @property
    def ended_cleanly(self) -> bool:
        """Exit code 0, or the one-line work-limit error."""
        return self.returncode == 0 or self.status == "limit"


def topology_kind(path: Path) -> str:
    """``gemm`` when the header's columns after the name are ``M, N, K``, else ``conv``."""
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline()
    fields = [f.strip().upper() for f in header.split(",")]
    return "gemm" if fields[1:4] == ["M", "N", "K"] else "conv"


def topologies(root: Path, filter_text: str | None = None) -> list[Path]:
    """Every ``.csv`` under ``root``, sorted by relative path, optionally only those containing ``filter_text``."""
    found = sorted(root.rglob("*.csv"), key=lambda p: p.relative_to(root).as_posix())
    return [p for p in found if filter_text is None or filter_text in p.relative_to(root).as_posix()]


def user_config_text(text: str, words_per_cycle: int = USER_WORDS_PER_CYCLE) -> str:
    """The config with ``InterfaceBandwidth: USER`` and ``Bandwidth: words_per_cycle``."""
    text, modes = re.subn(r"(?im)^\s*InterfaceBandwidth\s*[:=].*$", "InterfaceBandwidth: USER", text)
    text, bandwidths = re.subn(r"(?im)^\s*Bandwidth\s*[:=].*$", f"Bandwidth: {words_per_cycle}", text)
    if not bandwidths:
        text, bandwidths = re.subn(r"(?im)^\s*\[architecture_presets\]\s*$",
                                   f"[architecture_presets]\nBandwidth: {words_per_cycle}", text)
    if modes != 1 or bandwidths != 1:
        raise ValueError("config needs one [run_presets] InterfaceBandwidth and one [architecture_presets] section")
    return text


def config_for(config: Path, mode: str, work: Path) -> Path:
    """``config`` itself for CALC; for USER, a copy in ``work`` switched to USER bandwidth."""
    if mode == "CALC":
        return config
    path = work / f"{config.stem}-user{USER_WORDS_PER_CYCLE}.cfg"
    if not path.is_file():
        path.write_text(user_config_text(config.read_text()))
        hardware = read_config(path).hardware
        assert hardware.bandwidth_mode == "USER" and hardware.dram_words_per_cycle == USER_WORDS_PER_CYCLE
    return path


def layer_count(topology: Path, kind: str) -> int | None:
    try:
        return len(read_topology(topology, kind))  # type: ignore[arg-type]
    except InputError:
        return None


def classify(finished: ProcessRun) -> tuple[str, str]:
    """Status and message of a finished run."""
    lines = [line for line in finished.stderr.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    if finished.timed_out:
        return "timeout", ""
    if finished.returncode == 0:
        return ("ok" if finished.max_rss_kib / 1024 < RSS_LIMIT_MIB else "over 1 GiB"), ""
    if "Traceback (most recent call last)" in finished.stderr:
        return "traceback", last
    errors = [line for line in lines if line.startswith("error:")]
    if len(errors) == 1 and LIMIT_MARK in errors[0]:
        return "limit", errors[0]
    return "error", last or f"exit code {finished.returncode}"


def run_one(topology: Path, root: Path, config: Path, mode: str, work: Path, timeout_s: float | None,
            sim_root: Path = REPO_ROOT) -> Run:
    kind = topology_kind(topology)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "reference_sim", "-c", str(config_for(config, mode, work)), "-t", str(topology),
               "-p", str(out), "-q"] + (["-i", "gemm"] if kind == "gemm" else [])
    finished = run_process(command, sim_root, timeout_s)
    shutil.rmtree(out, ignore_errors=True)
    status, message = classify(finished)
    return Run(topology.relative_to(root).as_posix(), config.name, mode, layer_count(topology, kind),
               finished.seconds, finished.max_rss_mib, None if finished.timed_out else finished.returncode,
               status, message)


def runs_table(runs: Iterable[Run]) -> str:
    rows = [[r.topology, r.config, r.mode, "-" if r.layers is None else r.layers, f"{r.seconds:.2f}",
             f"{r.max_rss_mib:.0f}", r.status + (f": {r.message}" if r.message else "")] for r in runs]
    return format_table(("topology", "config", "mode", "layers", "seconds", "peak RSS (MiB)", "status"), rows)


def summary(runs: Sequence[Run]) -> str:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    worst = max(runs, key=lambda r: r.max_rss_mib, default=None)
    slowest = max(runs, key=lambda r: r.seconds, default=None)
    parts = [f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    if worst is not None and slowest is not None:
        parts.append(f"highest peak RSS {worst.max_rss_mib:.0f} MiB ({worst.topology}, {worst.config} {worst.mode})")
        parts.append(f"slowest {slowest.seconds:.2f} s ({slowest.topology}, {slowest.config} {slowest.mode})")
        parts.append(f"total {sum(r.seconds for r in runs):.1f} s")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=None,
                        help="the shared folder holding scalesim/ (default $SIMCODER_SHARED or ../shared)")
    parser.add_argument("--mode", choices=("CALC", "USER", "both"), default="both", help="bandwidth mode(s)")
    parser.add_argument("--config", choices=CONFIGS, action="append", default=None,
                        help="run only this config (repeatable; default both)")
    parser.add_argument("--filter", metavar="SUBSTR", default=None,
                        help="only topologies whose path under topologies/ contains SUBSTR")
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="kill a run after S seconds")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1: times stay comparable)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every run as JSON")
    parser.add_argument("--sim-root", type=Path, default=REPO_ROOT, metavar="DIR",
                        help="run the reference_sim package found in DIR (default this repository), "
                             "e.g. a copy of an older version")
    parser.add_argument("--quick", action="store_true",
                        help=f"only {len(QUICK_TOPOLOGIES)} small topologies; fail only on a run that ends with "
                             "neither exit 0 nor the one-line limit error")
    args = parser.parse_args(argv)
    logging.getLogger("reference_sim").setLevel(logging.ERROR)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout is not None and args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    data = (args.shared or default_shared()) / "scalesim"
    root = data / "topologies"
    if not root.is_dir():
        print(f"error: SCALE-Sim topologies not found at {root} (pass --shared or set SIMCODER_SHARED)",
              file=sys.stderr)
        return 2
    paths = topologies(root, args.filter)
    if args.quick:
        paths = [p for p in paths if p.relative_to(root).as_posix() in QUICK_TOPOLOGIES]
    if not paths:
        print(f"error: no topology under {root} matches --filter {args.filter!r}", file=sys.stderr)
        return 2
    modes = MODES if args.mode == "both" else (args.mode,)
    configs = [data / "configs" / name for name in (args.config or CONFIGS)]
    plan = [(t, c, m) for m in modes for c in configs for t in paths]
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, numpy {info['numpy']}, "
          f"commit {info['commit']}, {info['date_utc']} UTC, load {info['load_average_1min']}")
    print(f"{len(plan)} runs ({len(paths)} topologies x {len(configs)} configs x {len(modes)} modes), "
          f"{args.jobs} at a time, timeout {args.timeout or 'none'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-topologies-") as tmp:
        work = Path(tmp)

        def task(index: int) -> Run:
            topology, config, mode = plan[index]
            folder = work / str(index)
            folder.mkdir()
            try:
                return run_one(topology, root, config, mode, folder, args.timeout, args.sim_root.resolve())
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        if args.jobs == 1:
            runs = []
            for index in range(len(plan)):
                run = task(index)
                runs.append(run)
                print(f"  {run.topology} {run.config} {run.mode}: {run.seconds:.2f} s, {run.max_rss_mib:.0f} MiB, "
                      f"{run.status}", flush=True)
        else:
            with ThreadPoolExecutor(args.jobs) as pool:
                runs = list(pool.map(task, range(len(plan))))
    print()
    print(runs_table(runs))
    print()
    print(summary(runs))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "timeout_s": args.timeout,
                                         "runs": [asdict(r) for r in runs]}, indent=1) + "\n")
        print(f"wrote {args.json}")
    failed = [r for r in runs if not (r.ended_cleanly if args.quick else r.acceptable)]
    for r in failed:
        print(f"FAILED {r.topology} {r.config} {r.mode}: {r.status}" + (f": {r.message}" if r.message else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    stop_children_on_sigterm()
    sys.exit(main())
