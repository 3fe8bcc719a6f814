"""Each property of the library holds on a built-in's run and fires on a hand-made bad one."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from functools import cache

import numpy as np
import pytest

from features.api import Case, FeatureRun
from features.builtin import BUILTINS
from features.catalogue import load_catalogue
from features.properties import PROPERTIES
from features.semantics import CORES_REPORT, ENERGY_REPORT, SPARSITY_REPORT
from reference_sim import Hardware, Layer, LayerResult, TraceSet

LAYERS = (Layer("conv3x3", 7, 6, 3, 3, 2, 3, 1, 1), Layer("gemm", 5, 6, 1, 6, 1, 4, 1, 1))
ENERGY = {name: 1.0 + i / 7 for i, name in enumerate(load_catalogue()["energy"].definition.neutral())}


def _hardware(mode: str) -> Hardware:
    return Hardware(4, 4, "ws", 1, 1, 1, bandwidth_mode=mode, dram_words_per_cycle=1)  # type: ignore[arg-type]


PARAMS: dict[str, dict[str, float]] = {
    "batch": {"batch_images": 2}, "energy": ENERGY, "cores": {"cores": 2, "split_axis": 0},
    "sparsity": {"kept_weights": 1, "group_weights": 4},
    "memory_banks": {"sram_banks": 2, "sram_bank_ports": 1, "ifmap_dram_words_per_cycle": 2,
                     "filter_dram_words_per_cycle": 1, "ofmap_dram_words_per_cycle": 3},
}


def _case(feature: str, mode: str) -> Case:
    return Case(feature, f"{feature}-{mode}", LAYERS, _hardware(mode), PARAMS[feature])


@cache
def _run(case_key: tuple[str, str, tuple[tuple[str, float], ...], Hardware, tuple[Layer, ...]]) -> FeatureRun:
    feature, _, params, hardware, layers = case_key
    return BUILTINS[feature](layers, hardware, dict(params), traces=True)


def run_of(case: Case) -> FeatureRun:
    return _run((case.feature, case.workload, tuple(sorted(case.params.items())), case.hardware, case.layers))


def with_result(run: FeatureRun, index: int, **changes: object) -> FeatureRun:
    results = list(run.results)
    results[index] = replace(results[index], **changes)  # type: ignore[arg-type]
    return FeatureRun(results, run.tables)


def with_trace(run: FeatureRun, index: int, key: str, edit: Callable[[np.ndarray], np.ndarray]) -> FeatureRun:
    traces = run.results[index].traces
    assert traces is not None
    arrays = {k: np.array(v, copy=True) for k, v in traces.as_dict().items()}
    arrays[key] = edit(arrays[key])
    return with_result(run, index, traces=TraceSet(**arrays))


def with_row(run: FeatureRun, index: int, **changes: float) -> FeatureRun:
    rows = [dict(r) for r in run.tables[ENERGY_REPORT]]
    rows[index].update(changes)
    return FeatureRun(run.results, {ENERGY_REPORT: rows})


def with_table_row(run: FeatureRun, table: str, index: int, **changes: float) -> FeatureRun:
    rows = [dict(r) for r in run.tables[table]]
    rows[index].update(changes)
    return FeatureRun(run.results, {**run.tables, table: rows})


def _wider(trace: np.ndarray) -> np.ndarray:
    return np.concatenate([trace, np.zeros((trace.shape[0], 5))], axis=1)


def without_column(run: FeatureRun, column: str) -> FeatureRun:
    rows = [{k: v for k, v in r.items() if k != column} for r in run.tables[ENERGY_REPORT]]
    return FeatureRun(run.results, {ENERGY_REPORT: rows})


def _first_request(trace: np.ndarray) -> tuple[int, int]:
    row, col = np.argwhere(trace[:, 1:] != -1)[0]
    return int(row), int(col) + 1


def _set_cell(value: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    def edit(trace: np.ndarray) -> np.ndarray:
        row, col = _first_request(trace)
        trace[row, col] = value(trace[row, col])
        return trace
    return edit


def _swap_cycles(trace: np.ndarray) -> np.ndarray:
    trace[[0, 1], 0] = trace[[1, 0], 0]
    return trace


def _r(run: FeatureRun, i: int = 0) -> LayerResult:
    return run.results[i]


SINGLE: dict[str, tuple[str, str, Callable[[FeatureRun], FeatureRun]]] = {
    "macs_done_once": ("batch", "CALC", lambda r: with_result(r, 0, overall_util_pct=_r(r).overall_util_pct / 2)),
    "ofmap_words_covered": ("batch", "CALC", lambda r: with_trace(r, 0, "ofmap_sram", _set_cell(lambda v: v + 10**6))),
    "operand_addresses_per_image": ("batch", "CALC",
                                    lambda r: with_trace(r, 0, "ifmap_sram", _set_cell(lambda v: v + 10**6))),
    "dram_reads_cover_distinct": ("batch", "CALC",
                                  lambda r: with_result(r, 0, dram_accesses={**_r(r).dram_accesses, "ifmap": 1})),
    "energy_counts_match_run": ("energy", "CALC", lambda r: with_row(r, 1, dram_reads_words=1.0)),
    "energy_is_counts_times_table": ("energy", "CALC", lambda r: with_row(r, 0, mac_pj=1.0)),
    "energy_table_complete": ("energy", "CALC", lambda r: without_column(r, "idle_pj")),
    "cycles_at_least_ideal": ("batch", "CALC", lambda r: with_result(r, 0, total_cycles=_r(r).total_cycles - 10,
                                                                      stall_cycles=0)),
    "stalls_within_cycles": ("batch", "USER", lambda r: with_result(r, 1, stall_cycles=-1)),
    "user_dram_rate": ("batch", "USER", lambda r: with_trace(r, 0, "ifmap_dram", lambda t: np.concatenate([t[:1], t]))),
    "utilisation_in_range": ("batch", "CALC", lambda r: with_result(r, 1, mapping_efficiency_pct=120.0)),
    "trace_cycles_increase": ("batch", "CALC", lambda r: with_trace(r, 0, "filter_sram", _swap_cycles)),
    "start_stop_match_traces": ("batch", "USER", lambda r: with_result(
        r, 0, sram_start_stop={**_r(r).sram_start_stop, "ifmap": (_r(r).sram_start_stop["ifmap"][0],
                                                                   _r(r).sram_start_stop["ifmap"][1] + 1)})),
    "energy_non_negative": ("energy", "USER", lambda r: with_row(r, 0, idle_pe_cycles=-1.0)),
    "cores_macs_conserved": ("cores", "CALC", lambda r: with_result(r, 0, overall_util_pct=_r(r).overall_util_pct / 2)),
    "cores_ofmap_written_once": ("cores", "CALC",
                                 lambda r: with_trace(r, 0, "ofmap_sram", _set_cell(lambda v: v + 10**6))),
    "cores_layer_is_slowest_core": ("cores", "USER",
                                    lambda r: with_result(r, 1, total_cycles=_r(r, 1).total_cycles + 1)),
    "cores_at_least_ideal": ("cores", "CALC", lambda r: with_table_row(r, CORES_REPORT, 0, total_cycles=1.0,
                                                                      stall_cycles=0.0)),
    "cores_user_bandwidth_shared": ("cores", "USER", lambda r: with_trace(r, 0, "ifmap_dram", _wider)),
    "sparse_report_counts": ("sparsity", "CALC", lambda r: with_table_row(r, SPARSITY_REPORT, 1, metadata_words=0.5)),
    "interface_dram_rate": ("memory_banks", "USER", lambda r: with_trace(r, 0, "filter_dram", _wider)),
}

PAIR: dict[str, tuple[str, str, Callable[[FeatureRun], FeatureRun]]] = {
    "more_bandwidth_no_more_cycles": ("batch", "USER",
                                      lambda r: with_result(r, 0, total_cycles=_r(r).total_cycles + 10**6)),
    "more_sram_no_more_cycles": ("batch", "CALC", lambda r: with_result(r, 1, total_cycles=_r(r).total_cycles + 10**6)),
    "more_images_more_work": ("batch", "CALC", lambda r: with_result(r, 0, total_cycles=1)),
    "energy_monotone_in_table": ("energy", "CALC", lambda r: with_row(r, 0, total_pj=0.0)),
    "gemm_batch_is_tall_gemm": ("batch", "USER", lambda r: with_result(r, 0, stall_cycles=_r(r).stall_cycles + 1)),
    "energy_linear_in_table": ("energy", "USER", lambda r: with_row(r, 1, dram_write_pj=0.5)),
    "energy_additive_over_layers": ("energy", "CALC", lambda r: with_row(r, 0, filter_sram_read_pj=0.25)),
    "energy_leaves_timing": ("energy", "USER", lambda r: with_result(r, 1, total_cycles=_r(r, 1).total_cycles + 1)),
    "more_cores_no_more_compute": ("cores", "CALC",
                                   lambda r: with_table_row(r, CORES_REPORT, 0, total_cycles=10.0**6)),
    "sparsity_never_adds_work": ("sparsity", "USER", lambda r: with_table_row(r, SPARSITY_REPORT, 0,
                                                                              metadata_words=3.0)),
    "bank_conflicts_from_traces": ("memory_banks", "CALC",
                                   lambda r: with_result(r, 0, total_cycles=_r(r).total_cycles + 1)),
    "interfaces_are_reference_ports": ("memory_banks", "USER",
                                       lambda r: with_result(r, 1, stall_cycles=_r(r, 1).stall_cycles + 1)),
    "more_banks_no_more_cycles": ("memory_banks", "CALC",
                                  lambda r: with_result(r, 0, total_cycles=_r(r).total_cycles + 10**6)),
}
BASE_CORRUPTED: dict[str, tuple[str, str, Callable[[FeatureRun], FeatureRun]]] = {
    "batch_is_images_back_to_back": ("batch", "USER", lambda r: with_trace(r, 0, "ifmap_sram", _swap_cycles)),
}


def test_every_property_has_a_failing_test() -> None:
    assert set(PROPERTIES) == set(SINGLE) | set(PAIR) | set(BASE_CORRUPTED)


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_single_property_holds_then_fires(name: str) -> None:
    feature, mode, corrupt = SINGLE[name]
    case = _case(feature, mode)
    check = PROPERTIES[name].single
    assert check is not None
    good = run_of(case)
    assert check(case, good) is None
    failure = check(case, corrupt(good))
    assert failure is not None and failure.check == name
    assert failure.workload == case.workload and failure.expected and failure.actual and failure.blamed_module


def _pair(name: str, feature: str, mode: str) -> tuple[Case, FeatureRun, Case, FeatureRun]:
    prop = PROPERTIES[name]
    assert prop.vary is not None and prop.pair is not None
    case = _case(feature, mode)
    other = prop.vary(case, random.Random(0))
    assert other is not None
    return case, run_of(case), other, run_of(other)


@pytest.mark.parametrize("name", sorted(PAIR))
def test_pair_property_holds_then_fires(name: str) -> None:
    feature, mode, corrupt = PAIR[name]
    case, base, other, varied = _pair(name, feature, mode)
    check = PROPERTIES[name].pair
    assert check is not None
    assert check(case, base, other, varied) is None
    failure = check(case, base, other, corrupt(varied))
    assert failure is not None and failure.check == name


@pytest.mark.parametrize("name", sorted(BASE_CORRUPTED))
def test_property_fires_on_a_bad_batch(name: str) -> None:
    feature, mode, corrupt = BASE_CORRUPTED[name]
    case, base, other, varied = _pair(name, feature, mode)
    check = PROPERTIES[name].pair
    assert check is not None
    assert check(case, base, other, varied) is None
    failure = check(case, corrupt(base), other, varied)
    assert failure is not None and failure.check == name and failure.blamed_module == "batch"


def test_failure_line_names_check_workload_layer_and_blame() -> None:
    case = _case("batch", "CALC")
    check = PROPERTIES["stalls_within_cycles"].single
    assert check is not None
    failure = check(case, with_result(run_of(case), 1, stall_cycles=-1))
    assert failure is not None
    assert failure.line() == ("stalls_within_cycles: batch-CALC layer 1: expected 0 <= stall cycles <= "
                              f"{run_of(case).results[1].total_cycles}, got -1 (blame memory)")
