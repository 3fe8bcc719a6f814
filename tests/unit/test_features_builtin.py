"""Built-in features: neutral settings equal the reference exactly; energy is counts times the table;
batch follows its per-dataflow semantics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from features.api import Case
from features.builtin import BUILTINS
from features.catalogue import load_catalogue
from features.compare import result_difference
from features.oracles import ORACLES
from features.reports import write_tables
from features.semantics import ENERGY_COLUMNS, ENERGY_PJ_COLUMNS, ENERGY_REPORT, image_words, ofmap_words
from reference_sim import Hardware, Layer, simulate

LAYERS = [Layer("conv3x3", 7, 6, 3, 3, 2, 3, 1, 1), Layer("conv1x1", 5, 4, 1, 1, 3, 4, 1, 1),
          Layer("gemm", 5, 6, 1, 6, 1, 4, 1, 1), Layer("conv5x5s2", 9, 8, 5, 5, 1, 2, 2, 2)]
HARDWARE = [
    Hardware(4, 4, "os", 64, 64, 64),
    Hardware(4, 8, "ws", 1, 1, 1, bandwidth_mode="USER", dram_words_per_cycle=1),
    Hardware(8, 4, "is", 1, 2, 1, bandwidth_mode="USER", dram_words_per_cycle=3),
]
CATALOGUE = load_catalogue()


def assert_equal_runs(expected: list, actual: list) -> None:  # type: ignore[type-arg]
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        assert result_difference(want, got) is None


@pytest.mark.parametrize("hardware", HARDWARE, ids=lambda h: h.dataflow)
@pytest.mark.parametrize("feature", ["energy", "batch"])
def test_neutral_setting_equals_the_reference(feature: str, hardware: Hardware) -> None:
    neutral = CATALOGUE[feature].definition.neutral()
    run = BUILTINS[feature](LAYERS, hardware, neutral, traces=True)
    assert_equal_runs(simulate(LAYERS, hardware, traces=True), run.results)


def test_energy_of_a_hand_computed_gemm() -> None:
    layer = Layer("gemm", 4, 4, 1, 4, 1, 4, 1, 1)
    hardware = Hardware(4, 4, "os", 64, 64, 64)
    table = {name: float(i + 1) for i, (_, name) in enumerate(ENERGY_PJ_COLUMNS.values())}
    row = BUILTINS["energy"]([layer], hardware, table).tables[ENERGY_REPORT][0]
    counts = {"macs": 64, "idle_pe_cycles": 16 * 9 - 64,
              "ifmap_sram_reads_words": 16, "filter_sram_reads_words": 16, "ofmap_sram_reads_words": 16,
              "ifmap_sram_writes_words": 16, "filter_sram_writes_words": 16, "ofmap_sram_writes_words": 16 + 8,
              "dram_reads_words": 32, "dram_writes_words": 16}
    assert {k: row[k] for k in counts} == counts
    expected_pj = {"mac_pj": 64 * 1, "idle_pj": 80 * 2, "ifmap_sram_read_pj": 16 * 3, "filter_sram_read_pj": 16 * 4,
                   "ofmap_sram_read_pj": 16 * 5, "ifmap_sram_write_pj": 16 * 6, "filter_sram_write_pj": 16 * 7,
                   "ofmap_sram_write_pj": 24 * 8, "dram_read_pj": 32 * 9, "dram_write_pj": 16 * 10}
    assert {k: row[k] for k in expected_pj} == expected_pj
    assert row["total_pj"] == sum(expected_pj.values())
    oracle = ORACLES["energy"](Case("energy", "hand", (layer,), hardware, table), False)
    assert oracle.tables[ENERGY_REPORT][0] == row


def test_energy_report_is_written_with_its_columns(tmp_path: Path) -> None:
    table = dict.fromkeys(CATALOGUE["energy"].definition.neutral(), 0.5)
    run = BUILTINS["energy"](LAYERS[:2], HARDWARE[0], table)
    (path,) = write_tables(run.tables, {ENERGY_REPORT: ENERGY_COLUMNS}, tmp_path)
    lines = path.read_text().splitlines()
    assert lines[0] == ", ".join(ENERGY_COLUMNS) + ","
    assert len(lines) == 3 and lines[1].startswith("0, ") and lines[2].startswith("1, ")


@pytest.mark.parametrize("hardware", HARDWARE, ids=lambda h: h.dataflow)
def test_batch_of_a_gemm_is_the_gemm_of_b_times_m_rows(hardware: Hardware) -> None:
    gemm = LAYERS[2]
    run = BUILTINS["batch"]([gemm], hardware, {"batch_images": 3}, traces=True)
    tall = simulate([replace(gemm, ifmap_h=3 * gemm.ifmap_h)], hardware, traces=True)
    assert_equal_runs(tall, run.results)


@pytest.mark.parametrize("hardware", HARDWARE, ids=lambda h: h.dataflow)
def test_batch_of_an_unstackable_conv_runs_images_back_to_back(hardware: Hardware) -> None:
    conv = LAYERS[0]
    got = BUILTINS["batch"]([conv], hardware, {"batch_images": 2}, traces=True).results[0]
    first = simulate([conv], hardware, traces=True)[0]
    second = simulate([conv], replace(hardware, ifmap_offset=hardware.ifmap_offset + image_words(conv),
                                      ofmap_offset=hardware.ofmap_offset + ofmap_words(conv)), traces=True)[0]
    shift = first.total_cycles + 1
    assert got.total_cycles == shift + second.total_cycles
    assert got.stall_cycles == first.stall_cycles + second.stall_cycles
    assert got.dram_accesses == {op: first.dram_accesses[op] + second.dram_accesses[op] for op in first.dram_accesses}
    assert got.sram_start_stop["ifmap"] == (first.sram_start_stop["ifmap"][0],
                                            second.sram_start_stop["ifmap"][1] + shift)
    assert got.traces is not None and first.traces is not None and second.traces is not None
    later = np.array(second.traces.ifmap_sram, copy=True)
    later[:, 0] += shift
    assert np.array_equal(got.traces.ifmap_sram, np.concatenate([first.traces.ifmap_sram, later]))


def test_ws_batch_keeps_the_filter_stationary_across_images() -> None:
    gemm, ws = LAYERS[2], HARDWARE[1]
    one = BUILTINS["batch"]([gemm], ws, {"batch_images": 1}).results[0]
    four = BUILTINS["batch"]([gemm], ws, {"batch_images": 4}).results[0]
    assert four.sram_accesses["filter"] == one.sram_accesses["filter"]
    assert four.sram_accesses["ifmap"] == 4 * one.sram_accesses["ifmap"]


def test_batch_reuses_equal_layers_only_with_traces_off() -> None:
    layers = [LAYERS[0], replace(LAYERS[0], name="again"), LAYERS[3]]
    off = BUILTINS["batch"](layers, HARDWARE[1], {"batch_images": 2}).results
    on = BUILTINS["batch"](layers, HARDWARE[1], {"batch_images": 2}, traces=True).results
    assert [r.name for r in off] == ["conv3x3", "again", "conv5x5s2"] and [r.index for r in off] == [0, 1, 2]
    for a, b in zip(off, on):
        assert result_difference(b, a, traces=False) is None
