"""Design-space sweeps: grid parsing, the tidy CSV, equality with direct simulation, parallel runs."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from reference_sim import Hardware, InputError, Layer, SimulationError, read_topology, simulate
from reference_sim import sweep as sweep_module
from reference_sim.cli import main
from reference_sim.engine import estimate_requests, layer_shape
from reference_sim.errors import WorkLimitError
from reference_sim.sweep import (
    COLUMNS,
    CYCLE_COLUMNS,
    DEFAULT_BASE,
    grid,
    pareto_front,
    pareto_rows,
    parse_arrays,
    parse_bandwidths,
    parse_dataflows,
    parse_sram,
    read_csv,
    sram_product,
    sweep,
    write_csv,
)

BASE = Hardware(array_rows=8, array_cols=8, dataflow="os", ifmap_sram_kib=2, filter_sram_kib=2, ofmap_sram_kib=2,
                bandwidth_mode="USER", dram_words_per_cycle=4)
LAYERS = [
    Layer("conv_a", 12, 12, 3, 3, 6, 10, 1, 1),
    Layer("gemm_b", 20, 9, 1, 9, 1, 7, 1, 1),
    Layer("conv_a_again", 12, 12, 3, 3, 6, 10, 1, 1),
    Layer("strided", 15, 11, 3, 2, 3, 5, 2, 3),
]
TOPOLOGY = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
conv_a, 12, 12, 3, 3, 6, 10, 1,
strided, 15, 11, 3, 2, 3, 5, 2, 3,
"""
CONFIG_COLUMNS = ("array_rows", "array_cols", "dataflow", "ifmap_sram_kib", "filter_sram_kib", "ofmap_sram_kib",
                  "bandwidth_mode", "words_per_cycle")


def small_grid() -> list[Hardware]:
    return grid(BASE, arrays=[(4, 4), (8, 4)], sram_kib=[(1, 1, 1), (4, 2, 1)], dataflows=["os", "ws", "is"],
                bandwidths=[("CALC", None), ("USER", 2)])


def test_parse_arrays() -> None:
    assert parse_arrays("16x16, 32X8") == [(16, 16), (32, 8)]
    assert parse_arrays("8") == [(8, 8)]


@pytest.mark.parametrize("text, message", [
    ("16y4", "'16y4' is not ROWSxCOLS"),
    ("0x4", "must be positive, got 0"),
    ("4x4x4", "'4x4x4' is not ROWSxCOLS"),
    ("ax4", "'a' is not an integer"),
    ("16x16,", "empty value"),
    ("", "empty value"),
])
def test_parse_arrays_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_arrays(text)
    assert str(info.value).startswith("--array: ")


def test_parse_sram() -> None:
    assert parse_sram("32,64") == [(32, 32, 32), (64, 64, 64)]
    assert parse_sram("32/64/16") == [(32, 64, 16)]


@pytest.mark.parametrize("text, message", [
    ("32/64", "is not KIB or IFMAP/FILTER/OFMAP"),
    ("-1", "must be positive"),
    ("big", "'big' is not an integer"),
])
def test_parse_sram_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_sram(text)


def test_parse_dataflows() -> None:
    assert parse_dataflows("OS,ws, is") == ["os", "ws", "is"]
    with pytest.raises(InputError, match=r"--dataflow: unknown dataflow 'xs' \(expected os, ws or is\)"):
        parse_dataflows("os,xs")


def test_parse_bandwidths() -> None:
    assert parse_bandwidths("CALC,user:10,USER:3") == [("CALC", None), ("USER", 10), ("USER", 3)]


@pytest.mark.parametrize("text, message", [
    ("USER", "USER needs words per cycle"),
    ("USER:0", "must be positive"),
    ("USER:x", "'x' is not an integer"),
    ("CALC:4", "is not CALC or USER:WORDS"),
    ("FAST", "is not CALC or USER:WORDS"),
])
def test_parse_bandwidths_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_bandwidths(text)


def test_grid_is_the_cartesian_product_and_keeps_base_values() -> None:
    configs = small_grid()
    assert len(configs) == 2 * 2 * 3 * 2
    assert len(set(configs)) == len(configs)
    assert all(hw.ifmap_offset == BASE.ifmap_offset and hw.word_bytes == BASE.word_bytes for hw in configs)
    assert {(hw.bandwidth_mode, hw.dram_words_per_cycle) for hw in configs} == {("CALC", 4), ("USER", 2)}
    assert grid(BASE) == [BASE]
    only_flows = grid(BASE, dataflows=["ws", "os", "ws"])
    assert only_flows == [dataclasses.replace(BASE, dataflow="ws"), BASE]


