"""How fast the reference simulator is against SCALE-Sim v2, and whether it still gets the same numbers.

    python benchmarks/bench_reference.py                    # full run: Table 2, stall cases, traces, sweep
    python benchmarks/bench_reference.py --quick            # two networks, two stall cases, a tiny sweep (CI)
    python benchmarks/bench_reference.py --scalesim NCF     # side by side with PyPI scalesim 2.0.2
    python benchmarks/bench_reference.py --json out.json    # also write every figure as JSON

Default mode:

Every process and trace measurement runs ``--repeat`` times (default 3) and the median is reported.

* **Table 2**: each of the eight networks runs as its own process, ``python -m reference_sim -c
  scale.cfg -t <Name>.csv -p <tmp> -q`` (three reports written, traces off, a fresh output folder
  each time), one process at a time.  Wall time and the child's peak RSS (``os.wait4``) are
  measured; every layer's total and stall cycles in the written ``COMPUTE_REPORT.csv`` must equal
  SCALE-Sim's (``table2.json``).  Ratios are against SCALE-Sim's recorded whole-process times.
* **Stall cases**: the five golden cases SCALE-Sim took longest on, each as a process; all three
  written reports must equal SCALE-Sim's (integers exactly, floats to 1e-9 relative).
* **Traces**: rows per second of the six traces, in process, for the golden case with the most cycles.
* **Sweep**: configurations per second of :mod:`reference_sim.sweep` over ResNet50 on all cores.

Targets are printed with whether each is met; times are never asserted.  The exit code is 1 only
when numbers differ from SCALE-Sim (or a run fails), 0 otherwise.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_sim import Hardware, read_config, read_topology, simulate
from reference_sim.compare import compare_reports
from reference_sim.reports import write_traces
from reference_sim.sweep import grid, sweep
from taskbench.processes import run_process, stop_children_on_sigterm
from taskbench.scalesim import (
    SCALESIM_VERSION,
    bandwidth_label,
    cycles_difference,
    our_command,
    ratio,
    read_cycles,
    recorded_scalesim,
    side_by_side,
    variant_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_TOTAL_RATIO = 1000.0
TARGET_NETWORK_RATIO = 300.0
TARGET_STALL_RATIO = 100.0
TARGET_RSS_MIB = 1024.0
TARGET_USER_RATIO = 100.0
TARGET_CALC_RATIO = 300.0
QUICK_NETWORKS = ("NCF", "AlphaGoZero")
STALL_CASES = 5
QUICK_STALL_CASES = 2
SWEEP_NETWORK = "ResNet50"
SWEEP_GRID: dict[str, Any] = {
    "arrays": [(16, 16), (32, 32), (64, 64)],
    "sram_kib": [(32, 32, 32), (64, 64, 64)],
    "dataflows": ["os", "ws", "is"],
}
QUICK_SWEEP_GRID: dict[str, Any] = {"arrays": [(32, 32)], "dataflows": ["os", "ws"]}
QUICK_TRACE_MAX_CYCLES = 500_000


# ----------------------------------------------------------------------------------------- helpers


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table; the first column left-aligned, the others right-aligned."""
    text = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([line(text[0]), "  ".join("-" * w for w in widths), *(line(r) for r in text[1:])])


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def seconds_text(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:,.1f}"


def ratio_text(value: float) -> str:
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1f}x"


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool


def format_targets(targets: Sequence[Target]) -> str:
    return format_table(("target", "goal", "measured", "met"),
                        [(t.name, t.goal, t.measured, t.met) for t in targets])


def machine() -> dict[str, Any]:
    """CPU model, cores, Python and numpy versions, OS."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "commit": commit or "unknown",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def default_shared() -> Path:
    return Path(os.environ.get("SIMCODER_SHARED", REPO_ROOT.parent / "shared"))


def measure(command: Sequence[str], out: Path, repeat: int,
            check: Callable[[], str | None]) -> tuple[list[float], float, str | None]:
    """Run ``command`` ``repeat`` times into a fresh ``out``; every run's seconds, the peak RSS (MiB) over all
    runs, and the first difference ``check`` (or a failed run) reports."""
    times: list[float] = []
    rss = 0.0
    difference: str | None = None
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        run = run_process(command, cwd=REPO_ROOT)
        times.append(run.seconds)
        rss = max(rss, run.max_rss_mib)
        if difference is None:
            difference = f"exit code {run.returncode}: {run.stderr_tail.strip()}" if run.returncode else check()
    shutil.rmtree(out, ignore_errors=True)
    return times, rss, difference


# ------------------------------------------------------------------------------------------ Table 2


@dataclass
class NetworkRun:
    name: str
    layers: int
    seconds: float
    scalesim_seconds: float
    max_rss_mib: float
    cycles_equal: bool
    difference: str | None = None
    all_seconds: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return ratio(self.scalesim_seconds, self.seconds)


def run_network(name: str, entry: dict[str, Any], data: Path, work: Path, repeat: int = 1) -> NetworkRun:
    """``repeat`` whole-process runs of one Table-2 network: median time, peak RSS, cycles checked every run."""
    config = data / "configs" / "scale.cfg"
    out = work / f"ours-{name}"
    report = out / read_config(config).run_name / "COMPUTE_REPORT.csv"

    def check() -> str | None:
        if not report.is_file():
            return "COMPUTE_REPORT.csv not written"
        return cycles_difference(read_cycles(report), entry["cycles"], entry["stall_cycles"])

    times, rss, difference = measure(our_command(config, data / "table2" / f"{name}.csv", out), out, repeat, check)
    return NetworkRun(name, int(entry["layers"]), statistics.median(times), float(entry["scalesim_seconds"]), rss,
                      difference is None, difference, times)


def network_table(runs: Sequence[NetworkRun]) -> str:
    rows: list[list[object]] = [[r.name, r.layers, seconds_text(r.seconds), seconds_text(r.scalesim_seconds),
                                 ratio_text(r.ratio), f"{r.max_rss_mib:.0f}", r.cycles_equal] for r in runs]
    ours = sum(r.seconds for r in runs)
    theirs = sum(r.scalesim_seconds for r in runs)
    rows.append(["total", sum(r.layers for r in runs), seconds_text(ours), seconds_text(theirs),
                 ratio_text(ratio(theirs, ours)), f"{max((r.max_rss_mib for r in runs), default=0.0):.0f}",
                 all(r.cycles_equal for r in runs)])
    return format_table(("network", "layers", "ours (s)", "SCALE-Sim (s)", "ratio", "peak RSS (MiB)",
                         "cycles equal"), rows)


# -------------------------------------------------------------------------------------- stall cases


@dataclass
class StallRun:
    case: str
    kind: str
    total_cycles: int
    seconds: float
    scalesim_seconds: float
    max_rss_mib: float
    reports_equal: bool
    difference: str | None = None
    all_seconds: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return ratio(self.scalesim_seconds, self.seconds)


def slowest_cases(data: Path, count: int) -> list[tuple[str, dict[str, Any]]]:
    cases = [(p.parent.name, json.loads(p.read_text())) for p in (data / "golden").glob("*/case.json")]
    cases.sort(key=lambda c: (-float(c[1]["scalesim_seconds"]), c[0]))
    return cases[:count]


def run_stall_case(case: str, meta: dict[str, Any], data: Path, work: Path, repeat: int = 1) -> StallRun:
    """``repeat`` whole-process runs of one golden case: median time, peak RSS, all three reports checked."""
    folder = data / "golden" / case
    out = work / f"ours-{case}"
    gemm = meta["layer"]["kind"] == "gemm"
    written = out / read_config(folder / "scale.cfg").run_name
    command = our_command(folder / "scale.cfg", folder / "topology.csv", out, gemm)
    times, rss, difference = measure(command, out, repeat, lambda: compare_reports(folder, written))
    return StallRun(case, meta["layer"]["kind"], int(meta["total_cycles"]), statistics.median(times),
                    float(meta["scalesim_seconds"]), rss, difference is None, difference, times)


def stall_table(runs: Sequence[StallRun]) -> str:
    return format_table(
        ("case", "kind", "cycles", "ours (s)", "SCALE-Sim (s)", "ratio", "peak RSS (MiB)", "reports equal"),
        [[r.case, r.kind, f"{r.total_cycles:,}", seconds_text(r.seconds), seconds_text(r.scalesim_seconds),
          ratio_text(r.ratio), f"{r.max_rss_mib:.0f}", r.reports_equal] for r in runs],
    )


# ----------------------------------------------------------------- every dataflow, USER bandwidth


DATAFLOWS = ("os", "ws", "is")
USER_WORDS_PER_CYCLE = 10
QUICK_VARIANTS: tuple[tuple[str, str, int | None], ...] = (
    ("NCF", "ws", None), ("NCF", "os", USER_WORDS_PER_CYCLE), ("AlphaGoZero", "os", USER_WORDS_PER_CYCLE),
    ("AlphaGoZero", "is", USER_WORDS_PER_CYCLE))


@dataclass
class VariantRun:
    """One Table-2 network on one dataflow and bandwidth mode, as whole processes."""

    network: str
    dataflow: str
    bandwidth: str
    layers: int
    seconds: float
    max_rss_mib: float
    scalesim_seconds: float | None
    """SCALE-Sim's whole-process time where known (recorded in ``../shared``, or run side by side)."""
    scalesim_finished: bool
    """False when SCALE-Sim was stopped at its timeout: ``scalesim_seconds`` is then a lower bound."""
    reports_equal: bool | None
    """All three reports equal SCALE-Sim's; ``None`` where there are no SCALE-Sim reports to compare with."""
    difference: str | None = None
    all_seconds: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return None if self.scalesim_seconds is None else ratio(self.scalesim_seconds, self.seconds)


