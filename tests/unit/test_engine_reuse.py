"""``simulate`` reuses the result of a layer shape it has already simulated, only where that is safe."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reference_sim import engine
from reference_sim.contract import Hardware, Layer
from reference_sim.engine import REFERENCE, Modules, simulate, simulate_layer

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

