"""SCALE-Sim v2's report and trace files, written from :class:`~reference_sim.engine.LayerResult` rows.

Folders for them are made with :func:`output_folder`, which refuses any name that would put them
outside the output folder the caller chose (names come from input files: spec and workload names,
SCALE-Sim's ``run_name``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .contract import TraceSet
from .engine import LayerResult
from .errors import InputError

COMPUTE_HEADER = "LayerID, Total Cycles, Stall Cycles, Overall Util %, Mapping Efficiency %, Compute Util %,"
BANDWIDTH_HEADER = (
    "LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, "
    "Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,"
)
DETAIL_HEADER = (
    "LayerID, "
    "SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, "
    "SRAM Filter Start Cycle, SRAM Filter Stop Cycle, SRAM Filter Reads, "
    "SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, SRAM OFMAP Writes, "
    "DRAM IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, "
    "DRAM Filter Start Cycle, DRAM Filter Stop Cycle, DRAM Filter Reads, "
    "DRAM OFMAP Start Cycle, DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,"
)
REPORT_FILES = ("COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv")
TRACE_FILES = {
    "ifmap_sram": "IFMAP_SRAM_TRACE.csv",
    "filter_sram": "FILTER_SRAM_TRACE.csv",
    "ofmap_sram": "OFMAP_SRAM_TRACE.csv",
    "ifmap_dram": "IFMAP_DRAM_TRACE.csv",
    "filter_dram": "FILTER_DRAM_TRACE.csv",
    "ofmap_dram": "OFMAP_DRAM_TRACE.csv",
}
BINARY_TRACE_FILE = "traces.npz"


def folder_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one folder inside an output folder (one line), or ``None`` when it can.

    A folder name must be a single path component: not empty, not ``.`` or ``..``, without ``/``,
    ``\\`` or NUL (so it is not absolute either).  Spaces and other characters are allowed.
    """
    if not name:
        reason = "it is empty"
    elif name in (".", ".."):
        reason = "it names the folder itself or its parent"
    elif name.startswith(("/", "\\")):
        reason = "it is an absolute path"
    else:
        bad = next((char for char in ("/", "\\", "\0") if char in name), None)
        if bad is None:
            return None
        reason = f"it contains {bad!r}"
    return f"{name!r} is not a single folder name: {reason}"


def check_output(flag: str, output: str, inputs: Sequence[str | Path | None]) -> None:
    """Refuse an empty output path, and one that is (or resolves to) one of ``inputs``: outputs never overwrite
    inputs.  ``-`` (standard output) is always fine."""
    if output == "-":
        return
    if not output.strip():
        raise InputError(flag, "is empty; give a path")
    target = Path(output).resolve()
    for given in inputs:
        if given is not None and str(given) not in ("", "-") and Path(given).resolve() == target:
            raise InputError(flag, f"{output} is an input of this command; choose another output")


def output_folder(root: str | Path, *names: str) -> Path:
    """Create ``root/names[0]/names[1]/...`` and return it; it must lie inside ``root``.

    Every name must pass :func:`folder_name_problem`, and the folder, with symbolic links resolved,
    must be inside ``root`` resolved; otherwise :class:`~reference_sim.errors.InputError` names
    ``root`` and nothing is created.
    """
    for name in names:
        problem = folder_name_problem(name)
        if problem is not None:
            raise InputError(root, problem, field="output folder")
    folder = Path(root).joinpath(*names)
    base = Path(root).resolve()
    resolved = folder.resolve()
    if not resolved.is_relative_to(base):
        raise InputError(root, f"{'/'.join(names)!r} resolves to {str(resolved)!r}, outside {str(base)!r}",
                         field="output folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _line(index: int, values: Sequence[int | float]) -> str:
    return f"{index}, " + ", ".join(str(v) for v in values) + ",\n"


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Name ``path`` in an ``OSError`` raised while it is written (a full disk says which file)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None


def write_reports(results: Sequence[LayerResult], directory: Path) -> list[Path]:
    """Write the three SCALE-Sim reports into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = {
        "COMPUTE_REPORT.csv": (COMPUTE_HEADER, [r.compute_row for r in results]),
        "BANDWIDTH_REPORT.csv": (BANDWIDTH_HEADER, [r.bandwidth_row for r in results]),
        "DETAILED_ACCESS_REPORT.csv": (DETAIL_HEADER, [r.detail_row for r in results]),
    }
    paths = []
    for name, (header, values) in rows.items():
        path = directory / name
        with writing(path), path.open("w") as out:
            out.write(header + "\n")
            for result, row in zip(results, values):
                out.write(_line(result.index, row))
        paths.append(path)
    return paths


def write_traces(traces: TraceSet, directory: Path, *, csv: bool = True, binary: bool = True) -> None:
    """Write one layer's six traces: SCALE-Sim CSVs and/or one compressed ``traces.npz``."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = traces.as_dict()
    if csv:
        for key, filename in TRACE_FILES.items():
            fmt = "%i" if key.endswith("_sram") else "%s"
            with writing(directory / filename):
                np.savetxt(directory / filename, arrays[key], fmt=fmt, delimiter=",")
    if binary:
        with writing(directory / BINARY_TRACE_FILE):
            np.savez_compressed(directory / BINARY_TRACE_FILE, **arrays)  # type: ignore[arg-type]


def read_binary_traces(path: Path) -> TraceSet:
    """Load a ``traces.npz`` written by :func:`write_traces`."""
    with np.load(path) as data:
        return TraceSet(**{key: data[key] for key in TRACE_FILES})


def summary_table(results: Sequence[LayerResult]) -> str:
    """A per-layer table of cycles, stalls, utilisation and DRAM traffic, with totals."""
    header = f"{'layer':>5}  {'name':<24} {'cycles':>12} {'stalls':>10} {'util %':>7} {'map eff %':>9} " \
             f"{'DRAM rd words':>14} {'DRAM wr words':>14}"
    lines = [header, "-" * len(header)]
    for r in results:
        reads = r.dram_accesses["ifmap"] + r.dram_accesses["filter"]
        lines.append(
            f"{r.index:>5}  {r.name[:24]:<24} {r.total_cycles:>12} {r.stall_cycles:>10} {r.overall_util_pct:>7.2f} "
            f"{r.mapping_efficiency_pct:>9.2f} {reads:>14} {r.dram_accesses['ofmap']:>14}"
        )
    lines.append("-" * len(header))
    total_reads = sum(r.dram_accesses["ifmap"] + r.dram_accesses["filter"] for r in results)
    lines.append(
        f"{'total':>5}  {len(results)!s:<24} {sum(r.total_cycles for r in results):>12} "
        f"{sum(r.stall_cycles for r in results):>10} {'':>7} {'':>9} {total_reads:>14} "
        f"{sum(r.dram_accesses['ofmap'] for r in results):>14}"
    )
    return "\n".join(lines)