def run_variant(name: str, dataflow: str, words_per_cycle: int | None, data: Path, work: Path,
                repeat: int = 1) -> VariantRun:
    """``repeat`` whole-process runs; all three reports compared with SCALE-Sim's where ``../shared`` has them."""
    config = variant_config(data, work, dataflow, words_per_cycle)
    out = work / f"variant-{name}-{dataflow}-{bandwidth_label(words_per_cycle).replace(':', '')}"
    written = out / read_config(config).run_name
    topology = data / "table2" / f"{name}.csv"
    known = recorded_scalesim(data, name, dataflow, words_per_cycle)

    def check() -> str | None:
        if known is not None:
            return compare_reports(known[0], written)
        return None if (written / "COMPUTE_REPORT.csv").is_file() else "COMPUTE_REPORT.csv not written"

    times, rss, difference = measure(our_command(config, topology, out), out, repeat, check)
    return VariantRun(name, dataflow, bandwidth_label(words_per_cycle), len(read_topology(topology)),
                      statistics.median(times), rss, None if known is None else known[1], True,
                      None if known is None and difference is None else difference is None, difference, times)


def variant_table(runs: Sequence[VariantRun]) -> str:
    def scalesim(r: VariantRun) -> str:
        if r.scalesim_seconds is None:
            return "-"
        return seconds_text(r.scalesim_seconds) if r.scalesim_finished else f"> {seconds_text(r.scalesim_seconds)}"

    def ratio_cell(r: VariantRun) -> str:
        if r.ratio is None:
            return "-"
        return ratio_text(r.ratio) if r.scalesim_finished else f"> {ratio_text(r.ratio)}"

    return format_table(
        ("network", "dataflow", "bandwidth", "layers", "ours (s)", "peak RSS (MiB)", "SCALE-Sim (s)", "ratio",
         "reports equal"),
        [[r.network, r.dataflow, r.bandwidth, r.layers, seconds_text(r.seconds), f"{r.max_rss_mib:.0f}",
          scalesim(r), ratio_cell(r), "-" if r.reports_equal is None else r.reports_equal] for r in runs])


# ------------------------------------------------------------------------------------ traces, sweep


