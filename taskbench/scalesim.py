"""SCALE-Sim 2.0.2 side by side with the reference's command line on one Table-2 network.

SCALE-Sim is installed from PyPI into its own virtual environment on first use (:func:`ensure_scalesim`,
cached under ``$SIMCODER_CACHE``), or taken from a scale-sim-v2 checkout.  Both run as timed child
processes (:func:`taskbench.processes.run_process`) on the same config (another dataflow or USER
bandwidth: :func:`variant_config`) and topology; their cycles and reports are compared, and when
SCALE-Sim is stopped early, the layers it finished are checked from what it printed.  Used by
``python -m graph.bench table2 --scalesim`` and ``benchmarks/bench_reference.py --scalesim``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reference_sim import read_config, read_topology
from reference_sim.compare import compare_reports, read_cells
from taskbench.processes import run_process

REPO_ROOT = Path(__file__).resolve().parents[1]
SCALESIM_VERSION = "2.0.2"


def read_cycles(compute_report: Path) -> list[tuple[int, int]]:
    """(total, stall) cycles per layer from a ``COMPUTE_REPORT.csv``."""
    return [(int(float(row[1])), int(float(row[2]))) for row in read_cells(compute_report)[1:]]


def cycles_difference(got: Sequence[tuple[int, int]], cycles: Sequence[int], stalls: Sequence[int]) -> str | None:
    """``None`` when every layer's (total, stall) cycles equal the expected ones; else the first difference."""
    if len(got) != len(cycles):
        return f"{len(cycles)} layers expected, got {len(got)}"
    for index, ((total, stall), e_total, e_stall) in enumerate(zip(got, cycles, stalls)):
        if (total, stall) != (e_total, e_stall):
            return f"layer {index}: expected {e_total} cycles / {e_stall} stalls, got {total} / {stall}"
    return None


def ratio(theirs: float, ours: float) -> float:
    return theirs / ours if ours > 0 else float("inf")


def our_command(config: Path, topology: Path, out: Path, gemm: bool = False) -> list[str]:
    command = [sys.executable, "-m", "reference_sim", "-c", str(config), "-t", str(topology), "-p", str(out), "-q"]
    return command + (["-i", "gemm"] if gemm else [])


def bandwidth_label(words_per_cycle: int | None) -> str:
    return "CALC" if words_per_cycle is None else f"USER:{words_per_cycle}"


def variant_config(data: Path, work: Path, dataflow: str, words_per_cycle: int | None) -> Path:
    """SCALE-Sim's ``scale.cfg`` with another dataflow and, for USER bandwidth, ``InterfaceBandwidth: USER``
    with ``Bandwidth: words_per_cycle`` (for OS and 10 words, the config of ``user_bw10/``)."""
    text = (data / "configs" / "scale.cfg").read_text()
    text = re.sub(r"(?m)^Dataflow\s*:.*$", f"Dataflow : {dataflow}", text)
    if words_per_cycle is not None:
        text = re.sub(r"(?m)^InterfaceBandwidth\s*:.*$", "InterfaceBandwidth : USER", text)
        text = re.sub(r"(?m)^Bandwidth\s*:.*$", f"Bandwidth : {words_per_cycle}", text)
    path = work / f"scale-{dataflow}-{bandwidth_label(words_per_cycle).replace(':', '')}.cfg"
    path.write_text(text)
    return path


def recorded_scalesim(data: Path, name: str, dataflow: str, words_per_cycle: int | None) -> tuple[Path, float] | None:
    """SCALE-Sim 22f88b1's reports and whole-process time for this run, where ``../shared`` has them (OS only)."""
    if dataflow != "os":
        return None
    if words_per_cycle is None:
        entry = json.loads((data / "table2.json").read_text())["networks"].get(name)
        return (data / "table2" / name, float(entry["scalesim_seconds"])) if entry else None
    runs = data / "user_bw10" / "runs.json"
    entry = json.loads(runs.read_text()).get(name) if runs.is_file() and words_per_cycle == 10 else None
    return (data / "user_bw10" / name, float(entry["scalesim_seconds"])) if entry else None


