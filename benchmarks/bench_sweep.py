"""How many ResNet50 configurations per second a design-space sweep gets through, and whether it stays exact.

    python benchmarks/bench_sweep.py              # closed-form big grid, full-engine small grids, the ratio
    python benchmarks/bench_sweep.py --quick      # correctness only: closed form equals the engine (CI)
    python benchmarks/bench_sweep.py --json out.json

Default mode, all in this run, with ``--jobs`` worker processes (default all cores):

* **cycles**: ``sweep(figures="cycles")`` over a big CALC grid (:data:`CYCLES_GRID`, 6,912
  configurations): closed forms, the engine only where they are not exact;
* **full CALC** and **full USER:10**: ``sweep()`` (every figure, the full engine) over the cycles grid's
  SRAM sizes on one array (:data:`FULL_GRIDS`, 192 configurations each), and over grids whose three
  SRAMs change together (no target: nothing is shared between their configurations but the mapping);
  the cycles sweep of the same grids must give the same compute figures.

Targets (issue 13) are printed with whether each is met (on wall time); configurations per CPU
second leave a loaded machine's contention out (the full sweeps run in ``--jobs`` worker
processes, the closed form in this one).  Times are never asserted.  The exit code
is 1 only when the closed form and the engine disagree, 2 when the reference data is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_sim import Hardware, Layer, read_topology
from reference_sim.closed_form import cycle_figures
from reference_sim.sweep import DEFAULT_BASE, CycleRow, SweepRow, grid, parse_bandwidths, sweep

REPO_ROOT = Path(__file__).resolve().parents[1]
NETWORK = "ResNet50"
SIDES = (8, 16, 32, 64, 128, 256)
SRAM_KIB = (32, 64, 128, 256)
CYCLES_GRID: dict[str, Any] = {
    "arrays": [(r, c) for r in SIDES for c in SIDES],
    "sram_kib": [(i, f, o) for i in SRAM_KIB for f in SRAM_KIB for o in SRAM_KIB],
    "dataflows": ["os", "ws", "is"],
    "bandwidths": [("CALC", None)],
}
FULL_GRIDS: dict[str, dict[str, Any]] = {
    "CALC": {"arrays": [(32, 32)], "sram_kib": CYCLES_GRID["sram_kib"], "dataflows": ["os", "ws", "is"],
             "bandwidths": [("CALC", None)]},
    "USER:10": {"arrays": [(32, 32)], "sram_kib": CYCLES_GRID["sram_kib"], "dataflows": ["os", "ws", "is"],
                "bandwidths": [("USER", 10)]},
    "CALC, SRAMs together": {"arrays": [(32, 32)], "sram_kib": [(64, 64, 64), (128, 128, 128)],
                             "dataflows": ["os", "ws", "is"], "bandwidths": [("CALC", None)]},
    "USER:10, SRAMs together": {"arrays": [(32, 32)], "sram_kib": [(64, 64, 64), (128, 128, 128)],
                                "dataflows": ["os", "ws", "is"], "bandwidths": [("USER", 10)]},
}
"""The full sweeps: SCALE-Sim's 32x32 array, three dataflows, and the cycles grid's SRAM sizes (every
ifmap x filter x ofmap size of :data:`SRAM_KIB`, 192 configurations), where each buffer size recurs
across configurations and is worked out once; and, for comparison, grids whose three SRAMs change
together (each size seen once per operand, nothing to share but the mapping)."""
QUICK_LAYERS = 2
QUICK_CONFIGS = grid(DEFAULT_BASE, arrays=[(8, 64)], sram_kib=[(64, 64, 64), (4096, 4096, 4096)],
                     dataflows=["os", "ws", "is"], bandwidths=parse_bandwidths("CALC,USER:10"))
"""With USER:10 and 64 KiB the engine runs (the read buffers prefetch), with 4096 KiB the closed form."""
TARGETS = {"cycles": 1000.0, "full CALC": 50.0, "full USER:10": 5.0}
"""Configurations per second on 2 cores."""


def default_shared() -> Path:
    return Path(os.environ.get("SIMCODER_SHARED", REPO_ROOT.parent / "shared"))


@dataclass(frozen=True)
class Rate:
    """One timed sweep: wall time, and CPU time of this process and its reaped workers."""

    name: str
    configurations: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.configurations / self.seconds if self.seconds > 0 else float("inf")

    @property
    def per_cpu_second(self) -> float | None:
        """Configurations per CPU second: the machine's load left out (``None`` below 10 ms of CPU)."""
        return self.configurations / self.cpu_seconds if self.cpu_seconds >= 0.01 else None


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def compute_figures(rows: Sequence[SweepRow] | Sequence[CycleRow]) -> list[tuple[object, ...]]:
    """The configuration, layer and compute-report columns of each row."""
    return [(r.array_rows, r.array_cols, r.dataflow, r.ifmap_sram_kib, r.filter_sram_kib, r.ofmap_sram_kib,
             r.bandwidth_mode, r.words_per_cycle, r.layer_index, r.layer_name, r.total_cycles, r.stall_cycles,
             r.overall_util_pct, r.mapping_efficiency_pct, r.compute_util_pct) for r in rows]