def trace_throughput(data: Path, work: Path, max_cycles: int | None, repeat: int = 1) -> dict[str, Any]:
    """Six traces of the golden case with the most cycles (at most ``max_cycles``), in process (median of
    ``repeat`` runs; ``traces.npz`` written once)."""
    cases = [(p.parent.name, json.loads(p.read_text())) for p in (data / "golden").glob("*/case.json")]
    eligible = [c for c in cases if max_cycles is None or int(c[1]["total_cycles"]) <= max_cycles]
    case, meta = max(eligible, key=lambda c: (int(c[1]["total_cycles"]), c[0]))
    folder = data / "golden" / case
    hardware = read_config(folder / "scale.cfg").hardware
    layers = read_topology(folder / "topology.csv", "gemm" if meta["layer"]["kind"] == "gemm" else "conv")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        results = simulate(layers, hardware, traces=True)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    rows = 0
    for result in results:
        assert result.traces is not None
        rows += sum(int(a.shape[0]) for a in result.traces.as_dict().values())
    start = time.perf_counter()
    for result in results:
        assert result.traces is not None
        write_traces(result.traces, work / f"traces-{case}" / f"layer{result.index}", csv=False, binary=True)
    npz_seconds = time.perf_counter() - start
    shutil.rmtree(work / f"traces-{case}", ignore_errors=True)
    return {"case": case, "total_cycles": int(meta["total_cycles"]), "rows": rows, "seconds": seconds,
            "all_seconds": times,
            "rows_per_second": rows / seconds, "npz_write_seconds": npz_seconds,
            "rows_per_second_with_npz": rows / (seconds + npz_seconds)}


def sweep_throughput(data: Path, axes: dict[str, Any], jobs: int) -> dict[str, Any]:
    layers = read_topology(data / "table2" / f"{SWEEP_NETWORK}.csv")
    base = read_config(data / "configs" / "scale.cfg").hardware
    configs: list[Hardware] = grid(base, **axes)
    start = time.perf_counter()
    rows = sweep(layers, configs, jobs=jobs)
    seconds = time.perf_counter() - start
    return {"network": SWEEP_NETWORK, "layers": len(layers), "configurations": len(configs), "rows": len(rows),
            "jobs": jobs, "seconds": seconds, "configurations_per_second": len(configs) / seconds,
            "grid": {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in axes.items()}}


# ------------------------------------------------------------------------------------- side by side


def compile_bytecode(folders: Sequence[Path]) -> None:
    """Compile the simulators' sources to bytecode before timing them, as ``pip install`` does: with
    ``PYTHONDONTWRITEBYTECODE`` set, every process would otherwise compile them again."""
    for folder in folders:
        if not compileall.compile_dir(str(folder), quiet=1):
            raise RuntimeError(f"{folder}: compileall failed")


def side_by_side_table(results: Sequence[dict[str, Any]]) -> str:
    def bound(r: dict[str, Any], text: str) -> str:
        return text if r["scalesim_finished"] else f"> {text}"

    def checked(r: dict[str, Any]) -> str:
        if r["scalesim_finished"]:
            return "-" if r["reports_equal"] is None else str(r["reports_equal"])
        if r["problems"]:
            return "False"
        if not r["layers_checked"]:
            return "no layer done"
        return f"{r['layers_checked']} of {r['layers']} layers equal (as printed)"

    return format_table(
        ("network", "dataflow", "bandwidth", "ours (s)", "SCALE-Sim (s)", "ratio",
         "ours RSS (MiB)", "SCALE-Sim RSS (MiB)", "cycles equal", "reports equal"),
        [[f"{r['network']} ({r['scalesim_version']})", r["dataflow"], r["bandwidth"], seconds_text(r["ours_seconds"]),
          bound(r, seconds_text(r["scalesim_seconds"])), bound(r, ratio_text(r["ratio"])),
          f"{r['ours_max_rss_mib']:.0f}", f"{r['scalesim_max_rss_mib']:.0f}",
          "-" if r["cycles_equal"] is None else r["cycles_equal"], checked(r)] for r in results],
    )


# --------------------------------------------------------------------------------------------- main


