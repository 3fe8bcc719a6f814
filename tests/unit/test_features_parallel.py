"""Built-ins of cores, sparsity and memory_banks against hand-made expectations and the reference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from features.builtin import BUILTINS
from features.compare import result_difference
from features.semantics import (
    CORES_REPORT,
    SPARSITY_REPORT,
    core_ranges,
    core_words_per_cycle,
    kept_of,
    metadata_words,
    row_conflicts,
    sparse_layer,
)
from reference_sim import Hardware, Layer, simulate

GEMM = Layer("gemm", 5, 6, 1, 6, 1, 5, 1, 1)
CONV = Layer("conv5x5s2", 10, 8, 5, 5, 3, 2, 2, 2)
USER = Hardware(4, 4, "ws", 1, 1, 1, bandwidth_mode="USER", dram_words_per_cycle=3)
CALC = Hardware(4, 8, "os", 64, 64, 64)


def test_core_blocks_floor_edges_and_keep_a_hanging_row_with_the_last_block() -> None:
    assert core_ranges(GEMM, 3, 0) == [(0, 1), (1, 3), (3, 5)]
    assert CONV.ofmap_h == 4 and core_ranges(CONV, 4, 1) == [(0, 0), (0, 1), (1, 2), (2, 4)]
    assert [core_words_per_cycle(3, c, 2) for c in range(2)] == [2, 1]
    assert [core_words_per_cycle(1, c, 3) for c in range(3)] == [1, 1, 1]


@pytest.mark.parametrize("hardware", [USER, CALC], ids=["user", "calc"])
def test_filter_split_runs_each_block_as_its_own_layer(hardware: Hardware) -> None:
    run = BUILTINS["cores"]([GEMM], hardware, {"cores": 2, "split_axis": 0}, traces=True)
    first = simulate([replace(GEMM, num_filters=2)], replace(hardware, dram_words_per_cycle=2), traces=True)[0]
    second = simulate([replace(GEMM, num_filters=3)], replace(hardware, filter_offset=hardware.filter_offset + 12,
                                                              ofmap_offset=hardware.ofmap_offset + 10,
                                                              dram_words_per_cycle=1), traces=True)[0]
    merged = run.results[0]
    assert merged.total_cycles == max(first.total_cycles, second.total_cycles)
    sums = {op: first.sram_accesses[op] + second.sram_accesses[op] for op in first.sram_accesses}
    assert merged.sram_accesses == sums
    rows = run.tables[CORES_REPORT]
    assert [r["units"] for r in rows] == [2.0, 3.0] and rows[1]["total_cycles"] == second.total_cycles
    shares = [2.0, 1.0] if hardware.bandwidth_mode == "USER" else [5.0, 5.0]
    assert [r["dram_words_per_cycle"] for r in rows] == shares
    assert merged.traces is not None
    written = merged.traces.ofmap_sram[:, 1:]
    assert np.array_equal(np.unique(written[written >= 0]), hardware.ofmap_offset + np.arange(25))


def test_one_core_is_the_reference() -> None:
    run = BUILTINS["cores"]([CONV, GEMM], USER, {"cores": 1, "split_axis": 1}, traces=True)
    for want, got in zip(simulate([CONV, GEMM], USER, traces=True), run.results):
        assert result_difference(want, got) is None


def test_sparse_layer_and_report_of_hand_computed_shapes() -> None:
    assert kept_of(6, 2, 4) == 4 and kept_of(3, 1, 4) == 1 and kept_of(8, 3, 8) == 3
    conv = replace(CONV, channels=6)
    assert sparse_layer(conv, 2, 4).channels == 4
    assert (sparse_layer(GEMM, 1, 4).ifmap_w, sparse_layer(GEMM, 1, 4).filter_w) == (2, 2)
    assert metadata_words(conv, 2, 4, 1) == 2 * -(-100 * 2 // 8)
    row = BUILTINS["sparsity"]([conv], CALC, {"kept_weights": 2, "group_weights": 4}).tables[SPARSITY_REPORT][0]
    assert row["filter_words"] == 200 and row["dense_filter_words"] == 300 and row["metadata_words"] == 50
    assert row["macs"] == conv.macs * 4 // 6
    odd = BUILTINS["sparsity"]([conv], CALC, {"kept_weights": 3, "group_weights": 8}).tables[SPARSITY_REPORT][0]
    assert odd["metadata_bits_per_nonzero"] == 3 and odd["metadata_words"] == 2 * 29 == metadata_words(conv, 3, 8, 1)


def test_banked_run_is_the_reference_plus_conflicts_from_its_own_traces() -> None:
    params = {"sram_banks": 2, "sram_bank_ports": 1, "ifmap_dram_words_per_cycle": 0,
              "filter_dram_words_per_cycle": 0, "ofmap_dram_words_per_cycle": 0}
    got = BUILTINS["memory_banks"]([CONV], CALC, params, traces=True).results[0]
    want = simulate([CONV], CALC, traces=True)[0]
    assert got.traces is not None and want.traces is not None
    extra = np.max([row_conflicts(getattr(got.traces, k)[:, 1:], 2, 1)
                    for k in ("ifmap_sram", "filter_sram", "ofmap_sram")], axis=0)
    assert extra.sum() > 0 and got.total_cycles == want.total_cycles + extra.sum()
    assert np.array_equal(got.traces.ifmap_sram[:, 0], want.traces.ifmap_sram[:, 0] + np.cumsum(extra))
    assert np.array_equal(got.traces.ofmap_dram, want.traces.ofmap_dram)
    assert row_conflicts(np.array([[0, 2, 4, -1], [0, 1, 2, 3]]), 2, 1).tolist() == [2, 1]


def test_each_user_interface_keeps_its_own_words_per_cycle() -> None:
    params = {"sram_banks": 1, "sram_bank_ports": 0, "ifmap_dram_words_per_cycle": 1,
              "filter_dram_words_per_cycle": 4, "ofmap_dram_words_per_cycle": 0}
    got = BUILTINS["memory_banks"]([CONV], USER, params, traces=True).results[0]
    assert got.traces is not None
    assert got.traces.ifmap_dram.shape[1] == 2 and got.traces.filter_dram.shape[1] == 5
