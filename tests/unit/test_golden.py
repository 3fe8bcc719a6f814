"""Exactness against SCALE-Sim v2 (22f88b1): every golden case, all three reports and all six traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference_sim import read_config, read_topology, simulate
from tests.conftest import SCALESIM_DATA, record_checked
from tests.helpers import first_report_difference, first_trace_difference, load_csv_traces

CASES = sorted(p.name for p in (SCALESIM_DATA / "golden").glob("case*")) or ["<no golden data>"]


@pytest.mark.parametrize("case", CASES)
def test_golden_case_matches_scalesim(scalesim_data: Path, case: str) -> None:
    folder = scalesim_data / "golden" / case
    meta = json.loads((folder / "case.json").read_text())
    config = read_config(folder / "scale.cfg")
    layers = read_topology(folder / "topology.csv", meta["layer"]["kind"])
    with_traces = (folder / "layer0").is_dir()
    results = simulate(layers, config.hardware, traces=with_traces)
    assert results[0].total_cycles == meta["total_cycles"], f"{case}: total cycles"
    difference = first_report_difference(case, results, folder)
    assert difference is None, difference
    if with_traces:
        assert results[0].traces is not None
        difference = first_trace_difference(case, load_csv_traces(folder / "layer0"), results[0].traces)
        assert difference is None, difference
    record_checked("golden cases", case)
    if with_traces:
        record_checked("golden cases with all six traces", case)