@dataclass
class Report:
    machine: dict[str, Any]
    mode: str
    repeat: int = 1
    networks: list[NetworkRun] = field(default_factory=list)
    variants: list[VariantRun] = field(default_factory=list)
    stall_cases: list[StallRun] = field(default_factory=list)
    traces: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    sweep_rates: dict[str, Any] = field(default_factory=dict)
    topologies: dict[str, Any] = field(default_factory=dict)
    side_by_side: list[dict[str, Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for run, item in zip(self.networks, data["networks"]):
            item["ratio"] = run.ratio
        for stall, item in zip(self.stall_cases, data["stall_cases"]):
            item["ratio"] = stall.ratio
        for variant, item in zip(self.variants, data["variants"]):
            item["ratio"] = variant.ratio
        if self.networks:
            ours = sum(r.seconds for r in self.networks)
            theirs = sum(r.scalesim_seconds for r in self.networks)
            data["networks_total"] = {"seconds": ours, "scalesim_seconds": theirs, "ratio": ratio(theirs, ours)}
        return data


def variant_targets(variants: Sequence[VariantRun]) -> list[Target]:
    """Speed-up per network and dataflow where SCALE-Sim's time is known, peak RSS, and report equality."""
    targets = []
    for mode, goal in (("USER", TARGET_USER_RATIO), ("CALC", TARGET_CALC_RATIO)):
        runs = [r for r in variants if r.bandwidth.startswith(mode)]
        timed = [r for r in runs if r.ratio is not None]
        if timed:
            worst = min(timed, key=lambda r: r.ratio or 0.0)
            targets.append(Target(
                f"{mode} speed-up, {len(timed)} of {len(runs)} timed", f">= {goal:,.0f}x",
                f"lowest {worst.ratio or 0.0:,.0f}x ({worst.network} {worst.dataflow})",
                (worst.ratio or 0.0) >= goal))
        if runs:
            heaviest = max(runs, key=lambda r: r.max_rss_mib)
            targets.append(Target(f"{mode} peak RSS per process", f"< {TARGET_RSS_MIB:,.0f} MiB",
                                  f"{heaviest.max_rss_mib:.0f} MiB ({heaviest.network} {heaviest.dataflow})",
                                  heaviest.max_rss_mib < TARGET_RSS_MIB))
    compared = [r for r in variants if r.reports_equal is not None]
    if compared:
        equal = sum(bool(r.reports_equal) for r in compared)
        targets.append(Target("reports equal SCALE-Sim's", "all", f"{equal}/{len(compared)} runs",
                              equal == len(compared)))
    return targets


def evaluate_targets(networks: Sequence[NetworkRun], stalls: Sequence[StallRun],
                     scalesim_total: float | None, variants: Sequence[VariantRun] = ()) -> list[Target]:
    """The issue's targets, each with what was measured and whether it is met."""
    targets = []
    if networks:
        ours = sum(r.seconds for r in networks)
        theirs = scalesim_total if scalesim_total is not None else sum(r.scalesim_seconds for r in networks)
        total = ratio(theirs, ours)
        targets.append(Target("Table 2 total speed-up", f">= {TARGET_TOTAL_RATIO:,.0f}x",
                              f"{total:,.0f}x ({theirs:.1f} s / {ours:.2f} s)", total >= TARGET_TOTAL_RATIO))
        worst = min(networks, key=lambda r: r.ratio)
        targets.append(Target("every network's speed-up", f">= {TARGET_NETWORK_RATIO:,.0f}x",
                              f"lowest {worst.ratio:,.0f}x ({worst.name})", worst.ratio >= TARGET_NETWORK_RATIO))
    runs_rss = [(r.name, r.max_rss_mib) for r in networks] + [(s.case, s.max_rss_mib) for s in stalls]
    if runs_rss:
        name, rss = max(runs_rss, key=lambda x: x[1])
        targets.append(Target("peak RSS per process", f"< {TARGET_RSS_MIB:,.0f} MiB", f"{rss:.0f} MiB ({name})",
                              rss < TARGET_RSS_MIB))
    if networks:
        equal = sum(r.cycles_equal for r in networks)
        targets.append(Target("Table 2 cycles equal", "all layers", f"{equal}/{len(networks)} networks",
                              equal == len(networks)))
    if stalls:
        slowest = max(stalls, key=lambda s: s.scalesim_seconds)
        targets.append(Target("slowest stall case speed-up", f">= {TARGET_STALL_RATIO:,.0f}x",
                              f"{slowest.ratio:,.0f}x ({slowest.case})", slowest.ratio >= TARGET_STALL_RATIO))
        equal = sum(s.reports_equal for s in stalls)
        targets.append(Target("stall case reports equal", "all", f"{equal}/{len(stalls)} cases",
                              equal == len(stalls)))
    return targets + variant_targets(variants)


def print_machine(info: dict[str, Any]) -> None:
    print(f"machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, numpy {info['numpy']}; "
          f"{info['platform']}; commit {info['commit']}; {info['date_utc']} UTC; "
          f"load average {info['load_average_1min']:.2f} at start")


def warm_up(data: Path, work: Path, name: str) -> None:
    """One untimed run of network ``name``, so the first timed process does not pay for cold file caches
    (the first runs of a session took 0.17 s where later ones took 0.12 to 0.13 s)."""
    out = work / "warm-up"
    run_process(our_command(data / "configs" / "scale.cfg", data / "table2" / f"{name}.csv", out), cwd=REPO_ROOT)
    shutil.rmtree(out, ignore_errors=True)


def run_benchmark(data: Path, quick: bool, jobs: int, work: Path, repeat: int) -> tuple[Report, bool]:
    """Everything but side by side; returns the report and whether all numbers agreed with SCALE-Sim."""
    table2 = json.loads((data / "table2.json").read_text())
    report = Report(machine(), "quick" if quick else "full", repeat)
    print_machine(report.machine)
    print(f"each time is the median of {repeat} run{'s' if repeat > 1 else ''}")
    names = list(QUICK_NETWORKS) if quick else list(table2["networks"])
    warm_up(data, work, names[0])
    print(f"\nTable 2 on configs/scale.cfg: one process per network, `python -m reference_sim ... -q` "
          f"(SCALE-Sim times recorded by {table2['simulator']}; one untimed run of {names[0]} first)", flush=True)
    for name in names:
        report.networks.append(run_network(name, table2["networks"][name], data, work, repeat))
    print(network_table(report.networks))
    if not quick:
        print(f"SCALE-Sim recorded total: {table2['scalesim_total_seconds']} s; "
              f"ours: {sum(r.seconds for r in report.networks):.2f} s")

    variants = list(QUICK_VARIANTS) if quick else [
        (name, dataflow, words) for words in (None, USER_WORDS_PER_CYCLE) for name in table2["networks"]
        for dataflow in DATAFLOWS if words is not None or dataflow != "os"]
    print("\nEvery dataflow and USER bandwidth (10 words per cycle): configs/scale.cfg with Dataflow and "
          "InterfaceBandwidth changed, one process per run; reports compared where ../shared has SCALE-Sim's "
          "(OS), SCALE-Sim times where recorded (else run --scalesim side by side)", flush=True)
    for name, dataflow, words in variants:
        report.variants.append(run_variant(name, dataflow, words, data, work, repeat))
    print(variant_table(report.variants))

    count = QUICK_STALL_CASES if quick else STALL_CASES
    print(f"\nStall cases: the {count} golden cases SCALE-Sim took longest on, one process each, all three "
          "reports compared", flush=True)
    for case, meta in slowest_cases(data, count):
        report.stall_cases.append(run_stall_case(case, meta, data, work, repeat))
    print(stall_table(report.stall_cases))

    print("\nTraces: simulate(..., traces=True) in process, six traces", flush=True)
    report.traces = trace_throughput(data, work, QUICK_TRACE_MAX_CYCLES if quick else None, repeat)
    t = report.traces
    print(f"{t['case']} ({t['total_cycles']:,} cycles): {t['rows']:,} rows in {t['seconds']:.2f} s = "
          f"{t['rows_per_second']:,.0f} rows/s; with traces.npz written (+{t['npz_write_seconds']:.2f} s): "
          f"{t['rows_per_second_with_npz']:,.0f} rows/s")

    axes = QUICK_SWEEP_GRID if quick else SWEEP_GRID
    print(f"\nSweep over {SWEEP_NETWORK} ({jobs} jobs)", flush=True)
    report.sweep = sweep_throughput(data, axes, jobs)
    s = report.sweep
    print(f"{s['configurations']} configurations x {s['layers']} layers ({s['grid']}, CALC): {s['seconds']:.2f} s = "
          f"{s['configurations_per_second']:.2f} configurations/s")

    print(f"\nSweep rates: benchmarks/bench_sweep.py{' --quick' if quick else ''} ({jobs} jobs)", flush=True)
    report.sweep_rates, sweep_ok = companion("bench_sweep.py", data, work, ["--jobs", str(jobs)], quick)
    if quick:
        print("\nBig topologies: benchmarks/bench_topologies.py --quick", flush=True)
        report.topologies, topologies_ok = companion("bench_topologies.py", data, work, [], quick)
    else:
        topologies_ok = True
        print("\nBig topologies: every topology under topologies/ with scale.cfg and eyeriss.cfg, both bandwidth "
              "modes, time and peak RSS: run benchmarks/bench_topologies.py (about an hour; not part of this run)")

    total = None if quick else float(table2["scalesim_total_seconds"])
    report.targets = evaluate_targets(report.networks, report.stall_cases, total, report.variants)
    print("\nTargets" + (" (quick run: a subset, for information)" if quick else ""))
    print(format_targets(report.targets))
    differences = [f"{r.name}: {r.difference}" for r in report.networks if r.difference] + \
                  [f"{s.case}: {s.difference}" for s in report.stall_cases if s.difference] + \
                  [f"{v.network} {v.dataflow} {v.bandwidth}: {v.difference}" for v in report.variants if v.difference]
    if not sweep_ok:
        differences.append("bench_sweep.py: the closed form and the engine disagree")
    if not topologies_ok:
        differences.append("bench_topologies.py: a run failed")
    for difference in differences:
        print(f"DIFFERENCE {difference}")
    return report, not differences


def companion(script: str, data: Path, work: Path, extra: Sequence[str], quick: bool) -> tuple[dict[str, Any], bool]:
    """Run another benchmark of ``benchmarks/`` on the same data as its own process, its output shown as
    it comes; its ``--json`` figures (if it wrote any) and whether it exited 0."""
    out = work / f"{script}.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / script), "--shared", str(data.parent), *extra,
               *(["--quick"] if quick else ["--json", str(out)])]
    code = subprocess.run(command, cwd=REPO_ROOT, check=False).returncode
    figures: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    return figures, code == 0


def side_by_side_runs(args: argparse.Namespace, data: Path) -> list[tuple[str, str, int | None]] | str:
    """The (network, dataflow, words per cycle) runs that ``--scalesim``, ``--dataflow`` and ``--bandwidth``
    ask for, or the one-line problem with them."""
    networks = json.loads((data / "table2.json").read_text())["networks"]
    names = [n.strip() for n in args.scalesim.split(",") if n.strip()]
    unknown = [n for n in names if n not in networks]
    if unknown or not names:
        shown = repr(unknown[0]) if unknown else repr(args.scalesim)
        return f"--scalesim: unknown network {shown} (one of {', '.join(networks)})"
    dataflows = [d.strip().lower() for d in args.dataflow.split(",") if d.strip()]
    if not dataflows or any(d not in DATAFLOWS for d in dataflows):
        return f"--dataflow: {args.dataflow!r}: each must be one of {', '.join(DATAFLOWS)}"
    words: list[int | None] = []
    for item in (b.strip().upper() for b in args.bandwidth.split(",") if b.strip()):
        match = re.fullmatch(r"USER:(\d+)", item)
        if item == "CALC":
            words.append(None)
        elif match and int(match.group(1)) > 0:
            words.append(int(match.group(1)))
        else:
            return f"--bandwidth: {item!r}: CALC or USER:WORDS (words per cycle, e.g. USER:10)"
    if args.scalesim_timeout <= 0:
        return f"--scalesim-timeout must be positive, got {args.scalesim_timeout}"
    stop_ratio = getattr(args, "scalesim_stop_ratio", None)
    if stop_ratio is not None and stop_ratio <= 1:
        return f"--scalesim-stop-ratio must be over 1, got {stop_ratio}"
    repo = getattr(args, "scalesim_repo", None)
    if repo is not None and not (repo / "scalesim" / "scale.py").is_file():
        return f"--scalesim-repo: {repo} has no scalesim/scale.py (a scale-sim-v2 checkout)"
    return [(n, d, w) for w in words for n in names for d in dataflows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two networks, two stall cases, a tiny sweep")
    parser.add_argument("--shared", type=Path, default=None,
                        help="the shared folder holding scalesim/ (default $SIMCODER_SHARED or ../shared)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--scalesim", metavar="NAMES", default=None,
                        help=f"side by side: run PyPI scalesim=={SCALESIM_VERSION} and ours on these Table-2 "
                             "networks (comma-separated)")
    parser.add_argument("--dataflow", default="os", metavar="LIST",
                        help="with --scalesim: dataflows, e.g. os,ws,is (default os)")
    parser.add_argument("--bandwidth", default="CALC", metavar="LIST",
                        help="with --scalesim: CALC and/or USER:WORDS, e.g. CALC,USER:10 (default CALC)")
    parser.add_argument("--scalesim-repo", type=Path, default=None, metavar="DIR",
                        help="with --scalesim: run DIR/scalesim/scale.py of a scale-sim-v2 checkout (e.g. commit "
                             "22f88b1, which ../shared was made with) instead of PyPI 2.0.2")
    parser.add_argument("--scalesim-timeout", type=float, default=3600.0, metavar="S",
                        help="with --scalesim: stop SCALE-Sim after S seconds and report its time as a lower "
                             "bound (default 3600)")
    parser.add_argument("--scalesim-stop-ratio", type=float, default=None, metavar="R",
                        help="with --scalesim: also stop SCALE-Sim once it has taken R times our time, which "
                             "proves a ratio over R; the layers it finished are checked against ours from its "
                             "printed figures")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="sweep worker processes")
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="runs per network, stall case and trace measurement; the median is reported "
                             "(default 3, with --quick 1)")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    data = (args.shared or default_shared()) / "scalesim"
    if not (data / "table2.json").is_file():
        print(f"error: SCALE-Sim reference data not found at {data} (pass --shared or set SIMCODER_SHARED)",
              file=sys.stderr)
        return 2
    compile_bytecode([REPO_ROOT / "reference_sim", *([args.scalesim_repo / "scalesim"] if args.scalesim_repo else [])])
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as tmp:
        work = Path(tmp)
        if args.scalesim:
            runs = side_by_side_runs(args, data)
            if isinstance(runs, str):
                print(f"error: {runs}", file=sys.stderr)
                return 2
            report = Report(machine(), "side-by-side")
            print_machine(report.machine)
            for name, dataflow, words in runs:
                result = side_by_side(name, dataflow, words, data, work, args.scalesim_timeout, args.scalesim_repo,
                                      args.scalesim_stop_ratio, args.repeat or 3)
                report.side_by_side.append(result)
                print(side_by_side_table([result]), flush=True)
            print("\n" + side_by_side_table(report.side_by_side))
            for result in report.side_by_side:
                if result["report_difference"]:
                    print(f"note: {result['network']} {result['dataflow']} {result['bandwidth']}: reports differ "
                          f"beyond cycles: {result['report_difference']}")
                for problem in result["problems"]:
                    print(f"DIFFERENCE {result['network']} {result['dataflow']} {result['bandwidth']}: {problem}")
            lowest = min(report.side_by_side, key=lambda r: r["ratio"])
            print(f"lowest ratio: {'' if lowest['scalesim_finished'] else '> '}{ratio_text(lowest['ratio'])} "
                  f"({lowest['network']} {lowest['dataflow']} {lowest['bandwidth']})")
            ok = not any(result["problems"] for result in report.side_by_side)
        else:
            repeat = args.repeat or (1 if args.quick else 3)
            report, ok = run_benchmark(data, args.quick, args.jobs, work, repeat)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    stop_children_on_sigterm()
    sys.exit(main())
