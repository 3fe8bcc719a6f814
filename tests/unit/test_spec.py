"""The native spec: scale_sim.yaml mirrors SCALE-Sim's scale.cfg; .cfg + topology convert losslessly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.spec import parse_agent_spec
from reference_sim import read_config, read_topology, simulate
from reference_sim.cli import main
from reference_sim.errors import InputError
from reference_sim.spec import load_spec, parse_spec
from tests.conftest import SCALESIM_DATA
from tests.helpers import first_result_difference

REPO = Path(__file__).resolve().parents[2]
CASES = sorted(p.name for p in (SCALESIM_DATA / "golden").glob("case*"))


def test_repo_spec_is_scalesim_scale_cfg(scalesim_data: Path) -> None:
    loaded = load_spec(REPO / "scale_sim.yaml")
    cfg = read_config(scalesim_data / "configs" / "scale.cfg")
    assert loaded.spec.hardware() == cfg.hardware
    assert loaded.spec.name == cfg.run_name
    assert loaded.spec.architecture.memory_banks == cfg.memory_banks


def test_repo_spec_sections() -> None:
    spec = load_spec(REPO / "scale_sim.yaml").spec
    assert spec.verification is not None and spec.modules is not None and spec.budget is not None
    dataflows = {spec.hardware(v).dataflow for v in spec.verification.variants}
    modes = {spec.hardware(v).bandwidth_mode for v in spec.verification.variants}
    assert dataflows == {"os", "ws", "is"} and modes == {"CALC", "USER"}


def test_optional_sections_may_be_left_out(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "schema_version: 1\nname: x\narchitecture:\n  array: {rows: 2, cols: 2}\n  dataflow: ws\n"
        "  sram_kib: {ifmap: 1, filter: 1, ofmap: 1}\n"
    )
    spec = load_spec(tmp_path / "s.yaml").spec
    assert spec.workloads == [] and spec.verification is None and spec.model is None
    assert spec.hardware().bandwidth_mode == "CALC" and spec.hardware().filter_offset == 10_000_000


@pytest.mark.parametrize("case", CASES[::5] or ["<no golden data>"])
def test_convert_is_lossless(scalesim_data: Path, tmp_path: Path, case: str) -> None:
    folder = scalesim_data / "golden" / case
    kind = json.loads((folder / "case.json").read_text())["layer"]["kind"]
    out = tmp_path / "spec.yaml"
    args = ["convert", "-c", str(folder / "scale.cfg"), "-t", str(folder / "topology.csv"), "-o", str(out)]
    assert main([*args, "-i", kind]) == 0
    loaded = load_spec(out)
    cfg = read_config(folder / "scale.cfg")
    layers = read_topology(folder / "topology.csv", kind)
    assert loaded.spec.hardware() == cfg.hardware
    assert loaded.spec.name == cfg.run_name
    assert loaded.workload("topology") == layers
    document = yaml.safe_load(out.read_text())
    assert document["architecture"]["dram"]["words_per_cycle"] == list(cfg.bandwidths) or [
        document["architecture"]["dram"]["words_per_cycle"]] == list(cfg.bandwidths)
    assert first_result_difference(case, simulate(layers, cfg.hardware),
                                   simulate(loaded.workload("topology"), loaded.spec.hardware())) is None


def test_topology_workload_paths_are_relative_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "g.csv").write_text("Layer, M, N, K,\ng0, 4, 5, 6,\n")
    (tmp_path / "s.yaml").write_text(
        "schema_version: 1\nname: x\narchitecture:\n  array: {rows: 2, cols: 2}\n  dataflow: os\n"
        "  sram_kib: {ifmap: 1, filter: 1, ofmap: 1}\n"
        "workloads:\n  - {name: g, topology: nets/g.csv, format: gemm}\n"
    )
    layers = load_spec(tmp_path / "s.yaml").workload("g")
    assert [(x.ifmap_h, x.ifmap_w, x.num_filters) for x in layers] == [(4, 6, 5)]


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace("rows: 32", "rows: true"), r"s\.yaml:\d+: architecture\.array\.rows: Input should be a valid "
                                                    r"integer"),
    (lambda t: t.replace("rows: 32", "rows: '32'"), r"architecture\.array\.rows: Input should be a valid integer"),
    (lambda t: t + "\nname: again\n", r"s\.yaml:\d+: not valid YAML: key 'name' is given twice"),
    (lambda t: t.replace("rows: 32", "rows: 1000000000"), r"architecture\.array\.rows: Input should be less than or "
                                                         r"equal to 65536"),
    (lambda t: t.replace("ifmap: 64", "ifmap: 1000000000000000000000000000000", 1),
     r"architecture\.sram_kib\.ifmap: Input should be less than or equal to 16777216"),
    (lambda t: t.replace("  attempts_per_module: 3", "  attempts_per_module: true"),
     r"budget\.attempts_per_module: Input should be a valid integer"),
    (lambda t: "a: " + "[" * 50_000 + "]" * 50_000, r"s\.yaml: not valid YAML: nested deeper than 64 levels"),
    (lambda t: "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 100)), r"nested deeper than 64 levels"),
])
def test_wrong_looking_right_is_refused(change: Any, message: str) -> None:
    text = change((REPO / "scale_sim.yaml").read_text())
    with pytest.raises(InputError, match=message) as info:
        parse_agent_spec(text, "s.yaml")
    assert len(str(info.value).splitlines()) == 1


def test_the_simulator_reads_a_spec_with_the_agents_sections_without_reading_them() -> None:
    text = (REPO / "scale_sim.yaml").read_text().replace("  attempts_per_module: 3", "  attempts_per_module: true")
    assert parse_spec(text, "s.yaml").budget == {"attempts_per_module": True, "repair_rounds": 5}
