"""The fast memory module against the literal one: same reports and traces on many architectures.

``test_report_paths_match_literal`` runs the fast module with traces off (its report-only paths:
CALC epoch strategies, shortcuts) on random small layers and architectures.  Case ``n`` is
``report_path_case(n)``; the first case number is ``MEMORY_CROSS_CHECK_SEED`` (default
:data:`CROSS_CHECK_SEED`), shown in every test id as ``seed=<n>``.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from reference_sim import memory_literal
from reference_sim.contract import Hardware, Layer
from reference_sim.engine import REFERENCE, simulate, simulate_layer, simulate_layer_srams
from reference_sim.errors import SimulationError
from reference_sim.spec import load_spec
from tests.helpers import first_result_difference

REPO = Path(__file__).resolve().parents[2]
LITERAL = REFERENCE.with_module("memory", memory_literal)


def _suite() -> list[tuple[str, Hardware, list[Layer]]]:
    loaded = load_spec(REPO / "scale_sim.yaml")
    spec = loaded.spec
    assert spec.verification is not None
    layers = [layer for name in spec.verification.workloads for layer in loaded.workload(name)]
    return [(v.name, spec.hardware(v), layers) for v in spec.verification.variants]


@pytest.mark.parametrize(("variant", "hardware", "layers"), _suite(), ids=lambda v: v if isinstance(v, str) else "")
def test_fast_memory_matches_literal_on_verification_suite(variant: str, hardware: Hardware,
                                                           layers: list[Layer]) -> None:
    fast = simulate(layers, hardware, traces=True)
    literal = simulate(layers, hardware, LITERAL, traces=True)
    assert first_result_difference(variant, literal, fast) is None


def _random_case(rng: random.Random) -> tuple[Hardware, Layer]:
    rows, cols = rng.choice([2, 3, 4, 5, 8]), rng.choice([2, 3, 4, 6, 8])
    user = rng.random() < 0.6
    hw = Hardware(
        array_rows=rows, array_cols=cols, dataflow=rng.choice(["os", "ws", "is"]),
        ifmap_sram_kib=rng.choice([1, 2, 4]), filter_sram_kib=rng.choice([1, 2, 4]),
        ofmap_sram_kib=rng.choice([1, 2]), bandwidth_mode="USER" if user else "CALC",
        dram_words_per_cycle=rng.choice([1, 2, 3, 5, 8]),
    )
    if rng.random() < 0.3:
        m, n, k = rng.randint(1, 40), rng.randint(1, 20), rng.randint(1, 60)
        return hw, Layer("gemm", m, k, 1, k, 1, n, 1, 1)
    fh, fw = rng.randint(1, 4), rng.randint(1, 4)
    h, w = rng.randint(fh, 12), rng.randint(fw, 12)
    stride = rng.randint(1, 3)
    return hw, Layer("conv", h, w, fh, fw, rng.randint(1, 9), rng.randint(1, 12), stride, rng.choice([stride, 1, 2]))


@pytest.mark.parametrize("seed", range(40))
def test_fast_memory_matches_literal_on_random_layers(seed: int) -> None:
    hardware, layer = _random_case(random.Random(seed))
    fast = simulate([layer], hardware, traces=True)
    literal = simulate([layer], hardware, LITERAL, traces=True)
    assert first_result_difference(f"seed {seed}: {hardware} {layer}", literal, fast) is None


def _random_os_calc_conv(rng: random.Random) -> tuple[Hardware, Layer]:
    rows, cols = rng.choice([2, 3, 4, 8]), rng.choice([2, 3, 4, 8])
    hw = Hardware(array_rows=rows, array_cols=cols, dataflow="os", ifmap_sram_kib=1, filter_sram_kib=1,
                  ofmap_sram_kib=rng.choice([1, 2]), bandwidth_mode="CALC")
    fh, fw = rng.randint(1, 4), rng.randint(1, 4)
    h, w = rng.randint(fh, 14), rng.randint(fw, 14)
    stride = rng.randint(1, 3)
    return hw, Layer("conv", h, w, fh, fw, rng.randint(3, 24), rng.randint(1, 20), stride, rng.choice([stride, 1, 2]))


@pytest.mark.parametrize("seed", range(30))
def test_channel_run_epochs_match_literal(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports only, so the fast module counts CALC epochs per (pixel, tap) run, in small batches."""
    from reference_sim import memory

    monkeypatch.setattr(memory, "_RUNS_PER_BATCH", 40)
    hardware, layer = _random_os_calc_conv(random.Random(1000 + seed))
    fast = simulate([layer], hardware)
    literal = simulate([layer], hardware, LITERAL)
    assert first_result_difference(f"seed {seed}: {hardware} {layer}", literal, fast) is None


CROSS_CHECK_SEED = 20261126
REPORT_PATH_CASES = 240
_SEED = int(os.environ.get("MEMORY_CROSS_CHECK_SEED", CROSS_CHECK_SEED))
_SRAM_KIB = (1, 2, 3, 5, 6)
_ARRAY_SIDES = (1, 2, 3, 4, 5, 6, 7, 8, 12)