def first_difference(cycles: Sequence[CycleRow], full: Sequence[SweepRow]) -> str | None:
    """``None`` when the cycles sweep and the full sweep agree row for row; else the first difference."""
    if len(cycles) != len(full):
        return f"{len(full)} rows from the engine, {len(cycles)} from the cycles sweep"
    for got, expected in zip(compute_figures(cycles), compute_figures(full)):
        if got != expected:
            return f"engine {expected}, cycles sweep {got}"
    return None


def timed_cycles(name: str, layers: Sequence[Layer], configs: Sequence[Hardware],
                 jobs: int) -> tuple[Rate, list[CycleRow]]:
    start, cpu = time.perf_counter(), cpu_seconds()
    rows = sweep(layers, configs, figures="cycles", jobs=jobs)
    return Rate(name, len(configs), time.perf_counter() - start, cpu_seconds() - cpu), rows


def timed_full(name: str, layers: Sequence[Layer], configs: Sequence[Hardware],
               jobs: int) -> tuple[Rate, list[SweepRow]]:
    start, cpu = time.perf_counter(), cpu_seconds()
    rows = sweep(layers, configs, jobs=jobs)
    return Rate(name, len(configs), time.perf_counter() - start, cpu_seconds() - cpu), rows


def quick(layers: Sequence[Layer], jobs: int) -> int:
    """The closed form against the engine on a few small layers and configurations; no timing."""
    smallest = sorted({layer.macs: layer for layer in layers}.values(), key=lambda layer: layer.macs)[:QUICK_LAYERS]
    cycles = sweep(smallest, QUICK_CONFIGS, figures="cycles", jobs=jobs)
    full = sweep(smallest, QUICK_CONFIGS, jobs=jobs)
    difference = first_difference(cycles, full)
    closed = int(cycle_figures(smallest, QUICK_CONFIGS).exact.sum())
    print(f"quick: {len(QUICK_CONFIGS)} configurations x {len(smallest)} layers, closed form for {closed} "
          f"of {len(QUICK_CONFIGS) * len(smallest)}: "
          f"{'cycles sweep equals the engine' if difference is None else 'DIFFERENT: ' + difference}")
    return 0 if difference is None else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_sweep.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="correctness only, a few configurations, no timing")
    parser.add_argument("--shared", type=Path, default=default_shared(),
                        help="the shared folder holding scalesim/ (default $SIMCODER_SHARED or ../shared)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--json", type=Path, help="also write the rates as JSON")
    args = parser.parse_args(argv)
    topology = args.shared / "scalesim" / "table2" / f"{NETWORK}.csv"
    if not topology.is_file():
        print(f"error: SCALE-Sim reference data not found at {topology} (pass --shared or set SIMCODER_SHARED)",
              file=sys.stderr)
        return 2
    layers = read_topology(topology)
    if args.quick:
        return quick(layers, args.jobs)

    big = grid(DEFAULT_BASE, **CYCLES_GRID)
    rates = [timed_cycles("cycles", layers, big, args.jobs)[0]]
    differences: list[str] = []
    for mode, axes in FULL_GRIDS.items():
        configs = grid(DEFAULT_BASE, **axes)
        rate, full = timed_full(f"full {mode}", layers, configs, args.jobs)
        rates.append(rate)
        cycles_rate, cycles = timed_cycles(f"cycles {mode}", layers, configs, args.jobs)
        rates.append(cycles_rate)
        difference = first_difference(cycles, full)
        if difference is not None:
            differences.append(f"{mode}: {difference}")
    by_name = {r.name: r for r in rates}
    print(f"{NETWORK}, {len(layers)} layers, {args.jobs} jobs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'sweep':<30} {'configs':>8} {'seconds':>9} {'configs/s':>10} {'CPU s':>9} {'configs/CPU s':>14}  "
          f"target ({args.jobs} jobs)")
    for r in rates:
        target = TARGETS.get(r.name)
        met = "" if target is None else f">= {target:,.0f}: {'yes' if r.per_second >= target else 'NO'}"
        per_cpu = "-" if r.per_cpu_second is None else f"{r.per_cpu_second:,.1f}"
        print(f"{r.name:<30} {r.configurations:>8,} {r.seconds:>9.2f} {r.per_second:>10,.1f} {r.cpu_seconds:>9.2f} "
              f"{per_cpu:>14}  {met}")
    for mode in FULL_GRIDS:
        ratio = by_name["cycles"].per_second / by_name[f"full {mode}"].per_second
        print(f"cycles (big grid) / full {mode}: {ratio:,.0f}x")
    print("cycles sweep equals the engine on the full grids" if not differences else
          "DIFFERENT: " + "; ".join(differences))
    if args.json:
        args.json.write_text(json.dumps({"jobs": args.jobs, "rates": {r.name: {
            "configurations": r.configurations, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
            "per_second": r.per_second} for r in rates}, "equal": not differences}, indent=1))
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
