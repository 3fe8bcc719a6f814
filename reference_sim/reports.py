"""SCALE-Sim v2's report and trace files, written from :class:`~reference_sim.engine.LayerResult` rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .contract import TraceSet
from .engine import LayerResult

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


def _line(index: int, values: Sequence[int | float]) -> str:
    return f"{index}, " + ", ".join(str(v) for v in values) + ",\n"


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
        with path.open("w") as out:
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
            np.savetxt(directory / filename, arrays[key], fmt=fmt, delimiter=",")
    if binary:
        np.savez_compressed(directory / BINARY_TRACE_FILE, **arrays)  # type: ignore[arg-type]


def read_binary_traces(path: Path) -> TraceSet:
    """Load a ``traces.npz`` written by :func:`write_traces`."""
    with np.load(path) as data:
        return TraceSet(**{key: data[key] for key in TRACE_FILES})
