"""Table 2 and Fig 3 of the SimulatorCoder paper: total cycles, cycle error and runtime on eight networks.

    python -m graph.bench table2                          # reference_sim against SCALE-Sim's recorded figures
    python -m graph.bench table2 --candidate runs/<id>    # also a generated simulator's standalone package
    python -m graph.bench table2 --scalesim               # also run SCALE-Sim 2.0.2 itself, side by side
    python -m graph.bench table2 --networks NCF,Transformer --out /tmp/t2

The data is a folder laid out like ``../shared/scalesim/``: ``table2.json`` (SCALE-Sim's per-layer
cycles and recorded whole-process seconds, the paper's figures), ``configs/scale.cfg`` and
``table2/<Name>.csv``.  The reference runs in process (``read_topology`` + ``simulate``, timed); a
candidate package runs as ``python -m <name> -c scale.cfg -t <Name>.csv -p OUT -q`` in a timed
subprocess and is read back from its ``COMPUTE_REPORT.csv``.  Written to ``--out``: ``table2.md``
(also printed), ``table2.json`` (format ``simcoder-table2/1``) and ``runtime.png`` (log-scale seconds).
Error is ``(ours - SCALE-Sim) / SCALE-Sim * 100``.  Exit code 0 when every run matched SCALE-Sim
layer for layer, 1 when any differed or failed, 2 for bad input (missing data, unknown network,
no package, SCALE-Sim not installable).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.package import MANIFEST_FILE, PACKAGE_FORMAT, is_package
from reference_sim import InputError, SimulationError, read_config, read_topology, simulate
from reference_sim.compare import read_cells
from taskbench import scalesim

log = logging.getLogger(__name__)

FORMAT = "simcoder-table2/1"
"""The ``format`` of ``table2.json``."""
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("bench-results") / "table2"
DEFAULT_TIMEOUT = 1800.0
FILES = ("table2.md", "table2.json", "runtime.png")


class Table2Error(ValueError):
    """Bad input: missing or malformed data folder, unknown network, no package (one line, exit 2)."""


def default_scalesim_dir() -> Path:
    """``$SIMCODER_SHARED/scalesim`` when set, else ``../shared/scalesim`` beside the repository."""
    shared = os.environ.get("SIMCODER_SHARED")
    return (Path(shared) if shared else REPO_ROOT.parent / "shared") / "scalesim"


# -------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Network:
    """One network of ``table2.json``: SCALE-Sim's figures and the paper's."""

    name: str
    topology: Path
    cycles: tuple[int, ...]
    total: int
    scalesim_seconds: float | None
    paper_scalesim: int | None
    paper_simulatorcoder: int | None

    @property
    def layers(self) -> int:
        return len(self.cycles)


@dataclass(frozen=True)
class Dataset:
    """The data folder: its config, the simulator that recorded it and its networks in table order."""

    root: Path
    config: Path
    simulator: str
    networks: tuple[Network, ...]


def _field(entry: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, optional: bool = False) -> Any:
    value = entry.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise Table2Error(f"{where}: {key!r} missing or not {getattr(kind, '__name__', 'a number')}")
    return value


def load_dataset(root: Path) -> Dataset:
    """Read ``root/table2.json``; raises :class:`Table2Error` naming the path when anything is missing."""
    path = root / "table2.json"
    if not root.is_dir():
        raise Table2Error(f"SCALE-Sim data folder not found: {root} (pass --scalesim-dir or set SIMCODER_SHARED)")
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise Table2Error(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise Table2Error(f"{path}: not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("networks"), dict):
        raise Table2Error(f"{path}: no 'networks' object")
    config = root / str(document.get("config") or "configs/scale.cfg")
    if not config.is_file():
        raise Table2Error(f"config not found: {config}")
    networks = []
    for name, entry in document["networks"].items():
        where = f"{path}: networks.{name}"
        if not isinstance(entry, dict):
            raise Table2Error(f"{where}: not an object")
        cycles = _field(entry, "cycles", list, where)
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in cycles):
            raise Table2Error(f"{where}: 'cycles' must be a list of integers")
        seconds = _field(entry, "scalesim_seconds", (int, float), where, optional=True)
        networks.append(Network(
            name=name,
            topology=root / _field(entry, "topology", str, where),
            cycles=tuple(cycles),
            total=_field(entry, "total", int, where),
            scalesim_seconds=None if seconds is None else float(seconds),
            paper_scalesim=_field(entry, "paper_scalesim_total", int, where, optional=True),
            paper_simulatorcoder=_field(entry, "paper_simulatorcoder_total", int, where, optional=True),
        ))
    return Dataset(root, config, str(document.get("simulator") or "SCALE-Sim"), tuple(networks))


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.casefold())


def select_networks(dataset: Dataset, names: str | None) -> tuple[Network, ...]:
    """The networks ``--networks`` names (comma-separated, case and punctuation ignored), in table order."""
    if not names:
        return dataset.networks
    by_key = {_key(n.name): n for n in dataset.networks}
    wanted = [part.strip() for part in names.split(",") if part.strip()]
    unknown = [w for w in wanted if _key(w) not in by_key]
    if unknown or not wanted:
        known = ", ".join(n.name for n in dataset.networks)
        raise Table2Error(f"--networks: unknown network {', '.join(map(repr, unknown)) or repr(names)} "
                          f"(one of {known})")
    keys = {_key(w) for w in wanted}
    return tuple(n for n in dataset.networks if _key(n.name) in keys)


# ---------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Run:
    """One simulator on one network: per-layer total cycles and wall time, or why it failed."""

    cycles: tuple[int, ...] | None
    seconds: float | None
    failure: str | None = None

    @property
    def total(self) -> int | None:
        return None if self.cycles is None else sum(self.cycles)


@dataclass(frozen=True)
class ScaleSimRun:
    """SCALE-Sim run side by side with the reference CLI (:func:`taskbench.scalesim.side_by_side`)."""

    seconds: float | None
    reference_seconds: float | None
    cycles_equal: bool
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    network: Network
    reference: Run
    candidate: Run | None = None
    scalesim: ScaleSimRun | None = None


def error_percent(ours: int, scalesim: int) -> float:
    """``(ours - scalesim) / scalesim * 100``."""
    return (ours - scalesim) / scalesim * 100


def error_text(error: float | None) -> str:
    """``0.00%``, ``-1.25%``; ``-`` when there is no figure."""
    return "-" if error is None else f"{error:.2f}%"


def seconds_text(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:,.1f}"


def speedup(theirs: float | None, ours: float | None) -> float | None:
    """``theirs / ours``, ``None`` when either is missing or ours is zero."""
    return None if theirs is None or not ours else theirs / ours


def speedup_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 10 else f"{value:.2f}x"


def first_difference(got: Sequence[int], expected: Sequence[int]) -> str | None:
    """``None`` when every layer's total cycles equal SCALE-Sim's, else the first difference (one line)."""
    if len(got) != len(expected):
        return f"{len(expected)} layers expected, got {len(got)}"
    for index, (ours, theirs) in enumerate(zip(got, expected)):
        if ours != theirs:
            return f"layer {index}: SCALE-Sim {theirs} cycles, got {ours}"
    return None


def run_figures(run: Run, network: Network) -> dict[str, Any]:
    """A run as JSON: cycles, error, exact (every layer equal), seconds, speed-up, status and problem."""
    if run.cycles is None:
        problem = run.failure or "failed"
        return {"cycles": None, "error_percent": None, "exact": False, "seconds": run.seconds, "speedup": None,
                "status": "failed", "problem": problem}
    total = sum(run.cycles)
    difference = first_difference(run.cycles, network.cycles)
    if difference is None and total != network.total:
        difference = f"total: SCALE-Sim {network.total} cycles, got {total}"
    return {"cycles": total, "error_percent": error_percent(total, network.total), "exact": difference is None,
            "seconds": run.seconds, "speedup": speedup(network.scalesim_seconds, run.seconds),
            "status": "exact" if difference is None else "differs", "problem": difference}


def _paper(network: Network) -> dict[str, Any]:
    theirs, ours = network.paper_scalesim, network.paper_simulatorcoder
    error = None if theirs is None or ours is None or theirs == 0 else error_percent(ours, theirs)
    return {"scalesim_cycles": theirs, "simulatorcoder_cycles": ours, "error_percent": error}


def _scalesim_figures(run: ScaleSimRun) -> dict[str, Any]:
    return {"seconds": run.seconds, "reference_process_seconds": run.reference_seconds,
            "speedup": speedup(run.seconds, run.reference_seconds), "cycles_equal": run.cycles_equal,
            "problems": list(run.problems), "ok": run.cycles_equal and not run.problems}


def _sum(values: Sequence[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)


def build_document(dataset: Dataset, rows: Sequence[Row], candidate: Path | None, *,
                   machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``simcoder-table2/1`` document for ``rows`` (pure: no running, no clock)."""
    networks = []
    for row in rows:
        item: dict[str, Any] = {
            "network": row.network.name,
            "layers": row.network.layers,
            "topology": str(row.network.topology),
            "scalesim": {"cycles": row.network.total, "recorded_seconds": row.network.scalesim_seconds},
            "paper": _paper(row.network),
            "reference": run_figures(row.reference, row.network),
            "candidate": None if row.candidate is None else run_figures(row.candidate, row.network),
            "scalesim_run": None if row.scalesim is None else _scalesim_figures(row.scalesim),
        }
        networks.append(item)
    recorded = _sum([r.network.scalesim_seconds for r in rows])
    reference = _sum([r.reference.seconds for r in rows])
    totals: dict[str, Any] = {"scalesim_recorded_seconds": recorded, "reference_seconds": reference,
                              "reference_speedup": speedup(recorded, reference)}
    if candidate is not None:
        seconds = _sum([r.candidate.seconds if r.candidate else None for r in rows])
        totals.update(candidate_seconds=seconds, candidate_speedup=speedup(recorded, seconds))
    if any(r.scalesim is not None for r in rows):
        totals["scalesim_run_seconds"] = _sum([r.scalesim.seconds if r.scalesim else None for r in rows])
    ok = all(item["reference"]["exact"]
             and (item["candidate"] is None or item["candidate"]["exact"])
             and (item["scalesim_run"] is None or item["scalesim_run"]["ok"]) for item in networks)
    return {
        "format": FORMAT,
        "simulator": dataset.simulator,
        "scalesim_dir": str(dataset.root),
        "config": str(dataset.config),
        "candidate": None if candidate is None else {"package": str(candidate), "name": candidate.name},
        "reference": "reference_sim, in process (read_topology + simulate)",
        "machine": machine or {},
        "networks": networks,
        "totals": totals,
        "ok": ok,
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """A Markdown table padded to column width; numbers right-aligned, the first and the last ``left - 1`` not."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    flush_left = {0, *range(len(header) - left + 1, len(header))}

    def line(cells: Sequence[str]) -> str:
        padded = (c.ljust(w) if i in flush_left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(":" + "-" * (w + 1) if i in flush_left else "-" * (w + 1) + ":"
                          for i, w in enumerate(widths)) + "|"
    return [line(header), rule, *(line(r) for r in rows)]


def _int_text(value: int | None) -> str:
    return "-" if value is None else str(value)


def _problems(document: dict[str, Any], key: str, label: str) -> list[str]:
    lines: list[str] = []
    for item in document["networks"]:
        figures = item[key]
        if figures is None:
            continue
        problems = figures.get("problems", []) if key == "scalesim_run" else [figures["problem"]]
        lines.extend(f"- {item['network']}: {label} {figures.get('status', 'problem')}: {p}"
                     for p in problems if p)
    return lines


def _candidate_cells(item: dict[str, Any]) -> tuple[str, ...]:
    figures = item["candidate"]
    recorded = seconds_text(item["scalesim"]["recorded_seconds"])
    if figures is None:
        return (item["network"], "-", str(item["scalesim"]["cycles"]), "-", "-", recorded, "-", "not run")
    return (item["network"], _int_text(figures["cycles"]), str(item["scalesim"]["cycles"]),
            error_text(figures["error_percent"]), seconds_text(figures["seconds"]), recorded,
            speedup_text(figures["speedup"]), figures["status"])


def format_markdown(document: dict[str, Any]) -> str:
    """``table2.md``: Table 2 with runtimes, then the candidate's and SCALE-Sim side-by-side blocks."""
    networks = document["networks"]
    totals = document["totals"]
    lines = ["# Table 2: total cycles and runtime on SCALE-Sim's scale.cfg", "",
             f"SCALE-Sim: {document['simulator']} (cycles and whole-process seconds as recorded in "
             f"{document['scalesim_dir']}/table2.json); ours: {document['reference']}. "
             "Error = (ours - SCALE-Sim) / SCALE-Sim.", ""]
    lines += _table(
        ("Network", "Layers", "Ours (cycles)", "SCALE-Sim (cycles)", "Error", "Paper SCALE-Sim",
         "Paper SimulatorCoder", "Paper error", "Ours (s)", "SCALE-Sim recorded (s)", "Speed-up"),
        [(i["network"], str(i["layers"]), _int_text(i["reference"]["cycles"]), str(i["scalesim"]["cycles"]),
          error_text(i["reference"]["error_percent"]), _int_text(i["paper"]["scalesim_cycles"]),
          _int_text(i["paper"]["simulatorcoder_cycles"]), error_text(i["paper"]["error_percent"]),
          seconds_text(i["reference"]["seconds"]), seconds_text(i["scalesim"]["recorded_seconds"]),
          speedup_text(i["reference"]["speedup"])) for i in networks])
    lines += ["", f"Total runtime: ours {seconds_text(totals['reference_seconds'])} s, SCALE-Sim recorded "
                  f"{seconds_text(totals['scalesim_recorded_seconds'])} s "
                  f"(speed-up {speedup_text(totals['reference_speedup'])})."]
    lines += _problems(document, "reference", "reference")
    if document["candidate"] is not None:
        lines += ["", f"## Candidate: {document['candidate']['package']}", "",
                  "The package as a process: `python -m "
                  f"{document['candidate']['name']} -c scale.cfg -t <Name>.csv -p OUT -q`.", ""]
        lines += _table(
            ("Network", "Candidate (cycles)", "SCALE-Sim (cycles)", "Error", "Candidate (s)",
             "SCALE-Sim recorded (s)", "Speed-up", "Status"),
            [_candidate_cells(i) for i in networks], left=2)
        lines += ["", f"Total runtime: candidate {seconds_text(totals.get('candidate_seconds'))} s "
                      f"(speed-up {speedup_text(totals.get('candidate_speedup'))})."]
        lines += _problems(document, "candidate", "candidate")
    if any(i["scalesim_run"] is not None for i in networks):
        lines += ["", "## SCALE-Sim run side by side", "",
                  "SCALE-Sim 2.0.2 (PyPI) and `python -m reference_sim` each as a process, one after the other.", ""]
        lines += _table(
            ("Network", "SCALE-Sim run (s)", "Ours as a process (s)", "Speed-up", "SCALE-Sim recorded (s)",
             "Cycles equal"),
            [(i["network"], seconds_text(s["seconds"]), seconds_text(s["reference_process_seconds"]),
              speedup_text(s["speedup"]), seconds_text(i["scalesim"]["recorded_seconds"]),
              "yes" if s["cycles_equal"] else "NO")
             for i in networks if (s := i["scalesim_run"]) is not None], left=2)
        lines += _problems(document, "scalesim_run", "SCALE-Sim run")
    lines += ["", "All runs match SCALE-Sim layer for layer." if document["ok"]
              else "NOT all runs match SCALE-Sim (see above)."]
    return "\n".join(lines) + "\n"


def runtime_series(document: dict[str, Any]) -> dict[str, list[float]]:
    """Fig 3's bars: seconds per network for each simulator (``nan`` where there is no figure)."""

    def values(get: Callable[[dict[str, Any]], float | None]) -> list[float]:
        out = []
        for item in document["networks"]:
            value = get(item)
            out.append(float("nan") if value is None else float(value))
        return out

    series = {"ours (reference_sim)": values(lambda i: i["reference"]["seconds"])}
    if document["candidate"] is not None:
        series["candidate package"] = values(lambda i: i["candidate"]["seconds"])
    series["SCALE-Sim recorded"] = values(lambda i: i["scalesim"]["recorded_seconds"])
    if any(i["scalesim_run"] is not None for i in document["networks"]):
        series["SCALE-Sim run"] = values(lambda i: (i["scalesim_run"] or {}).get("seconds"))
    return series


def plot_runtime(document: dict[str, Any], path: Path) -> None:
    """``runtime.png``: grouped bars of seconds per network, log-scale y axis (Agg, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [item["network"] for item in document["networks"]]
    series = runtime_series(document)
    figure = Figure(figsize=(max(6.0, 1.2 * len(names) + 2), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / len(series)
    positions = np.arange(len(names), dtype=float)
    for index, (label, seconds) in enumerate(series.items()):
        bars = axes.bar(positions + (index - (len(series) - 1) / 2) * width, seconds, width, label=label)
        axes.bar_label(bars, labels=["" if math.isnan(s) else seconds_text(s) for s in seconds], fontsize=6)
    axes.set_yscale("log")
    axes.set_xticks(positions, names, rotation=20)
    axes.set_ylabel("wall time (s, log scale)")
    axes.set_title("Runtime per network on scale.cfg (Fig 3)")
    axes.legend(fontsize="small")
    axes.grid(axis="y", which="major", alpha=0.3)
    figure.savefig(path, dpi=120)


def write_results(document: dict[str, Any], out: Path) -> list[Path]:
    """Write ``table2.md``, ``table2.json`` and ``runtime.png`` into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    md, js, png = (out / name for name in FILES)
    md.write_text(format_markdown(document))
    js.write_text(json.dumps(document, indent=1) + "\n")
    plot_runtime(document, png)
    return [md, js, png]


# ---------------------------------------------------------------------------------------- running


def run_reference(network: Network, config: Path) -> Run:
    """The reference in process: ``read_topology`` + ``simulate``, timed together."""
    try:
        hardware = read_config(config).hardware
        start = time.perf_counter()
        results = simulate(read_topology(network.topology), hardware)
        seconds = time.perf_counter() - start
    except (InputError, SimulationError, OSError) as exc:
        return Run(None, None, f"{type(exc).__name__}: {exc}")
    return Run(tuple(r.total_cycles for r in results), seconds)


def find_package(run_dir: Path) -> Path:
    """The package folder of a run folder (its ``PACKAGE.json`` says ``simcoder-package/1``), or the folder itself."""
    if not run_dir.is_dir():
        raise Table2Error(f"--candidate: no such folder: {run_dir}")
    if is_package(run_dir):
        return run_dir.resolve()
    found = sorted(p.parent for p in run_dir.glob(f"*/{MANIFEST_FILE}") if is_package(p.parent))
    if not found:
        raise Table2Error(f"--candidate: no package in {run_dir} (no folder with a {MANIFEST_FILE} of format "
                          f"{PACKAGE_FORMAT}; did the run finish?)")
    if len(found) > 1:
        raise Table2Error(f"--candidate: {len(found)} packages in {run_dir} ({', '.join(p.name for p in found)}); "
                          "pass the package folder itself")
    return found[0].resolve()


def read_total_cycles(compute_report: Path) -> tuple[int, ...]:
    """Per-layer ``Total Cycles`` of a SCALE-Sim ``COMPUTE_REPORT.csv``."""
    cells = read_cells(compute_report)
    if not cells or "Total Cycles" not in cells[0]:
        raise ValueError(f"{compute_report}: no 'Total Cycles' column")
    column = cells[0].index("Total Cycles")
    return tuple(int(float(row[column])) for row in cells[1:])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def run_candidate(package: Path, network: Network, config: Path, work: Path, timeout: float) -> Run:
    """The package as a process (cwd: its parent), timed; its ``COMPUTE_REPORT.csv`` read back."""
    out = work / package.name / network.name
    command = [sys.executable, "-m", package.name, "-c", str(config.resolve()), "-t", str(network.topology.resolve()),
               "-p", str(out.resolve()), "-q"]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=package.parent, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return Run(None, time.perf_counter() - start, f"timed out after {timeout:g} s")
    except OSError as exc:
        return Run(None, None, f"could not start: {exc}")
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return Run(None, seconds, f"exit code {done.returncode}: {_last_line(done.stderr or done.stdout)}")
    try:
        run_name = read_config(config).run_name
        cycles = read_total_cycles(out / run_name / "COMPUTE_REPORT.csv")
    except (OSError, ValueError, IndexError, InputError) as exc:
        return Run(None, seconds, f"no readable COMPUTE_REPORT.csv: {exc}")
    return Run(cycles, seconds)


def prepare_scalesim() -> Path:
    """SCALE-Sim 2.0.2's python (installed on first use by :mod:`taskbench.scalesim`)."""
    venv = scalesim.scalesim_venv()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return scalesim.ensure_scalesim(venv)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        raise Table2Error(f"--scalesim: SCALE-Sim {scalesim.SCALESIM_VERSION} could not be installed into {venv} "
                          f"(needs the network on first use): {exc}") from None


def side_by_side_run(name: str, data: Path, work: Path) -> dict[str, Any]:
    """:func:`taskbench.scalesim.side_by_side` with its chatter sent to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        return scalesim.side_by_side(name, "os", None, data, work)


def run_scalesim(network: Network, data: Path, work: Path) -> ScaleSimRun:
    """SCALE-Sim and the reference CLI side by side on one network; failures become problems."""
    folder = work / "scalesim" / network.name
    try:
        result = side_by_side_run(network.name, data, folder)
    except (OSError, subprocess.SubprocessError, RuntimeError, ValueError, KeyError) as exc:
        return ScaleSimRun(None, None, False, (f"{type(exc).__name__}: {exc}",))
    return ScaleSimRun(float(result["scalesim_seconds"]), float(result["ours_seconds"]),
                       bool(result["cycles_equal"]), tuple(str(p) for p in result.get("problems", ())))


def machine() -> dict[str, Any]:
    """Python, numpy, platform, cores and the time of the run."""
    return {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
            "cores": os.cpu_count() or 1,
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")}


def _status(run: Run, network: Network) -> str:
    figures = run_figures(run, network)
    if figures["cycles"] is None:
        return f"failed ({figures['problem']})"
    return f"{error_text(figures['error_percent'])}, {seconds_text(run.seconds)} s"


def run_table2(dataset: Dataset, networks: Sequence[Network], *, package: Path | None = None,
               scalesim: bool = False, timeout: float = DEFAULT_TIMEOUT) -> list[Row]:
    """Run every network: the reference, the candidate package when given, SCALE-Sim when asked."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="simcoder-table2-") as tmp:
        work = Path(tmp)
        for network in networks:
            reference = run_reference(network, dataset.config)
            candidate = None if package is None else run_candidate(package, network, dataset.config, work, timeout)
            side = run_scalesim(network, dataset.root, work) if scalesim else None
            rows.append(Row(network, reference, candidate, side))
            parts = [f"{network.name}: {network.layers} layers; reference {_status(reference, network)}"]
            if candidate is not None:
                parts.append(f"candidate {_status(candidate, network)}")
            if side is not None:
                parts.append(f"SCALE-Sim run {seconds_text(side.seconds)} s"
                             + ("" if side.cycles_equal and not side.problems else " (PROBLEM)"))
            log.info("; ".join(parts))
    return rows


# -------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m graph.bench table2``."""
    parser.add_argument("--scalesim-dir", type=Path, default=None, metavar="DIR",
                        help="SCALE-Sim reference data laid out like ../shared/scalesim "
                             "(default $SIMCODER_SHARED/scalesim or ../shared/scalesim beside the repository)")
    parser.add_argument("--candidate", type=Path, default=None, metavar="RUN_DIR",
                        help="also run the standalone package of this run folder (or this package folder)")
    parser.add_argument("--scalesim", action="store_true",
                        help="also run SCALE-Sim 2.0.2 itself on each network and time it (slow: minutes to "
                             "half an hour per network; installs it on first use)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"where table2.md, table2.json and runtime.png go (default {DEFAULT_OUT})")
    parser.add_argument("--networks", default=None, metavar="NAMES",
                        help="comma-separated subset, e.g. NCF,ResNet50 (default all eight)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"per-network limit for the candidate package (default {DEFAULT_TIMEOUT:g})")


def _run(args: argparse.Namespace) -> int:
    root = args.scalesim_dir if args.scalesim_dir is not None else default_scalesim_dir()
    dataset = load_dataset(root)
    networks = select_networks(dataset, args.networks)
    missing = [str(n.topology) for n in networks if not n.topology.is_file()]
    if missing:
        raise Table2Error(f"topology not found: {missing[0]}")
    package = None if args.candidate is None else find_package(args.candidate)
    if args.scalesim:
        log.info("SCALE-Sim: %s", prepare_scalesim())
    if package is not None:
        log.info("candidate package: %s", package)
    rows = run_table2(dataset, networks, package=package, scalesim=args.scalesim, timeout=args.timeout)
    document = build_document(dataset, rows, package, machine=machine())
    try:
        written = write_results(document, args.out)
    except OSError as exc:
        raise Table2Error(f"--out {args.out}: cannot write: {exc}") from None
    sys.stdout.write(format_markdown(document))
    log.info("wrote %s", ", ".join(str(p) for p in written))
    return 0 if document["ok"] else 1


def main(args: argparse.Namespace) -> int:
    """Run ``table2``: 0 when every run matched SCALE-Sim, 1 when any differed or failed, 2 for bad input."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        return _run(args)
    except Table2Error as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate
