"""The USER-bandwidth fast paths against their literal definitions, on random shapes.

* :func:`reference_sim.contract.prefetch_order` builds the stacked lane blocks from index vectors
  (no full index grid) and reads them along anti-diagonals with :func:`antidiagonal_order` (no
  sort); the literal definition is the full grid and a stable sort by (diagonal, lower row first).
* :meth:`reference_sim.memory._Stream.order` builds the stream order of a fold block from its
  timing (no sort); the literal definition sorts the entries by (fold row, port).
* :func:`reference_sim.memory._line_table` skips the sort when the fetch order holds each address of
  one range once; the literal definition lists, per address, the set of lines holding it.

Each test also reaches its fast path (the random cases include every branch).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference_sim import mapping, memory
from reference_sim.contract import NO_REQUEST, Hardware, Layer, OperandTiming, antidiagonal_order, prefetch_order


def sorted_antidiagonals(height: int, width: int) -> np.ndarray:
    r, c = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.argsort(((r + c) * height + (height - 1 - r)).reshape(-1), kind="stable")


def literal_prefetch_order(m: object, name: str) -> np.ndarray:
    tiling = m.tilings[name]  # type: ignore[attr-defined]
    matrix = m.operand(name)  # type: ignore[attr-defined]
    n_rows, n_cols = matrix.shape
    lane_len, step_len = (n_rows, n_cols) if tiling.lane_axis == "row" else (n_cols, n_rows)
    lanes = tiling.lanes
    n_blocks = math.ceil(lane_len / lanes)
    block, step, lane = np.meshgrid(np.arange(n_blocks), np.arange(step_len), np.arange(lanes), indexing="ij")
    index = block * lanes + lane
    valid = index < lane_len
    index = np.minimum(index, lane_len - 1)
    addr = matrix.addresses(index, step) if tiling.lane_axis == "row" else matrix.addresses(step, index)
    stacked = np.where(valid, addr, NO_REQUEST).reshape(n_blocks * step_len, lanes)
    flat = stacked.reshape(-1)
    return flat[sorted_antidiagonals(*stacked.shape)] if tiling.prefetch_rollout else flat


@pytest.mark.parametrize("height", [1, 2, 3, 7, 31, 32, 33, 100])
@pytest.mark.parametrize("width", [1, 2, 5, 32])
def test_antidiagonal_order_matches_the_sort(height: int, width: int) -> None:
    assert np.array_equal(antidiagonal_order(height, width), sorted_antidiagonals(height, width))


@pytest.mark.parametrize("seed", range(6))
def test_prefetch_order_matches_the_literal_grid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rollouts = {True: 0, False: 0}
    for _ in range(60):
        fh, fw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        layer = Layer("x", int(rng.integers(fh, 14)), int(rng.integers(fw, 14)), fh, fw, int(rng.integers(1, 6)),
                      int(rng.integers(1, 20)), int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        hardware = Hardware(int(rng.integers(1, 10)), int(rng.integers(1, 10)), str(rng.choice(["os", "ws", "is"])),
                            1, 1, 1)  # type: ignore[arg-type]
        m = mapping.map_layer(layer, hardware)
        for name in ("ifmap", "filter"):
            got, want = prefetch_order(m, name), literal_prefetch_order(m, name)  # type: ignore[arg-type]
            assert got.dtype == want.dtype and np.array_equal(got, want), (layer, hardware, name)
            rollouts[m.tilings[name].prefetch_rollout] += 1  # type: ignore[index]
    assert all(rollouts.values())


def literal_order(timing: OperandTiming, lanes: int, steps: int, used: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.arange(steps)[:, None]
    lane = np.arange(used)[None, :]
    rows = timing.start_step + (timing.flip_steps - 1 - s if timing.flip_steps else s) + (lane if timing.skew else 0)
    rows = np.broadcast_to(rows, (steps, used)).reshape(-1)
    keys = rows * lanes + np.broadcast_to(lane, (steps, used)).reshape(-1)
    perm = np.argsort(keys, kind="stable")
    return perm, rows[perm]


@pytest.mark.parametrize("seed", range(4))
def test_stream_order_matches_the_sort_by_row_and_port(seed: int) -> None:
    rng = np.random.default_rng(seed)
    kinds = set()
    for _ in range(400):
        steps, used = int(rng.integers(1, 40)), int(rng.integers(1, 12))
        flip = int(rng.integers(steps, steps + 5)) if rng.random() < 0.5 else 0
        timing = OperandTiming(int(rng.integers(0, 6)), flip, bool(rng.random() < 0.5))
        stream = memory._Stream.__new__(memory._Stream)
        stream.timing, stream.lanes, stream._orders = timing, used + int(rng.integers(0, 4)), {}
        perm, rows = stream.order(steps, used)
        want_perm, want_rows = literal_order(timing, stream.lanes, steps, used)
        assert np.array_equal(perm, want_perm) and np.array_equal(rows, want_rows), (timing, steps, used)
        kinds.add((bool(flip), timing.skew))
    assert len(kinds) == 4


def literal_lines(fetch: np.ndarray, words_per_line: int) -> dict[int, list[int]]:
    found: dict[int, set[int]] = {}
    for position, addr in enumerate(int(a) for a in fetch[fetch != NO_REQUEST]):
        found.setdefault(addr, set()).add(position // words_per_line)
    return {a: sorted(lines) for a, lines in found.items()}


@pytest.mark.parametrize("kind", ["permutation", "permutation-with-idle-ports", "repeats", "gaps", "repeat-and-gap"])
def test_line_table_matches_the_lines_holding_each_address(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(len(kind))
    if kind.startswith("permutation"):
        def no_sort(*_: object) -> None:
            raise AssertionError("a permutation of one range must not be sorted")
        monkeypatch.setattr(memory.np, "lexsort", no_sort)
    for _ in range(40):
        n = int(rng.integers(1, 300))
        base = rng.permutation(n).astype(np.int64) + 1000
        if kind == "permutation-with-idle-ports":
            base = np.insert(base, rng.integers(0, n, 5), NO_REQUEST)
        elif kind == "repeats":
            base = np.concatenate([base, base[rng.integers(0, n, 3)]])
        elif kind == "gaps":
            base = base * 2
        elif kind == "repeat-and-gap" and n > 3:
            inner = np.flatnonzero((base != base.min()) & (base != base.max()))
            base[inner[0]] = base[inner[-1]]
        wpl = int(rng.integers(1, 9))
        uniq, table, num_lines = memory._line_table(base, wpl)
        literal = literal_lines(base, wpl)
        assert uniq.tolist() == sorted(literal)
        for addr, row in zip(uniq.tolist(), table):
            assert [int(x) for x in row if x >= 0] == literal[addr]
        assert num_lines == int((base != NO_REQUEST).sum()) // wpl + 1
