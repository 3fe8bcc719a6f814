"""``simulate`` reuses the result of a layer shape it has already simulated, only where that is safe."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reference_sim import engine, memory
from reference_sim.contract import Hardware, Layer
from reference_sim.engine import REFERENCE, Modules, simulate, simulate_layer
from reference_sim.errors import SimulationError

HARDWARE = Hardware(8, 4, "ws", 1, 1, 1, bandwidth_mode="USER", dram_words_per_cycle=3)
LAYERS = [Layer("a", 9, 7, 3, 2, 3, 5, 1, 2), Layer("b", 6, 6, 1, 1, 4, 9, 1, 1),
          Layer("c", 9, 7, 3, 2, 3, 5, 1, 2), Layer("d", 9, 7, 3, 2, 3, 6, 1, 2), Layer("a", 6, 6, 1, 1, 4, 9, 1, 1)]


def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = engine.simulate_layer

    def spy(layer: Layer, *args: Any, **kwargs: Any) -> engine.LayerResult:
        calls.append(layer.name)
        return real(layer, *args, **kwargs)

    monkeypatch.setattr(engine, "simulate_layer", spy)
    return calls


def test_a_repeated_shape_is_simulated_once_and_reported_under_its_own_name(monkeypatch: pytest.MonkeyPatch) -> None:
    separate = [simulate_layer(layer, HARDWARE, index=i) for i, layer in enumerate(LAYERS)]
    calls = counted(monkeypatch)
    seen: list[tuple[int, str]] = []
    results = simulate(LAYERS, HARDWARE, on_layer=lambda r: seen.append((r.index, r.name)))
    assert calls == ["a", "b", "d"]
    assert results == separate
    assert seen == [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "a")]


def test_no_reuse_with_traces_or_with_other_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counted(monkeypatch)
    simulate(LAYERS, HARDWARE, traces=True, keep_traces=False)
    assert calls == [layer.name for layer in LAYERS]
    calls.clear()
    own = Modules(REFERENCE.mapping, REFERENCE.network, REFERENCE.memory)
    simulate([replace(layer, name=str(i)) for i, layer in enumerate(LAYERS)], HARDWARE, own)
    assert calls == ["0", "1", "2", "3", "4"]



def _count_buffer_work(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every (read operand, buffer words) whose CALC estimate or USER prefetches are worked out."""
    worked: list[tuple[str, int]] = []
    estimates, prefetches = memory._estimate_epochs_of_sizes, memory._user_prefetches

    def estimate_spy(stream: memory._Stream, buffers: Any) -> Any:
        worked.extend((stream.name, b.total_words) for b in buffers)
        return estimates(stream, buffers)

    def prefetch_spy(stream: memory._Stream, bw: int, latency: int, buffer: Any, **kwargs: Any) -> Any:
        worked.append((stream.name, buffer.total_words))
        return prefetches(stream, bw, latency, buffer, **kwargs)

    monkeypatch.setattr(memory, "_estimate_epochs_of_sizes", estimate_spy)
    monkeypatch.setattr(memory, "_user_prefetches", prefetch_spy)
    return worked


SRAM_KIB = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 2), (1, 1, 2), (4, 2, 1)]


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("bandwidth", [("CALC", 4), ("USER", 3)], ids=["CALC", "USER"])
def test_a_layer_under_several_srams_equals_one_run_per_configuration(
        dataflow: str, bandwidth: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read buffer's estimate or prefetches are worked out once per size of that buffer, and every
    configuration's result still equals its own run."""
    base = replace(HARDWARE, dataflow=dataflow, bandwidth_mode=bandwidth[0], dram_words_per_cycle=bandwidth[1])
    configs = [replace(base, ifmap_sram_kib=i, filter_sram_kib=f, ofmap_sram_kib=o) for i, f, o in SRAM_KIB]
    for index, layer in enumerate(LAYERS[:2] + LAYERS[3:4]):
        separate = [simulate_layer(layer, hw, index=index) for hw in configs]
        worked = _count_buffer_work(monkeypatch)
        assert engine.simulate_layer_srams(layer, configs, index=index) == separate
        monkeypatch.undo()
        once = {("ifmap", i * 1024) for i, _, _ in SRAM_KIB} | {("filter", f * 1024) for _, f, _ in SRAM_KIB}
        assert sorted(worked) == sorted(once)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_user_buffers_keep_fetch_order_and_demand_across_sizes(dataflow: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Under USER bandwidth a read buffer given several sizes builds its fetch indices and its demand pieces
    once while they fit ``_CACHED_BLOCK_WORDS`` (else once per size); every configuration still equals its
    own run."""
    base = replace(HARDWARE, dataflow=dataflow)
    configs = [replace(base, ifmap_sram_kib=i, filter_sram_kib=f, ofmap_sram_kib=o) for i, f, o in SRAM_KIB]
    layer = Layer("prefetching", 20, 18, 3, 3, 8, 12, 1, 1)
    separate = [simulate_layer(layer, hw) for hw in configs]
    built: list[str] = []
    fetch_order, fold_batches = memory.prefetch_chunks, memory._Stream.fold_batches

    def fetch_spy(*args: Any) -> Any:
        built.append("fetch order")
        return fetch_order(*args)

    def demand_spy(stream: memory._Stream) -> Any:
        built.append(f"{stream.name} demand")
        return fold_batches(stream)

    monkeypatch.setattr(memory, "prefetch_chunks", fetch_spy)
    monkeypatch.setattr(memory._Stream, "fold_batches", demand_spy)
    passes = {}
    default = memory._CACHED_BLOCK_WORDS
    for cache_words in (default, 0):
        monkeypatch.setattr(memory, "_CACHED_BLOCK_WORDS", cache_words)
        built.clear()
        assert engine.simulate_layer_srams(layer, configs) == separate
        passes[cache_words] = (built.count("fetch order"), built.count("ifmap demand"))
    sizes = len({i for i, _, _ in SRAM_KIB}), len({f for _, f, _ in SRAM_KIB})
    assert passes == {default: (2, 1), 0: (sum(sizes), sizes[0])}


def test_a_configuration_that_fails_leaves_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """Too small an SRAM for SCALE-Sim's CALC estimate, or too much work, fails that configuration alone."""
    layer = Layer("conv", 12, 12, 3, 3, 6, 10, 1, 1)
    base = Hardware(4, 4, "ws", 1, 2, 2, word_bytes=1)
    tiny = replace(base, ifmap_sram_kib=1, word_bytes=16)
    configs = [replace(base, ifmap_sram_kib=k) for k in (1, 2, 64)]
    limit = engine.estimate_requests(layer, configs[1])
    assert engine.estimate_requests(layer, configs[0]) > limit == engine.estimate_requests(layer, configs[2])
    expected = [simulate_layer(layer, hw) for hw in configs[1:]]
    monkeypatch.setenv(engine.MAX_REQUESTS_ENV, str(limit))
    results = engine.simulate_layer_srams(layer, configs)
    assert isinstance(results[0], engine.WorkLimitError)
    assert results[1:] == expected
    monkeypatch.delenv(engine.MAX_REQUESTS_ENV)
    small = [tiny, replace(tiny, ifmap_sram_kib=2)]
    failed, fine = engine.simulate_layer_srams(layer, small)
    assert isinstance(failed, SimulationError) and "fewer than 100" in str(failed)
    assert fine == simulate_layer(layer, small[1])
    with pytest.raises(ValueError, match="differ only in SRAM sizes"):
        engine.simulate_layer_srams(layer, [base, replace(base, array_rows=8)])
    assert engine.simulate_layer_srams(layer, []) == []
