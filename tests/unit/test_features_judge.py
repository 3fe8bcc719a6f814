"""The judge passes the built-ins, rejects mutants saying which check fired, and diagnoses failures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from features.api import FeatureRun, Params
from features.builtin import BUILTINS
from features.catalogue import load_catalogue
from features.judge import case_key, judge, planned_cases
from features.mutants import MUTANTS, Mutant, MutantError
from reference_sim import Hardware, Layer

CATALOGUE = load_catalogue()


@pytest.mark.parametrize("feature", ["energy", "batch", "cores", "sparsity", "memory_banks"])
def test_judge_passes_the_builtin_with_every_level(feature: str) -> None:
    verdict = judge(CATALOGUE[feature], BUILTINS[feature])
    checks = len(CATALOGUE[feature].definition.checks)
    assert verdict.passed and verdict.failure is None
    oracle = "oracle, " if CATALOGUE[feature].definition.oracle else ""
    assert verdict.evidence == f"exact, {oracle}properties {checks}/{checks}"


@pytest.mark.parametrize("feature", ["energy", "batch", "cores", "sparsity", "memory_banks"])
def test_every_mutant_applies_and_is_at_least_twelve(feature: str) -> None:
    assert len(MUTANTS[feature]) >= 12
    for mutant in MUTANTS[feature]:
        assert callable(mutant.build())


def _mutant(feature: str, name: str) -> Mutant:
    return next(m for m in MUTANTS[feature] if m.name == name)


@pytest.mark.parametrize(("feature", "name", "check"), [
    ("energy", "wrong_pj_column", "energy_is_counts_times_table"),
    ("energy", "forgot_idle", "energy_counts_match_run"),
    ("energy", "layer_id_from_one", "energy_table_complete"),
    ("energy", "table_changes_timing", "energy_leaves_timing"),
    ("batch", "image_offset_off_by_one", "ofmap_words_covered"),
    ("batch", "never_stack", "gemm_batch_is_tall_gemm"),
    ("batch", "stop_not_moved", "start_stop_match_traces"),
    ("batch", "util_one_image", "macs_done_once"),
])
def test_judge_rejects_a_mutant_of_each_kind(feature: str, name: str, check: str) -> None:
    impl = _mutant(feature, name).build()
    full = judge(CATALOGUE[feature], impl)
    assert not full.passed and full.failure is not None and full.failure.check == "oracle"
    assert full.evidence == "exact"
    alone = judge(CATALOGUE[feature], impl, use_exact=False, use_oracle=False)
    assert alone.failure is not None and alone.failure.check == check
    assert alone.failure.blamed_module == feature


@pytest.mark.parametrize(("feature", "name", "check"), [
    ("cores", "ofmap_global_columns", "cores_ofmap_written_once"),
    ("cores", "cycles_summed", "cores_layer_is_slowest_core"),
    ("sparsity", "metadata_packed_per_layer", "sparse_report_counts"),
    ("sparsity", "gemm_dense", "macs_done_once"),
])
def test_properties_alone_reject_new_feature_mutants(feature: str, name: str, check: str) -> None:
    impl = _mutant(feature, name).build()
    alone = judge(CATALOGUE[feature], impl, use_exact=False, use_oracle=False)
    assert alone.failure is not None and alone.failure.check == check
    assert alone.failure.blamed_module == feature


@pytest.mark.parametrize(("name", "check"), [
    ("own_row_not_delayed", "bank_conflicts_from_traces"), ("read_bandwidths_swapped", "interface_dram_rate"),
    ("ofmap_bandwidth_global", "interfaces_are_reference_ports"),
])
def test_banks_without_oracle_reject_by_properties(name: str, check: str) -> None:
    verdict = judge(CATALOGUE["memory_banks"], _mutant("memory_banks", name).build())
    assert not verdict.passed and verdict.failure is not None and verdict.failure.check == check


def test_a_mutant_that_no_longer_applies_is_refused() -> None:
    with pytest.raises(MutantError, match="matches 0 places"):
        Mutant("batch", "gone", "", "no such text", "x").build()


def test_a_neutral_setting_that_differs_fails_exact_with_the_module_blamed() -> None:
    def slow(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
        run = BUILTINS["batch"](layers, hardware, params, traces=traces)
        return FeatureRun([replace(r, stall_cycles=r.stall_cycles + 1) for r in run.results])

    verdict = judge(CATALOGUE["batch"], slow)
    assert not verdict.passed and verdict.levels == ()
    assert verdict.failure is not None and verdict.failure.check == "exact"
    assert verdict.failure.layer == 0 and verdict.failure.blamed_module == "memory"
    assert "stall_cycles" in verdict.failure.expected


def test_a_crash_is_a_failure_not_an_exception() -> None:
    def crash(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
        raise ZeroDivisionError("boom")

    verdict = judge(CATALOGUE["energy"], crash)
    assert verdict.failure is not None and verdict.failure.actual == "ZeroDivisionError: boom"


def test_all_failures_lists_every_check_that_fired() -> None:
    impl = _mutant("batch", "one_image_fewer").build()
    verdict = judge(CATALOGUE["batch"], impl, use_exact=False, use_oracle=False, all_failures=True)
    assert {"macs_done_once", "ofmap_words_covered", "cycles_at_least_ideal"} <= set(verdict.fired)
    assert verdict.properties_passed < verdict.properties_total


def _not_planned(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    raise AssertionError("the judge asked for a case planned_cases did not list")


@pytest.mark.parametrize(("feature", "mutant"), [("energy", None), ("batch", None), ("cores", None),
                                                 ("sparsity", None), ("memory_banks", None),
                                                 ("batch", "one_image_fewer"), ("energy", "forgot_idle")])
def test_a_judge_over_the_planned_runs_alone_gives_the_same_verdict(feature: str, mutant: str | None) -> None:
    impl = BUILTINS[feature] if mutant is None else _mutant(feature, mutant).build()
    runs = {case_key(case): impl(case.layers, case.hardware, case.params, traces=True)
            for case in planned_cases(CATALOGUE[feature])}
    for kwargs in ({}, {"use_exact": False, "use_oracle": False, "all_failures": True}):
        direct = judge(CATALOGUE[feature], impl, **kwargs)  # type: ignore[arg-type]
        replayed = judge(CATALOGUE[feature], _not_planned, runs=dict(runs), **kwargs)  # type: ignore[arg-type]
        assert replayed == direct
