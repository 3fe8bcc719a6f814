"""The closed-form compute figures against the engine (and the literal memory model) on random cases."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import pytest

from reference_sim import Hardware, Layer, memory_literal, simulate_layer
from reference_sim import sweep as sweep_module
from reference_sim.closed_form import CycleFigures, cycle_figures, valid_read_entries
from reference_sim.contract import NO_REQUEST, Dataflow, prefetch_order
from reference_sim.engine import REFERENCE
from reference_sim.mapping import map_layer
from reference_sim.sweep import grid, sweep

LITERAL = REFERENCE.with_module("memory", memory_literal)
EDGE_LAYERS = [
    Layer("one_by_one", 1, 1, 1, 1, 1, 1, 1, 1),
    Layer("pointwise", 5, 4, 1, 1, 7, 3, 1, 1),
    Layer("filter_is_ifmap", 5, 6, 5, 6, 2, 4, 1, 1),
    Layer("stride_over_filter", 11, 9, 2, 1, 3, 5, 4, 3),
    Layer("gemm_like", 13, 9, 1, 9, 1, 6, 1, 1),
]
SIDES = (1, 2, 3, 4, 5, 7, 8, 13, 16)


def random_layer(rng: random.Random, index: int) -> Layer:
    ifmap_h, ifmap_w = rng.randint(1, 12), rng.randint(1, 12)
    return Layer(f"random_{index}", ifmap_h, ifmap_w, rng.randint(1, ifmap_h), rng.randint(1, ifmap_w),
                 rng.randint(1, 6), rng.randint(1, 10), rng.randint(1, 4), rng.randint(1, 4))


def random_config(rng: random.Random) -> Hardware:
    wide = rng.random() < 0.1
    return Hardware(
        array_rows=rng.choice(SIDES), array_cols=128 if wide else rng.choice(SIDES),
        dataflow=rng.choice(("os", "ws", "is")),
        ifmap_sram_kib=rng.choice((1, 2, 4, 64)), filter_sram_kib=rng.choice((1, 2, 4, 64)),
        ofmap_sram_kib=rng.choice((1, 2, 4, 64)),
        bandwidth_mode=rng.choice(("CALC", "USER")), dram_words_per_cycle=rng.choice((1, 2, 3, 8, 64)),
        word_bytes=rng.choice((1, 1, 2, 4)),
    )


def figures_at(closed: CycleFigures, c: int, s: int) -> list[int | float]:
    return [int(closed.total_cycles[c, s]), int(closed.stall_cycles[c, s]), float(closed.overall_util_pct[c, s]),
            float(closed.mapping_efficiency_pct[c, s]), float(closed.compute_util_pct[c, s])]


def test_closed_form_equals_the_engine_where_it_claims_to() -> None:
    rng = random.Random(13)
    layers = EDGE_LAYERS + [random_layer(rng, i) for i in range(7)]
    configs = [random_config(rng) for _ in range(24)]
    closed = cycle_figures(layers, configs)
    assert closed.exact.shape == (len(configs), len(layers))
    seen = {"exact CALC": 0, "exact USER": 0, "declined": 0, "stalls": 0}
    for c, hw in enumerate(configs):
        for s, layer in enumerate(layers):
            result = simulate_layer(layer, hw)
            got = result.compute_row
            if closed.exact[c, s]:
                assert figures_at(closed, c, s) == got, (hw, layer)
                seen[f"exact {hw.bandwidth_mode}"] += 1
                if hw.bandwidth_mode == "USER":
                    assert [result.dram_start_stop[name][1] for name in ("ifmap", "filter")] == [-1, -1], (
                        "a USER read buffer prefetched (its last DRAM cycle is not -1)", hw, layer)
            else:
                seen["declined"] += 1
                seen["stalls"] += got[1] > 0
    assert min(seen.values()) > 0, seen


def test_closed_form_equals_the_literal_memory_model() -> None:
    rng = random.Random(5)
    layers = EDGE_LAYERS + [random_layer(rng, i) for i in range(3)]
    configs = [random_config(rng) for _ in range(8)]
    closed = cycle_figures(layers, configs)
    checked = 0
    for c, hw in enumerate(configs):
        for s, layer in enumerate(layers):
            if closed.exact[c, s]:
                assert figures_at(closed, c, s) == simulate_layer(layer, hw, LITERAL).compute_row, (hw, layer)
                checked += 1
    assert checked >= 10


def test_valid_entries_count_the_prefetch_order() -> None:
    rng = random.Random(8)
    layers = EDGE_LAYERS + [random_layer(rng, i) for i in range(30)]
    ifmap, filters = valid_read_entries(layers)
    hardware = Hardware(4, 4, "ws", 64, 64, 64)
    for layer, got_ifmap, got_filter in zip(layers, ifmap.tolist(), filters.tolist()):
        mapped = map_layer(layer, hardware)
        assert got_ifmap == int((prefetch_order(mapped, "ifmap") != NO_REQUEST).sum()), layer
        assert got_filter == int((prefetch_order(mapped, "filter") != NO_REQUEST).sum()), layer


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_user_fit_threshold_is_the_first_prefetch(dataflow: Dataflow) -> None:
    hardware = Hardware(4, 4, dataflow, 64, 1, 64, bandwidth_mode="USER", dram_words_per_cycle=2)
    fits, spills = (Layer("gemm", 1, k, 1, k, 1, 1, 1, 1) for k in (517, 518))
    closed = cycle_figures([fits, spills], [hardware])
    assert closed.exact.tolist() == [[True, False]]
    assert simulate_layer(fits, hardware).dram_start_stop["filter"][1] == -1
    assert simulate_layer(spills, hardware).dram_start_stop["filter"][1] > -1


@pytest.mark.parametrize("hardware, why", [
    (Hardware(8, 8, "os", 2, 2, 2, bandwidth_mode="USER", dram_words_per_cycle=4), "USER prefetches"),
    (Hardware(8, 8, "ws", 64, 64, 1, bandwidth_mode="USER", dram_words_per_cycle=1), "ofmap rows over USER bandwidth"),
    (Hardware(8, 8, "os", 64, 64, 1, word_bytes=1024), "an ofmap buffer of one word"),
    (Hardware(8, 8, "os", 1, 64, 64, word_bytes=16), "a read estimate set of 0 words"),
    (Hardware(4, 128, "os", 64, 1, 64, word_bytes=4), "more filter ports than an estimate epoch"),
])
def test_declined_cases(hardware: Hardware, why: str) -> None:
    layer = Layer("conv", 12, 12, 3, 3, 6, 10, 1, 1)
    assert not cycle_figures([layer], [hardware]).exact[0, 0], why


def test_declined_user_case_really_stalls() -> None:
    layer = Layer("conv", 12, 12, 3, 3, 6, 10, 1, 1)
    for hardware in (Hardware(8, 8, "os", 2, 2, 2, bandwidth_mode="USER", dram_words_per_cycle=4),
                     Hardware(8, 8, "ws", 64, 64, 1, bandwidth_mode="USER", dram_words_per_cycle=1)):
        assert simulate_layer(layer, hardware).stall_cycles > 0


def test_user_case_that_fits_is_closed_form() -> None:
    layer = Layer("small", 6, 6, 3, 3, 2, 3, 1, 1)
    hardware = Hardware(4, 4, "is", 64, 64, 64, bandwidth_mode="USER", dram_words_per_cycle=4)
    closed = cycle_figures([layer], [hardware])
    assert closed.exact[0, 0]
    assert figures_at(closed, 0, 0) == simulate_layer(layer, hardware).compute_row


def test_cycles_sweep_runs_the_engine_exactly_where_the_closed_form_declines(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(21)
    layers = EDGE_LAYERS + [random_layer(rng, i) for i in range(3)] + [EDGE_LAYERS[1]]
    base = Hardware(4, 4, "os", 2, 2, 2, bandwidth_mode="USER", dram_words_per_cycle=2)
    configs = grid(base, arrays=[(4, 4), (3, 8)], sram_kib=[(1, 1, 1), (64, 64, 64)], dataflows=["os", "ws", "is"],
                   bandwidths=[("CALC", None), ("USER", 2)])
    calls: list[tuple[Layer, Hardware]] = []
    real = sweep_module.simulate_layer_srams

    def counting(layer: Layer, hardwares: Sequence[Hardware]) -> object:
        calls.extend((layer, hardware) for hardware in hardwares)
        return real(layer, hardwares)

    monkeypatch.setattr(sweep_module, "simulate_layer_srams", counting)
    seen: list[tuple[int, int]] = []
    rows = sweep(layers, configs, figures="cycles", jobs=1, on_progress=lambda d, t: seen.append((d, t)))
    distinct = [replace(layer, name="") for layer in layers[:-1]]
    closed = cycle_figures(distinct, configs)
    assert 0 < len(calls) == int((~closed.exact).sum()) < closed.exact.size
    declined = {(c, s) for c in range(len(configs)) for s in range(len(distinct)) if not closed.exact[c, s]}
    assert {(configs.index(hw), distinct.index(layer)) for layer, hw in calls} == declined
    assert seen[-1] == (closed.exact.size, closed.exact.size)
    monkeypatch.undo()
    full = sweep(layers, configs, jobs=1)
    assert [r.compute_util_pct for r in rows] == [r.compute_util_pct for r in full]
    assert [tuple(r)[:15] for r in rows] == [
        (f.array_rows, f.array_cols, f.dataflow, f.ifmap_sram_kib, f.filter_sram_kib, f.ofmap_sram_kib,
         f.bandwidth_mode, f.words_per_cycle, f.layer_index, f.layer_name, f.total_cycles, f.stall_cycles,
         f.overall_util_pct, f.mapping_efficiency_pct, f.compute_util_pct) for f in full]