def test_sweep_equals_direct_simulation() -> None:
    configs = small_grid()
    rows = sweep(LAYERS, configs, jobs=1)
    assert len(rows) == len(configs) * len(LAYERS)
    for config_index, hw in enumerate(configs):
        expected = simulate(LAYERS, hw)
        got = rows[config_index * len(LAYERS):(config_index + 1) * len(LAYERS)]
        for e, g in zip(expected, got):
            assert (g.array_rows, g.array_cols, g.dataflow) == (hw.array_rows, hw.array_cols, hw.dataflow)
            assert (g.ifmap_sram_kib, g.filter_sram_kib, g.ofmap_sram_kib) == (
                hw.ifmap_sram_kib, hw.filter_sram_kib, hw.ofmap_sram_kib)
            assert g.bandwidth_mode == hw.bandwidth_mode
            assert g.words_per_cycle == (hw.dram_words_per_cycle if hw.bandwidth_mode == "USER" else None)
            assert (g.layer_index, g.layer_name) == (e.index, e.name)
            assert [g.total_cycles, g.stall_cycles, g.overall_util_pct, g.mapping_efficiency_pct,
                    g.compute_util_pct] == e.compute_row
            assert (g.sram_ifmap_reads, g.sram_filter_reads, g.sram_ofmap_writes) == (
                e.sram_accesses["ifmap"], e.sram_accesses["filter"], e.sram_accesses["ofmap"])
            assert (g.dram_ifmap_reads, g.dram_filter_reads, g.dram_ofmap_writes) == (
                e.dram_accesses["ifmap"], e.dram_accesses["filter"], e.dram_accesses["ofmap"])
    assert any(r.stall_cycles > 0 for r in rows), "the grid should include configurations that stall"


def test_jobs_one_and_two_agree_and_progress_counts_tasks() -> None:
    configs = small_grid()[:6]
    seen: list[tuple[int, int]] = []
    serial = sweep(LAYERS, configs, jobs=1, on_progress=lambda done, total: seen.append((done, total)))
    parallel = sweep(LAYERS, configs, jobs=2)
    assert parallel == serial
    distinct_shapes = 3
    assert seen[-1] == (len(configs) * distinct_shapes, len(configs) * distinct_shapes)
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        sweep(LAYERS, configs, jobs=0)


def test_failing_layer_stops_the_sweep_or_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sweep_module.simulate_layer_srams

    def flaky(layer: Layer, hardwares: Sequence[Hardware]) -> object:
        if layer.filter_h == 1 and hardwares[0].dataflow == "ws":
            raise SimulationError("two CALC epochs end in one cycle")
        return real(layer, hardwares)

    monkeypatch.setattr(sweep_module, "simulate_layer_srams", flaky)
    configs = grid(BASE, dataflows=["os", "ws"])
    expected = r"8x8 ws sram 2/2/2 KiB USER:4: layer 'gemm_b' \(ifmap 20x9x1, .*\): two CALC epochs"
    with pytest.raises(SimulationError, match=expected):
        sweep(LAYERS, configs, jobs=1)
    rows = sweep(LAYERS, configs, jobs=1, skip_errors=True)
    assert [(r.dataflow, r.layer_name) for r in rows] == [("os", layer.name) for layer in LAYERS] + [
        ("ws", layer.name) for layer in LAYERS if layer.filter_h != 1]