def scalesim_venv() -> Path:
    cache = Path(os.environ.get("SIMCODER_CACHE", "~/.cache/simulatorcoder")).expanduser()
    return cache / f"scalesim-{SCALESIM_VERSION}-venv"


def ensure_scalesim(venv: Path) -> Path:
    """The venv's python with PyPI ``scalesim`` installed (created on first use); raises if that fails."""
    python = venv / "bin" / "python"
    marker = venv / ".simulatorcoder-installed"
    if python.is_file() and marker.is_file():
        return python
    print(f"installing scalesim=={SCALESIM_VERSION} into {venv} (first use) ...", flush=True)
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"scalesim=={SCALESIM_VERSION}"], check=True)
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('scalesim'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != SCALESIM_VERSION:
        raise RuntimeError(f"{venv}: scalesim {version} installed, expected {SCALESIM_VERSION}")
    marker.write_text(version + "\n")
    return python


_PRINTED_FIGURES = ("Compute cycles", "Stall cycles", "Overall utilization", "Mapping efficiency",
                    "Average IFMAP DRAM BW", "Average Filter DRAM BW", "Average OFMAP DRAM BW")
"""What SCALE-Sim's verbose output prints after each layer, in order; a layer is finished once all are out."""


def printed_layers(stdout: str) -> list[dict[str, str]]:
    """The figures SCALE-Sim printed for each layer it finished, from its verbose standard output."""
    layers = []
    for block in re.split(r"^Running Layer \d+\s*$", stdout, flags=re.MULTILINE)[1:]:
        figures = {m[1]: m[2] for m in re.finditer(r"^([A-Za-z ]+): (\S+)", block, flags=re.MULTILINE)}
        if all(name in figures for name in _PRINTED_FIGURES):
            layers.append({name: figures[name] for name in _PRINTED_FIGURES})
    return layers


def our_printed_layers(report_dir: Path) -> list[dict[str, str]]:
    """Our ``COMPUTE_REPORT.csv`` and ``BANDWIDTH_REPORT.csv`` figures as SCALE-Sim prints them per layer."""
    compute = read_cells(report_dir / "COMPUTE_REPORT.csv")[1:]
    bandwidth = read_cells(report_dir / "BANDWIDTH_REPORT.csv")[1:]
    return [dict(zip(_PRINTED_FIGURES, (
        str(int(float(c[1]))), str(int(float(c[2]))), f"{float(c[3]):.2f}%", f"{float(c[4]):.2f}%",
        *(f"{float(value):.3f}" for value in b[4:7]))))
        for c, b in zip(compute, bandwidth)]


def printed_difference(stdout: str, report_dir: Path) -> tuple[int, str | None]:
    """How many layers SCALE-Sim's verbose output shows finished, and the first figure of those layers that
    differs from our reports in ``report_dir`` (``None`` when every one is equal)."""
    theirs = printed_layers(stdout)
    ours = our_printed_layers(report_dir)
    if len(theirs) > len(ours):
        return len(theirs), f"SCALE-Sim printed {len(theirs)} layers, our reports have {len(ours)}"
    for index, (their_layer, our_layer) in enumerate(zip(theirs, ours)):
        for name in _PRINTED_FIGURES:
            their_value = their_layer[name]
            if name.endswith("cycles"):
                their_value = str(int(float(their_value)))
            if their_value != our_layer[name]:
                shown = f"SCALE-Sim printed {their_layer[name]}, ours {our_layer[name]}"
                return len(theirs), f"layer {index}: {name}: {shown}"
    return len(theirs), None


def side_by_side(name: str, dataflow: str, words_per_cycle: int | None, data: Path, work: Path,
                 timeout: float | None = None, checkout: Path | None = None,
                 stop_ratio: float | None = None, repeat: int = 1) -> dict[str, Any]:
    """Our CLI (``repeat`` runs, the median timed) and SCALE-Sim once on one Table-2 network, dataflow and
    bandwidth mode, one after the other:
    PyPI 2.0.2's ``scalesim.scale``, or ``checkout/scalesim/scale.py`` of a scale-sim-v2 checkout (with
    2.0.2's dependencies).  SCALE-Sim is stopped after ``timeout`` seconds, or once it has taken
    ``stop_ratio`` times our time; its time is then a lower bound, and the layers it finished are checked
    against ours from what it printed for them."""
    python = ensure_scalesim(scalesim_venv())
    version = SCALESIM_VERSION if checkout is None else f"checkout {checkout.name}"
    config = variant_config(data, work, dataflow, words_per_cycle)
    topology = data / "table2" / f"{name}.csv"
    run_name = read_config(config).run_name
    label = f"{name} {dataflow} {bandwidth_label(words_per_cycle)}"
    ours_out, theirs_out = work / f"side-ours-{label}", work / f"side-scalesim-{label}"
    known = recorded_scalesim(data, name, dataflow, words_per_cycle)
    recorded = f" (SCALE-Sim 22f88b1 took {known[1]} s when recorded)" if known else ""
    print(f"side by side on {label}: ours, then SCALE-Sim {version}{recorded} ...", flush=True)
    runs = []
    for _ in range(repeat):
        shutil.rmtree(ours_out, ignore_errors=True)
        runs.append(run_process(our_command(config, topology, ours_out), cwd=REPO_ROOT))
    ours = next((run for run in runs if run.returncode != 0), runs[-1])
    ours_seconds = statistics.median(run.seconds for run in runs)
    theirs_out.mkdir(parents=True, exist_ok=True)
    entry = ["-m", "scalesim.scale"] if checkout is None else [str(checkout / "scalesim" / "scale.py")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({} if checkout is None else {"PYTHONPATH": str(checkout)})}
    if stop_ratio is not None:
        timeout = min(timeout or float("inf"), stop_ratio * ours_seconds)
    printed = work / f"side-scalesim-{label}.out"
    theirs = run_process([str(python), *entry, "-c", str(config), "-t", str(topology), "-p", str(theirs_out)],
                         cwd=theirs_out, timeout=timeout, env=env, stdout=printed)
    problems = []
    if ours.returncode != 0:
        problems.append(f"ours: exit code {ours.returncode}: {ours.stderr_tail.strip()}")
    if theirs.returncode != 0 and not theirs.timed_out:
        problems.append(f"SCALE-Sim: exit code {theirs.returncode}: {theirs.stderr_tail.strip()}")
    cycles_equal: bool | None = None
    reports_equal: bool | None = None
    report_difference: str | None = None
    if not problems and not theirs.timed_out:
        ours_cycles = read_cycles(ours_out / run_name / "COMPUTE_REPORT.csv")
        theirs_cycles = read_cycles(theirs_out / run_name / "COMPUTE_REPORT.csv")
        difference = cycles_difference(ours_cycles, [c for c, _ in theirs_cycles], [s for _, s in theirs_cycles])
        cycles_equal = difference is None
        if difference is not None:
            problems.append(f"cycles: SCALE-Sim {version} vs ours: {difference}")
        report_difference = compare_reports(theirs_out / run_name, ours_out / run_name)
        reports_equal = report_difference is None
    layers = len(read_topology(topology))
    layers_checked = layers if reports_equal else 0
    if not problems and theirs.timed_out:
        layers_checked, difference = printed_difference(printed.read_text(errors="replace"), ours_out / run_name)
        if difference is not None:
            problems.append(f"SCALE-Sim {version} printed other figures than ours: {difference}")
    printed.unlink(missing_ok=True)
    shutil.rmtree(ours_out, ignore_errors=True)
    shutil.rmtree(theirs_out, ignore_errors=True)
    return {"network": name, "dataflow": dataflow, "bandwidth": bandwidth_label(words_per_cycle),
            "scalesim_version": version, "ours_seconds": ours_seconds, "ours_runs": repeat,
            "scalesim_seconds": theirs.seconds, "scalesim_finished": not theirs.timed_out,
            "ratio": ratio(theirs.seconds, ours_seconds),
            "ours_max_rss_mib": max(run.max_rss_mib for run in runs), "scalesim_max_rss_mib": theirs.max_rss_mib,
            "cycles_equal": cycles_equal, "reports_equal": reports_equal, "report_difference": report_difference,
            "layers": layers, "layers_checked": layers_checked, "problems": problems}