def report_path_case(seed: int) -> tuple[Hardware, Layer]:
    """A small random layer on a random architecture: odd sizes, bandwidths and words, CALC twice as often."""
    rng = random.Random(seed)
    hardware = Hardware(
        array_rows=rng.choice(_ARRAY_SIDES), array_cols=rng.choice(_ARRAY_SIDES),
        dataflow=rng.choice(["os", "ws", "is"]),
        ifmap_sram_kib=rng.choice(_SRAM_KIB), filter_sram_kib=rng.choice(_SRAM_KIB),
        ofmap_sram_kib=rng.choice(_SRAM_KIB), ifmap_offset=rng.choice([0, 0, 37]),
        filter_offset=rng.choice([10_000_000, 5]), ofmap_offset=rng.choice([20_000_000, 1]),
        bandwidth_mode=rng.choice(["CALC", "CALC", "USER"]), dram_words_per_cycle=rng.choice([1, 2, 3, 5, 7, 10]),
        word_bytes=rng.choice([1, 2, 4, 8]),
    )
    if rng.random() < 0.35:
        m, n, k = rng.randint(1, 48), rng.randint(1, 32), rng.randint(1, 80)
        return hardware, Layer("gemm", m, k, 1, k, 1, n, 1, 1)
    fh, fw = rng.randint(1, 4), rng.randint(1, 4)
    h, w = rng.randint(fh, 16), rng.randint(fw, 16)
    stride = rng.randint(1, 3)
    return hardware, Layer("conv", h, w, fh, fw, rng.randint(1, 16), rng.randint(1, 16), stride,
                           rng.choice([stride, 1, 2, 3]))


@pytest.mark.parametrize("seed", [pytest.param(_SEED + i, id=f"seed={_SEED + i}") for i in range(REPORT_PATH_CASES)])
def test_report_paths_match_literal(seed: int) -> None:
    """Traces off: the fast module's report figures equal the literal module's (or both fail like SCALE-Sim)."""
    hardware, layer = report_path_case(seed)
    case = f"report_path_case({seed}): {hardware!r} {layer!r}"
    try:
        literal = simulate([layer], hardware, LITERAL)
    except SimulationError as error:
        with pytest.raises(SimulationError):
            simulate([layer], hardware)
        print(f"{case}: both fail: {error}")
        return
    difference = first_result_difference(case, literal, simulate([layer], hardware))
    assert difference is None, difference


SRAM_SWEEP_CASES = 60


def sram_sweep_case(seed: int) -> tuple[list[Hardware], Layer]:
    """``report_path_case(seed)`` and three more configurations with random SRAM sizes (repeating per operand)."""
    hardware, layer = report_path_case(seed)
    rng = random.Random(-seed)
    return [hardware] + [replace(hardware, ifmap_sram_kib=rng.choice(_SRAM_KIB),
                                 filter_sram_kib=rng.choice(_SRAM_KIB), ofmap_sram_kib=rng.choice(_SRAM_KIB))
                         for _ in range(3)], layer


def test_sram_sweep_cases_share_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases below reach the pass over every request shared by several CALC buffer sizes, and USER mode."""
    from reference_sim import memory

    shared = 0
    original = memory._epochs_from_elements

    def spy(stream: memory._Stream, epoch_words: list[int], record: bool) -> list[memory._Epochs]:
        nonlocal shared
        shared += len(epoch_words) > 1
        return original(stream, epoch_words, record)

    monkeypatch.setattr(memory, "_epochs_from_elements", spy)
    user = 0
    for i in range(SRAM_SWEEP_CASES):
        configs, layer = sram_sweep_case(_SEED + i)
        user += configs[0].bandwidth_mode == "USER"
        simulate_layer_srams(layer, configs)
    assert shared >= 4 and user >= 10, (shared, user)


@pytest.mark.parametrize("seed", [pytest.param(_SEED + i, id=f"seed={_SEED + i}") for i in range(SRAM_SWEEP_CASES)])
def test_sram_sweep_path_matches_literal(seed: int) -> None:
    """A sweep's path (:func:`simulate_layer_srams`: each read buffer worked out once per size, CALC sizes
    in one shared pass) on :func:`sram_sweep_case`: every configuration's figures equal the literal
    module's (or both fail like SCALE-Sim)."""
    configs, layer = sram_sweep_case(seed)
    for hw, got in zip(configs, simulate_layer_srams(layer, configs), strict=True):
        case = f"report_path_case({seed}) under {hw!r}"
        try:
            literal = simulate_layer(layer, hw, LITERAL)
        except SimulationError:
            assert isinstance(got, SimulationError), case
            continue
        assert not isinstance(got, SimulationError), f"{case}: {got}"
        difference = first_result_difference(case, [literal], [got])
        assert difference is None, difference
