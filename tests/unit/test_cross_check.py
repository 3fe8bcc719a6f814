"""The fast memory module against the literal one: same reports and traces on many architectures."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from reference_sim import memory_literal
from reference_sim.contract import Hardware, Layer
from reference_sim.engine import REFERENCE, simulate
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
