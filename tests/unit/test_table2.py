"""Exactness on the eight networks of the SimulatorCoder paper's Table 2 (SCALE-Sim v2 on configs/scale.cfg)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reference_sim import read_config, read_topology, simulate
from tests.conftest import SCALESIM_DATA, record_checked
from tests.helpers import first_report_difference

TABLE2 = SCALESIM_DATA / "table2.json"
NETWORKS = sorted(json.loads(TABLE2.read_text())["networks"]) if TABLE2.is_file() else ["<no table2 data>"]


@pytest.mark.parametrize("network", NETWORKS)
def test_table2_network_matches_scalesim(scalesim_data: Path, network: str) -> None:
    entry = json.loads((scalesim_data / "table2.json").read_text())["networks"][network]
    config = read_config(scalesim_data / "configs" / "scale.cfg")
    layers = read_topology(scalesim_data / entry["topology"])
    start = time.perf_counter()
    results = simulate(layers, config.hardware)
    seconds = time.perf_counter() - start
    assert len(results) == entry["layers"], f"{network}: layer count"
    for r, cycles, stalls in zip(results, entry["cycles"], entry["stall_cycles"]):
        assert (r.total_cycles, r.stall_cycles) == (cycles, stalls), f"{network} layer {r.index} ({r.name})"
    assert sum(r.total_cycles for r in results) == entry["total"]
    difference = first_report_difference(network, results, scalesim_data / "table2" / network)
    assert difference is None, difference
    record_checked("Table 2 networks", f"{network} ({seconds:.1f} s, SCALE-Sim {entry['scalesim_seconds']} s)")


USER_BW10 = SCALESIM_DATA / "user_bw10" / "runs.json"
USER_NETWORKS = sorted(json.loads(USER_BW10.read_text())) if USER_BW10.is_file() else ["<no user_bw10 data>"]


@pytest.mark.parametrize("network", USER_NETWORKS)
def test_user_bandwidth_reports_match_scalesim(scalesim_data: Path, network: str) -> None:
    """The Table-2 networks SCALE-Sim finished under USER bandwidth 10 (OS): all three reports, field by field."""
    import dataclasses

    entry = json.loads((scalesim_data / "user_bw10" / "runs.json").read_text())[network]
    base = read_config(scalesim_data / "configs" / "scale.cfg").hardware
    hardware = dataclasses.replace(base, bandwidth_mode="USER", dram_words_per_cycle=10)
    results = simulate(read_topology(scalesim_data / entry["topology"]), hardware)
    assert sum(r.total_cycles for r in results) == entry["total"]
    assert sum(r.stall_cycles for r in results) == entry["stall_total"]
    assert first_report_difference(network, results, scalesim_data / "user_bw10" / network) is None