def test_layers_beyond_the_work_limit_are_refused_before_any_job(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    configs = grid(BASE, arrays=[(4, 4), (8, 8)])
    estimates = {(c, layer_shape(layer)): estimate_requests(layer, hw) for c, hw in enumerate(configs)
                 for layer in LAYERS}
    limit = sorted(set(estimates.values()))[-2]
    over = {key for key, estimate in estimates.items() if estimate > limit}
    assert over and len(over) < len(estimates)
    monkeypatch.setenv("SIMCODER_MAX_REQUESTS", str(limit))
    ran: list[tuple[int, Layer]] = []
    real = sweep_module._run_task

    def spy(task: tuple[tuple[int, ...], tuple[Hardware, ...], Layer]) -> object:
        ran.extend((config_index, task[2]) for config_index in task[0])
        return real(task)

    monkeypatch.setattr(sweep_module, "_run_task", spy)
    with pytest.raises(WorkLimitError, match=r"^4x4 os sram 2/2/2 KiB USER:4: layer \d \('\w+'\): about .* the "
                                             r"limit of .*; raise it with --max-requests N"):
        sweep(LAYERS, configs, jobs=1)
    assert ran == []
    rows = sweep(LAYERS, configs, jobs=1, skip_errors=True)
    by_name = {layer.name: layer_shape(layer) for layer in LAYERS}
    assert {(0 if r.array_rows == 4 else 1, by_name[r.layer_name]) for r in rows} == set(estimates) - over
    assert set(ran) == set(estimates) - over
    assert "skipped before the sweep started: 4x4 os sram 2/2/2 KiB USER:4: layer" in caplog.text


def test_csv_columns_and_rows() -> None:
    configs = small_grid()[:4]
    rows = sweep(LAYERS, configs, jobs=1)
    out = io.StringIO()
    write_csv(rows, out)
    text = out.getvalue()
    header = text.splitlines()[0].split(",")
    assert tuple(header) == COLUMNS
    assert tuple(header[:len(CONFIG_COLUMNS)]) == CONFIG_COLUMNS
    assert header[len(CONFIG_COLUMNS):len(CONFIG_COLUMNS) + 2] == ["layer_index", "layer_name"]
    assert {"total_cycles", "stall_cycles", "overall_util_pct", "mapping_efficiency_pct", "compute_util_pct",
            "dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes"} <= set(header)
    parsed = read_csv(text)
    assert len(parsed) == len(configs) * len(LAYERS)
    for row, record in zip(rows, parsed):
        assert int(record["total_cycles"]) == row.total_cycles
        assert float(record["overall_util_pct"]) == row.overall_util_pct
        assert record["words_per_cycle"] == ("" if row.bandwidth_mode == "CALC" else str(row.words_per_cycle))


def test_cli_sweep_writes_the_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    out = tmp_path / "sweep.csv"
    code = main(["sweep", "-t", str(topology), "--array", "4x4,8x8", "--sram-kib", "1,64", "--dataflow", "os,is",
                 "--bandwidth", "CALC,USER:3", "--jobs", "2", "-o", str(out)])
    assert code == 0
    with out.open() as f:
        records = list(csv.DictReader(f))
    assert len(records) == 2 * 2 * 2 * 2 * 2
    assert {r["layer_name"] for r in records} == {"conv_a", "strided"}
    assert {(r["array_rows"], r["array_cols"]) for r in records} == {("4", "4"), ("8", "8")}
    expected = simulate(read_topology(topology), dataclasses.replace(
        DEFAULT_BASE, array_rows=4, array_cols=4, ifmap_sram_kib=1, filter_sram_kib=1, ofmap_sram_kib=1,
        dataflow="is", bandwidth_mode="USER", dram_words_per_cycle=3))
    got = [r for r in records if r["array_rows"] == "4" and r["ifmap_sram_kib"] == "1" and r["dataflow"] == "is"
           and r["bandwidth_mode"] == "USER"]
    assert [int(r["total_cycles"]) for r in got] == [e.total_cycles for e in expected]
    assert [int(r["stall_cycles"]) for r in got] == [e.stall_cycles for e in expected]
    err = capsys.readouterr().err
    assert "16 configurations x 2 layers = 32 rows" in err


def test_cli_sweeps_each_sram_on_its_own_axis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--ifmap-sram-kib`` and ``--filter-sram-kib`` give every combination; the ofmap keeps the base size."""
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    out = tmp_path / "sweep.csv"
    assert main(["sweep", "-t", str(topology), "--array", "4x4", "--ifmap-sram-kib", "1,64", "--filter-sram-kib",
                 "1, 2", "--dataflow", "ws", "--bandwidth", "USER:3", "--jobs", "1", "-o", str(out)]) == 0
    with out.open() as f:
        records = list(csv.DictReader(f))
    srams = [(1, 1, 64), (1, 2, 64), (64, 1, 64), (64, 2, 64)]
    assert [(int(r["ifmap_sram_kib"]), int(r["filter_sram_kib"]), int(r["ofmap_sram_kib"])) for r in records] == [
        kib for kib in srams for _ in range(2)]
    for i, f, o in srams:
        hw = dataclasses.replace(DEFAULT_BASE, array_rows=4, array_cols=4, dataflow="ws", ifmap_sram_kib=i,
                                 filter_sram_kib=f, ofmap_sram_kib=o, bandwidth_mode="USER", dram_words_per_cycle=3)
        got = [r for r in records if (int(r["ifmap_sram_kib"]), int(r["filter_sram_kib"])) == (i, f)]
        assert [(int(r["total_cycles"]), int(r["dram_ifmap_reads"]), int(r["dram_filter_reads"])) for r in got] == [
            (e.total_cycles, e.dram_accesses["ifmap"], e.dram_accesses["filter"])
            for e in simulate(read_topology(topology), hw)]
    assert "4 configurations x 2 layers = 8 rows" in capsys.readouterr().err
    assert sram_product(BASE, ofmap_kib=[4, 8]) == [(2, 2, 4), (2, 2, 8)]
    assert main(["sweep", "-t", str(topology), "--sram-kib", "1", "--ofmap-sram-kib", "2"]) == 2
    assert capsys.readouterr().err == (
        "error: --ofmap-sram-kib: give either --sram-kib or the --*-sram-kib axes, not both\n")
    assert main(["sweep", "-t", str(topology), "--filter-sram-kib", "2,0"]) == 2
    assert capsys.readouterr().err == "error: --filter-sram-kib: must be positive, got 0 (SRAM KiB)\n"


def test_cli_sweep_bad_grid_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    assert main(["sweep", "-t", str(topology), "--bandwidth", "CALC,USER"]) == 2
    assert capsys.readouterr().err == "error: --bandwidth: 'USER': USER needs words per cycle, e.g. USER:10\n"
    assert main(["sweep", "-t", str(topology), "--jobs", "0"]) == 2
    assert capsys.readouterr().err == "error: --jobs: must be positive, got 0\n"
    assert main(["sweep", "-t", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err


def test_sweep_reproduces_table2_cycles(scalesim_data: Path) -> None:
    table2 = json.loads((scalesim_data / "table2.json").read_text())["networks"]["NCF"]
    layers = read_topology(scalesim_data / "table2" / "NCF.csv")
    rows = sweep(layers, [DEFAULT_BASE], jobs=2)
    assert [r.total_cycles for r in rows] == table2["cycles"]
    assert [r.stall_cycles for r in rows] == table2["stall_cycles"]


def test_pareto_front_of_hand_made_points() -> None:
    points = [
        (10, 5, 5),
        (10, 5, 5),
        (9, 6, 5),
        (11, 5, 5),
        (10, 4, 6),
        (12, 4, 6),
        (10, 6, 4),
        (9, 6, 6),
    ]
    assert pareto_front(points) == [0, 1, 2, 4, 6]
    assert pareto_front([(3, 3, 3)]) == [0]
    assert pareto_front([]) == []
    assert pareto_front([(1, 2, 3), (1, 2, 3)]) == [0, 1]
    assert pareto_front([(2, 2, 2), (1, 2, 2)]) == [1]


def dominated(p: tuple[int, ...], q: tuple[int, ...]) -> bool:
    return all(b <= a for a, b in zip(p, q)) and any(b < a for a, b in zip(p, q))


def test_pareto_rows_of_a_sweep() -> None:
    configs = grid(BASE, arrays=[(4, 4), (8, 4), (2, 16), (8, 8)], sram_kib=[(1, 1, 1), (4, 2, 1), (2, 2, 2)],
                   dataflows=["os", "ws", "is"], bandwidths=[("CALC", None)])
    rows = sweep(LAYERS, configs, figures="cycles", jobs=1)
    totals = {hw: sum(r.total_cycles for r in rows[i * len(LAYERS):(i + 1) * len(LAYERS)])
              for i, hw in enumerate(configs)}
    points = {hw: (total, hw.ifmap_sram_kib + hw.filter_sram_kib + hw.ofmap_sram_kib, hw.array_rows * hw.array_cols)
              for hw, total in totals.items()}
    expected = [hw for hw, p in points.items() if not any(dominated(p, q) for q in points.values())]
    front = pareto_rows(rows, len(LAYERS))
    assert 1 < len(front) < len(configs)
    assert [(f.array_rows, f.array_cols, f.dataflow, f.ifmap_sram_kib, f.filter_sram_kib, f.ofmap_sram_kib,
             f.total_cycles, f.sram_kib, f.array_pes) for f in front] == [
        (hw.array_rows, hw.array_cols, hw.dataflow, hw.ifmap_sram_kib, hw.filter_sram_kib, hw.ofmap_sram_kib,
         *points[hw]) for hw in expected]
    missing_one = [r for r in rows if (r.array_rows, r.array_cols, r.dataflow, r.layer_index) != (
        front[0].array_rows, front[0].array_cols, front[0].dataflow, 0)]
    removed = (front[0].array_rows, front[0].array_cols, front[0].dataflow)
    kept = pareto_rows(missing_one, len(LAYERS))
    assert kept and removed not in {(f.array_rows, f.array_cols, f.dataflow) for f in kept}


def test_cycles_rows_csv_has_only_the_compute_columns() -> None:
    configs = small_grid()[:4]
    rows = sweep(LAYERS, configs, figures="cycles", jobs=1)
    full = sweep(LAYERS, configs, jobs=1)
    out = io.StringIO()
    write_csv(rows, out)
    parsed = read_csv(out.getvalue())
    assert tuple(out.getvalue().splitlines()[0].split(",")) == CYCLE_COLUMNS == COLUMNS[:15]
    assert len(parsed) == len(full)
    for record, f in zip(parsed, full):
        assert int(record["total_cycles"]) == f.total_cycles and int(record["stall_cycles"]) == f.stall_cycles
        assert float(record["compute_util_pct"]) == f.compute_util_pct
        assert record["words_per_cycle"] == ("" if f.bandwidth_mode == "CALC" else str(f.words_per_cycle))
    empty = io.StringIO()
    write_csv([], empty, figures="cycles")
    assert empty.getvalue() == ",".join(CYCLE_COLUMNS) + "\n"
    with pytest.raises(ValueError, match="figures must be 'full' or 'cycles'"):
        sweep(LAYERS, configs, figures="fast", jobs=1)  # type: ignore[call-overload]


def test_cli_sweep_cycles_and_pareto(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    grid_flags = ["--array", "4x4,8x8,2x16", "--sram-kib", "1,64", "--dataflow", "os,is", "--bandwidth", "CALC,USER:3"]
    full, cycles, front = tmp_path / "full.csv", tmp_path / "cycles.csv", tmp_path / "front.csv"
    assert main(["sweep", "-t", str(topology), *grid_flags, "--jobs", "1", "-o", str(full)]) == 0
    assert main(["sweep", "-t", str(topology), *grid_flags, "--jobs", "1", "--figures", "cycles", "-o", str(cycles),
                 "--pareto", str(front)]) == 0
    err = capsys.readouterr().err
    assert "cycles figures" in err and f"on the Pareto front, wrote {front}" in err
    full_rows, cycle_rows = read_csv(full.read_text()), read_csv(cycles.read_text())
    assert [{k: r[k] for k in CYCLE_COLUMNS} for r in full_rows] == cycle_rows
    front_rows = read_csv(front.read_text())
    totals: dict[tuple[str, ...], int] = {}
    for r in full_rows:
        key = tuple(r[k] for k in CONFIG_COLUMNS)
        totals[key] = totals.get(key, 0) + int(r["total_cycles"])
    points = {key: (total, sum(int(k) for k in key[3:6]), int(key[0]) * int(key[1])) for key, total in totals.items()}
    expected = [key for key, p in points.items() if not any(dominated(p, q) for q in points.values())]
    assert [tuple(r[k] for k in CONFIG_COLUMNS) for r in front_rows] == expected
    assert [int(r["total_cycles"]) for r in front_rows] == [points[key][0] for key in expected]


def test_cli_sweep_bad_figures_and_pareto_are_one_line_errors(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    assert main(["sweep", "-t", str(topology), "--figures", "fast"]) == 2
    assert capsys.readouterr().err == "error: --figures: 'fast' is not full or cycles\n"
    assert main(["sweep", "-t", str(topology), "--pareto", str(tmp_path / "no" / "front.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: --pareto: folder ")
