"""How strong the feature judge is, and what each built-in feature costs against the reference.

    python benchmarks/bench_features.py                 # mutants of every feature, speed on the 8 Table-2 networks
    python benchmarks/bench_features.py --quick         # mutants, speed on NCF and AlphaGoZero only
    python benchmarks/bench_features.py --json out.json

Per feature: the built-in's verdict, then every seeded mutant (:mod:`features.mutants`) judged twice:
in full (exact, oracle, properties; the first check that fires is reported) and by the properties
alone (every property that fires).  Mutants that only the exact or oracle level catches, and mutants
nothing catches, are listed as known limits.  Speed: the built-in's time over the reference's on the
Table-2 networks (``configs/scale.cfg``), per image for batch (B = ``--images``), per core for cores (C = 2),
both measured in this run, network by network (two interleaved rounds of the reference and every
feature; best of ``--repeat`` runs each per round, default 1 to keep the bench near 5 minutes on 2 cores).  The exit
code is 1 when a feature's rejection is under 90 % or a built-in fails its judge, 2 when the reference data is
missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.builtin import BUILTINS
from features.catalogue import load_catalogue
from features.judge import RunCache, judge
from features.mutants import MUTANTS
from reference_sim import Hardware, Layer, read_config, read_topology, simulate

REPO_ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("NCF", "AlphaGoZero", "MobileNet", "DeepSpeech2", "FasterRCNN", "YOLOv2", "ResNet50", "Transformer")
QUICK_NETWORKS = ("NCF", "AlphaGoZero")
TARGET_REJECTION = 0.9
TARGET_SPEED_RATIO = 2.0


@dataclass
class MutantRow:
    name: str
    fault: str
    rejected: bool
    check: str
    properties_fired: list[str]
    seconds: float


@dataclass
class FeatureReport:
    feature: str
    builtin_verdict: str
    builtin_passed: bool
    mutants: list[MutantRow] = field(default_factory=list)
    speed: dict[str, float] = field(default_factory=dict)

    @property
    def rejection(self) -> float:
        return sum(m.rejected for m in self.mutants) / len(self.mutants) if self.mutants else 0.0


def default_shared() -> Path:
    return Path(os.environ.get("SIMCODER_SHARED", REPO_ROOT.parent / "shared"))


def judge_feature(name: str, seed: int) -> FeatureReport:
    catalogue = load_catalogue()
    feature = catalogue[name]
    verdict = judge(feature, BUILTINS[name], seed=seed)
    report = FeatureReport(name, verdict.summary(), verdict.passed)
    for mutant in MUTANTS[name]:
        start = time.perf_counter()
        impl = mutant.build()
        runs: RunCache = {}
        full = judge(feature, impl, seed=seed, runs=runs)
        props = judge(feature, impl, seed=seed, use_exact=False, use_oracle=False, all_failures=True, runs=runs)
        report.mutants.append(MutantRow(mutant.name, mutant.fault, not full.passed,
                                        full.failure.check if full.failure else "-", list(props.fired),
                                        time.perf_counter() - start))
    return report


def _best(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


ROUNDS = 2
"""Interleaved timing rounds per network (:func:`speeds`)."""


def speeds(names: list[str], networks: dict[str, list[Layer]], hardware: Hardware, repeat: int,
           images: int) -> dict[str, dict[str, float]]:
    """Per feature and network: feature seconds / reference seconds (batch: per image; cores: per core, each core
    simulating its own array and SRAMs).  Per network the reference and every feature are timed in
    :data:`ROUNDS` interleaved rounds (the reference, then each feature, then again); each one's best time counts,
    so the reference and the features are measured alike (later runs find caches warm)."""
    catalogue = load_catalogue()
    settings = {}
    for name in names:
        params = {p.name: p.judge_values()[0] for p in catalogue[name].definition.parameters}
        if name == "batch":
            params["batch_images"] = images
        settings[name] = params
    per_image = {name: int(settings[name].get("batch_images", settings[name].get("cores", 1))) for name in names}
    seconds: dict[str, dict[str, float]] = {name: {} for name in names}
    reference: dict[str, float] = {}
    for network, layers in networks.items():
        for _ in range(ROUNDS):
            took = _best(repeat, lambda layers=layers: simulate(layers, hardware))  # type: ignore[misc]
            reference[network] = min(reference.get(network, took), took)
            for name in names:
                took = _best(repeat, lambda layers=layers, name=name: BUILTINS[name](  # type: ignore[misc]
                    layers, hardware, settings[name]))
                seconds[name][network] = min(seconds[name].get(network, took), took)
    ratios: dict[str, dict[str, float]] = {}
    for name in names:
        ratios[name] = {network: seconds[name][network] / per_image[name] / reference[network] for network in networks}
        ratios[name]["all"] = sum(seconds[name].values()) / per_image[name] / sum(reference.values())
    return ratios


def print_report(report: FeatureReport) -> None:
    print(f"\n== {report.feature}: built-in {report.builtin_verdict}", flush=True)
    print(f"{'mutant':<30} {'rejected':>8}  {'first check':<30} properties alone")
    for m in report.mutants:
        print(f"{m.name:<30} {'yes' if m.rejected else 'NO':>8}  {m.check:<30} {', '.join(m.properties_fired) or '-'}")
    rejected = sum(m.rejected for m in report.mutants)
    print(f"rejected {rejected}/{len(report.mutants)} = {report.rejection:.0%} (target >= {TARGET_REJECTION:.0%})")
    only_strong = [m.name for m in report.mutants if m.rejected and not m.properties_fired]
    survivors = [m.name for m in report.mutants if not m.rejected]
    print(f"known limits: caught only by exact/oracle: {', '.join(only_strong) or 'none'}; "
          f"caught by nothing: {', '.join(survivors) or 'none'}")
    sys.stdout.flush()


def print_speed(report: FeatureReport) -> None:
    if report.speed:
        cells = ", ".join(f"{k} {v:.2f}x" for k, v in report.speed.items())
        met = "met" if max(report.speed.values()) <= TARGET_SPEED_RATIO else "NOT met"
        unit = {"batch": " per image", "cores": " per core"}.get(report.feature, "")
        print(f"speed vs reference{unit}: {cells} "
              f"(target <= {TARGET_SPEED_RATIO}x: {met})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=default_shared(),
                        help="the shared folder holding scalesim/ (default $SIMCODER_SHARED or ../shared)")
    parser.add_argument("--quick", action="store_true", help="speed on NCF and AlphaGoZero only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per network; the best counts")
    parser.add_argument("--images", type=int, default=2, help="batch images for the speed run")
    parser.add_argument("--features", nargs="*", default=sorted(MUTANTS), help="features to measure")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args(argv)

    data = args.shared / "scalesim"
    if not (data / "table2").is_dir():
        print(f"error: SCALE-Sim reference data not found at {data} (pass --shared or set SIMCODER_SHARED)",
              file=sys.stderr)
        return 2
    hardware = read_config(data / "configs" / "scale.cfg").hardware
    names = QUICK_NETWORKS if args.quick else NETWORKS
    networks = {n: read_topology(data / "table2" / f"{n}.csv") for n in names}

    started = time.perf_counter()
    reports = []
    for name in args.features:
        reports.append(judge_feature(name, args.seed))
        print_report(reports[-1])
    print(f"\njudged in {time.perf_counter() - started:.0f} s; speed on {', '.join(networks)}")
    ratios = speeds([r.feature for r in reports], networks, hardware, args.repeat, args.images)
    for report in reports:
        report.speed = ratios[report.feature]
        print(f"{report.feature}: ", end="")
        print_speed(report)
    print(f"\nbench runtime {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        document: dict[str, Any] = {r.feature: {**asdict(r), "rejection": r.rejection} for r in reports}
        args.json.write_text(json.dumps(document, indent=2))
    failed = [r.feature for r in reports if r.rejection < TARGET_REJECTION or not r.builtin_passed]
    if failed:
        print(f"\nFAIL: {', '.join(failed)} (rejection under {TARGET_REJECTION:.0%} or built-in failed)")
        return 1
    print("\nOK: every feature rejects >= 90 % of its mutants and passes its built-in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
