"""Every seeded mutant's claim, checked against the reference with the real modules.

* every mutant changes some result on the verification suite (traces on or off) or on the spec's
  ``final_check`` workloads (the spec's own hardware, traces off);
* an ``only="traces_off"`` mutant equals the reference everywhere on the suite with traces on and
  differs somewhere with traces off;
* an ``only="npot"`` mutant equals the reference (traces on and off) on every power-of-two workload
  and differs on some workload whose sizes or bandwidth are not powers of two.

A workload is power-of-two when its array rows and columns, its three SRAM sizes in KiB and (USER
mode) its DRAM words per cycle all are.  Reference runs are computed once per workload and mode.
"""

from __future__ import annotations

import functools
from types import ModuleType

import pytest

from judge import suites
from judge.mutants import MUTANTS, Mutant, build
from reference_sim import engine
from reference_sim.contract import Hardware
from reference_sim.engine import LayerResult
from reference_sim.spec import load_spec
from tests.helpers import first_result_difference

ONLY_TAGS = ("", "traces_off", "npot")


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def is_power_of_two_hardware(hardware: Hardware) -> bool:
    """True when array, SRAM sizes and (USER mode) bandwidth are all powers of two."""
    sizes = [hardware.array_rows, hardware.array_cols, hardware.ifmap_sram_kib, hardware.filter_sram_kib,
             hardware.ofmap_sram_kib]
    if hardware.bandwidth_mode == "USER":
        sizes.append(hardware.dram_words_per_cycle)
    return all(_power_of_two(n) for n in sizes)


@functools.cache
def _final_check() -> tuple[suites.Workload, ...]:
    """The spec's ``final_check`` workloads on the spec's own hardware (run with traces off)."""
    loaded = load_spec(suites.DEFAULT_SPEC)
    verification = loaded.spec.verification
    assert verification is not None
    hardware = loaded.spec.hardware()
    return tuple(suites.Workload(f"{name}@final_check", hardware, tuple(loaded.workload(name)))
                 for name in verification.final_check)


@functools.cache
def _reference(workload: suites.Workload, traces: bool) -> list[LayerResult]:
    return engine.simulate(workload.layers, workload.hardware, engine.REFERENCE, traces=traces)


@functools.cache
def _modules(mutant_id: str) -> engine.Modules:
    mutant = next(m for m in MUTANTS if m.id == mutant_id)
    built: dict[str, ModuleType] = build(mutant)
    return engine.Modules(**built)


def _difference(mutant: Mutant, workload: suites.Workload, traces: bool) -> str | None:
    """The first difference from the reference (an exception counts as one), ``None`` when equal."""
    try:
        got = engine.simulate(workload.layers, workload.hardware, _modules(mutant.id), traces=traces)
    except Exception as error:  # a crash is a difference
        return f"{workload.id}: {type(error).__name__}: {error}"
    expected = _reference(workload, traces)
    if len(got) != len(expected):
        return f"{workload.id}: {len(expected)} layers expected, got {len(got)}"
    return first_result_difference(f"{workload.id} traces={traces}", expected, got)


def _suite() -> suites.Suite:
    return suites.default_suite()


def _tagged(tag: str) -> list[Mutant]:
    return [m for m in MUTANTS if m.only == tag]


def test_mutant_counts() -> None:
    assert len({m.id for m in MUTANTS}) == len(MUTANTS)
    assert all(m.only in ONLY_TAGS for m in MUTANTS), [m.id for m in MUTANTS if m.only not in ONLY_TAGS]
    assert len(MUTANTS) >= 55, len(MUTANTS)
    assert len(_tagged("npot")) >= 5, [m.id for m in _tagged("npot")]
    assert len(_tagged("traces_off")) >= 8, [m.id for m in _tagged("traces_off")]


def test_suite_has_both_kinds_of_workload() -> None:
    kinds = {is_power_of_two_hardware(w.hardware) for w in _suite()}
    assert kinds == {True, False}


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_mutant_changes_some_result(mutant: Mutant) -> None:
    runs = ([(w, True) for w in _suite()] + [(w, False) for w in _suite()]
            + [(w, False) for w in _final_check()])
    assert any(_difference(mutant, w, traces) for w, traces in runs), f"{mutant.id} equals the reference"


@pytest.mark.parametrize("mutant", _tagged("traces_off"), ids=lambda m: m.id)
def test_traces_off_mutant_shows_only_without_traces(mutant: Mutant) -> None:
    for workload in _suite():
        diff = _difference(mutant, workload, True)
        assert diff is None, f"{mutant.id} differs with traces on: {diff}"
    assert any(_difference(mutant, w, False) for w in _suite()), f"{mutant.id} equals the reference with traces off"


@pytest.mark.parametrize("mutant", _tagged("npot"), ids=lambda m: m.id)
def test_npot_mutant_shows_only_off_powers_of_two(mutant: Mutant) -> None:
    pot = [w for w in _suite() if is_power_of_two_hardware(w.hardware)]
    npot = [w for w in _suite() if not is_power_of_two_hardware(w.hardware)]
    for workload in pot:
        for traces in (True, False):
            diff = _difference(mutant, workload, traces)
            assert diff is None, f"{mutant.id} differs on a power-of-two workload: {diff}"
    for workload in _final_check():
        if is_power_of_two_hardware(workload.hardware):
            diff = _difference(mutant, workload, False)
            assert diff is None, f"{mutant.id} differs on a power-of-two final check: {diff}"
    assert any(_difference(mutant, w, traces) for w in npot for traces in (True, False)), (
        f"{mutant.id} equals the reference on every non-power-of-two workload")
