"""The USER-bandwidth fast paths against their literal definitions, on random shapes.

* :func:`reference_sim.contract.prefetch_chunks` (and :func:`prefetch_order`, its concatenation)
  computes the fetch order a chunk of rows or anti-diagonals at a time, each entry's lane block,
  step and port from its position (no full index grid, no sort); the literal definition is the
  full grid and a stable sort by (diagonal, lower row first).
* :func:`reference_sim.contract.antidiagonal_order` (the stream order of a skewed fold block)
  against the same sort.
* :meth:`reference_sim.memory._Stream.order` builds the stream order of a fold block from its
  timing (no sort); the literal definition sorts the entries by (fold row, port).
* :func:`reference_sim.memory._prefetch_events` moves the window of buffer lines straight to the
  first shift that holds a missing address, with per-address bookkeeping (:class:`_LineWindow`,
  or arithmetic on each address's one line in :class:`_DistinctLineWindow`); the literal definition
  shifts one step at a time and looks for the address in every line of the window.
* Where every fold's demand is the fetch order itself (:func:`reference_sim.memory._demand_is_fetch_order`),
  the window works on fetch positions and builds no addresses; checked against that definition
  and, with traces on and off, against the literal memory model.

Each test also reaches its fast path (the random cases include every branch).
"""

from __future__ import annotations

import math
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

from reference_sim import contract, mapping, memory, memory_literal, network
from reference_sim.contract import NO_REQUEST, Hardware, Layer, OperandTiming, antidiagonal_order, prefetch_order
from reference_sim.engine import REFERENCE, layer_result, simulate
from tests.helpers import first_result_difference

LITERAL = REFERENCE.with_module("memory", memory_literal)


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


@pytest.mark.parametrize("chunk_entries", [5, 1 << 20])
@pytest.mark.parametrize("seed", range(6))
def test_prefetch_order_matches_the_literal_grid(seed: int, chunk_entries: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contract, "_FILL_CHUNK_ENTRIES", chunk_entries)
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


def literal_events(fetch: np.ndarray, words_per_line: int, active: int, step: int,
                   demand: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[int], list[int]]:
    """The literal window walk: per demanded address, shift by ``step`` lines until a window line holds it."""
    valid = [int(a) for a in fetch if a != NO_REQUEST]
    lines = [set(valid[i : i + words_per_line]) for i in range(0, len(valid), words_per_line)]
    if len(valid) % words_per_line == 0:
        lines.append(set())
    start, count = 0, 0
    moved: dict[int, int] = {}
    for addr, rows in demand:
        for a, row in zip(addr.tolist(), rows.tolist()):
            while not any(a in lines[(start + k) % len(lines)] for k in range(active)):
                start, count = (start + step) % len(lines), count + 1
                moved[row] = count
    return list(moved), list(moved.values())


def window_case(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, int, int, int,
                                                                list[tuple[np.ndarray, np.ndarray]]]:
    """A fetch order, line size, window and step, and demand pieces that follow the fetch order with
    jitter, go back to earlier blocks (the window wraps) and jump ahead.  ``long``: the first line
    holding an address is 4,096 lines past the window (a long forward search, the first line of its
    second chunk), then an address left behind is found in the next turn; one request per row, so every move is seen."""
    n = int(rng.integers(20, 400)) if kind != "long" else 20_000
    base = rng.permutation(n).astype(np.int64) + 500
    if kind == "repeats":
        base = np.concatenate([base, base[rng.integers(0, n, int(rng.integers(1, 2 * n)))]])
        rng.shuffle(base)
    elif kind == "clusters":
        base = np.repeat(base, rng.integers(1, 5, n))
    elif kind == "long":
        base[15_000] = base[4_106]
    if kind != "long":
        base = np.insert(base, rng.integers(0, base.size, 4), NO_REQUEST)
    valid = base[base != NO_REQUEST]
    words_per_line = int(rng.integers(1, 9)) if kind != "long" else 1
    num_lines = valid.size // words_per_line + 1
    active = int(rng.integers(1, max(2, num_lines // 3)))
    step = int(rng.integers(1, active + 1))
    if kind == "long":
        active, step = 10, 10
    pieces: list[tuple[np.ndarray, np.ndarray]] = []
    row = 0
    position = 0
    for _ in range(int(rng.integers(1, 6))):
        size = int(rng.integers(1, min(400, valid.size) + 1))
        move = rng.random()
        if move < 0.3:
            position = int(rng.integers(0, valid.size))
        order = np.clip(position + np.arange(size) + rng.integers(-3, 4, size), 0, valid.size - 1)
        if kind == "long":
            order = np.array([0, 1, 2, 3, 15_000, 2], dtype=np.int64)
        position = int(order[-1])
        spread = np.arange(order.size) if kind == "long" else np.sort(rng.integers(0, max(1, size // 2), order.size))
        rows = row + spread
        row = int(rows[-1]) + int(rng.integers(0, 3))
        pieces.append((valid[order], rows))
    return base, words_per_line, active, step, pieces


@pytest.mark.parametrize("chunk_words", [3, 1 << 22])
@pytest.mark.parametrize("kind", ["distinct", "repeats", "clusters", "long"])
def test_window_moves_like_the_literal_walk(kind: str, chunk_words: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_WINDOW_CHUNK_WORDS", chunk_words)
    rng = np.random.default_rng(len(kind))
    moved = 0
    for _ in range(60 if kind != "long" else 1):
        fetch, wpl, active, step, demand = window_case(rng, kind)
        valid = fetch[fetch != NO_REQUEST]
        kinds = [memory._LineWindow] + ([memory._DistinctLineWindow] if kind == "distinct" else [])
        want_rows, want_counts = literal_events(fetch, wpl, active, step, demand)
        for window_kind in kinds:
            window = window_kind(memory._FetchIndices.of(fetch), wpl, valid.size // wpl + 1, active)
            rows, counts = memory._prefetch_events(window, step, demand)
            assert (rows.tolist(), counts.tolist()) == (want_rows, want_counts), (window_kind, fetch, wpl, active, step)
        moved += len(want_rows)
    assert moved


def test_window_refuses_an_address_missing_from_the_fetch_order() -> None:
    fetch = np.arange(10, dtype=np.int64) * 2
    for window_kind in (memory._LineWindow, memory._DistinctLineWindow):
        window = window_kind(memory._FetchIndices.of(fetch), 2, 6, 2)
        with pytest.raises(memory.SimulationError, match="no window holds a demanded address"):
            memory._prefetch_events(window, 1, [(np.array([0, 5]), np.array([0, 1]))])


def random_user_case(rng: np.random.Generator) -> tuple[Hardware, Layer]:
    """Small USER architectures and layers; GEMM-like and 1x1 layers give single lane blocks, where every
    fold's demand can be the fetch order itself."""
    rows, cols = int(rng.choice([2, 3, 4, 8])), int(rng.choice([2, 3, 5, 8]))
    hardware = Hardware(rows, cols, str(rng.choice(["os", "ws", "is"])), 1, 1, 1,  # type: ignore[arg-type]
                        bandwidth_mode="USER", dram_words_per_cycle=int(rng.choice([1, 2, 3, 7])))
    if rng.random() < 0.6:
        m, n, k = int(rng.integers(1, 12)), int(rng.integers(1, 12)), int(rng.integers(1, 300))
        return hardware, Layer("gemm", m, k, 1, k, 1, n, 1, 1)
    fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    return hardware, Layer("conv", int(rng.integers(fh, 9)), int(rng.integers(fw, 9)), fh, fw,
                           int(rng.integers(1, 40)), int(rng.integers(1, 9)), 1, 1)


@pytest.mark.parametrize("chunk_entries", [50, 1 << 19])
@pytest.mark.parametrize("seed", range(3))
def test_position_path_matches_the_literal_model(seed: int, chunk_entries: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_CHUNK_ENTRIES", chunk_entries)
    rng = np.random.default_rng(seed)
    taken: list[bool] = []
    real = memory._demand_is_fetch_order

    def spy(stream: memory._Stream) -> bool:
        answer = real(stream)
        taken.append(answer)
        if answer:
            demand = np.concatenate([stream.fold_elements(f)[0] for f in range(stream.num_folds)])
            fetch = prefetch_order(stream.mapping, stream.name)
            once = fetch[fetch != NO_REQUEST]
            assert np.array_equal(demand, np.tile(once, stream.num_folds)), "demand is not the fetch order"
        return answer

    monkeypatch.setattr(memory, "_demand_is_fetch_order", spy)
    for _ in range(25):
        hardware, layer = random_user_case(rng)
        for traces in (False, True):
            fast = simulate([layer], hardware, traces=traces)
            literal = simulate([layer], hardware, LITERAL, traces=traces)
            assert first_result_difference(f"{hardware} {layer} traces={traces}", literal, fast) is None
    assert any(taken) and not all(taken)


@pytest.mark.parametrize("chunk_entries", [7, 1 << 19])
@pytest.mark.parametrize("batch_words", [1, 40, 1 << 18])
def test_fold_batches_hold_the_requests_of_every_fold(batch_words: int, chunk_entries: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of folds, or chunks of rows of a fold bigger than ``_CHUNK_ENTRIES``, hold every request
    in stream order; so do the rows of :meth:`_Stream.fold_rows`."""
    monkeypatch.setattr(memory, "_BATCH_WORDS", batch_words)
    monkeypatch.setattr(memory, "_CHUNK_ENTRIES", chunk_entries)
    rng = np.random.default_rng(batch_words)
    chunked = 0
    for _ in range(40):
        hardware, layer = random_user_case(rng)
        if rng.random() < 0.5:
            layer = Layer("pad", 5, 6, 3, 2, 2, int(rng.integers(1, 9)), 2, 3)
        m = mapping.map_layer(layer, hardware)
        schedule = network.schedule(m, hardware)
        for name in ("ifmap", "filter", "ofmap"):
            stream = memory._Stream(m, schedule, name)  # type: ignore[arg-type]
            batches = list(stream.fold_batches())
            folds = [stream.fold_elements(f) for f in range(stream.num_folds)]
            want = [(addr, rows + f * stream.fold_cycles) for f, (addr, rows) in enumerate(folds)]
            for got, expected in zip((np.concatenate([b[i] for b in batches]) for i in (0, 1)),
                                     (np.concatenate([f[i] for f in want]) for i in (0, 1))):
                assert np.array_equal(got, expected), (layer, hardware, name)
            if batch_words == 1 and chunk_entries > 1000:
                assert len(batches) == stream.num_folds
            chunked += len(batches) > stream.num_folds
            if stream.all_valid():
                pieces = list(stream.fold_rows())
                assert [f for f, _ in pieces] == sorted(f for f, _ in pieces)
                assert np.array_equal(np.concatenate([rows for _, rows in pieces]),
                                      np.concatenate([rows for _, rows in want]))
    assert bool(chunked) == (chunk_entries < 1000)


def test_user_read_buffer_holds_no_whole_fetch_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without traces, a USER read buffer keeps its fetch order as 32-bit indices and walks it, and its
    demand, a chunk at a time: the traced peak stays below the fetch order as one int64 array."""
    monkeypatch.setattr(contract, "_FILL_CHUNK_ENTRIES", 1 << 14)
    monkeypatch.setattr(memory, "_CHUNK_ENTRIES", 1 << 14)
    monkeypatch.setattr(memory, "_WINDOW_CHUNK_WORDS", 1 << 14)
    hardware = Hardware(12, 14, "ws", 36, 36, 36, bandwidth_mode="USER", dram_words_per_cycle=10)
    layer = Layer("wide", 300, 300, 3, 3, 3, 12, 1, 1)
    m = mapping.map_layer(layer, hardware)
    schedule = network.schedule(m, hardware)
    fetch_entries = prefetch_order(m, "ifmap").size
    assert fetch_entries > 3_000_000 and m.tilings["ifmap"].prefetch_rollout
    tracemalloc.start()
    try:
        result = memory.simulate(m, schedule, hardware, traces=False)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 8 * fetch_entries, (peak_bytes, fetch_entries)
    monkeypatch.undo()
    whole = memory.simulate(m, schedule, hardware, traces=False)
    assert first_result_difference("wide", [layer_result(layer, hardware, m, whole)],
                                   [layer_result(layer, hardware, m, result)]) is None


def test_window_widens_its_line_numbers_past_32_bits() -> None:
    fetch = np.arange(12, dtype=np.int64)
    window = memory._LineWindow(memory._FetchIndices.of(fetch), 2, 6, 2)
    assert window.latest.dtype == np.int32
    start = 6 * (2**31 // 6 + 1)
    window.enter(start, start + 2)
    assert window.latest.dtype == np.int64
    held = window.held(window.relative(np.arange(12)), start)
    assert held.tolist() == [True] * 4 + [False] * 8


def test_position_path_needs_the_fetch_order_to_follow_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mapping module whose fetch order is row by row under a skewed stream (any mix of modules runs
    together) does not take the position path, and still matches the literal model."""
    hardware = Hardware(4, 4, "os", 1, 1, 1, bandwidth_mode="USER", dram_words_per_cycle=2)
    m = mapping.map_layer(Layer("gemm", 3, 300, 1, 300, 1, 4, 1, 1), hardware)
    schedule = network.schedule(m, hardware)
    assert memory._demand_is_fetch_order(memory._Stream(m, schedule, "filter"))
    rows_first = replace(m, tilings={**m.tilings, "filter": replace(m.tilings["filter"], prefetch_rollout=False)})
    assert not memory._demand_is_fetch_order(memory._Stream(rows_first, schedule, "filter"))
    layer = Layer("gemm", 3, 300, 1, 300, 1, 4, 1, 1)
    for traces in (False, True):
        fast = layer_result(layer, hardware, rows_first, memory.simulate(rows_first, schedule, hardware, traces=traces))
        literal = layer_result(layer, hardware, rows_first,
                               memory_literal.simulate(rows_first, schedule, hardware, traces=traces))
        assert first_result_difference(f"traces={traces}", [literal], [fast]) is None


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 2, 1), (1, 1, 1, 2), (3, 1, 1, 1), (1, 2, 1, 1), (2, 3, 2, 2)])
def test_window_addresses_follow_their_definition(shape: tuple[int, int, int, int]) -> None:
    """Every window operand's addresses, the 1x1 stride-1 shortcut included, against the docstring's formula
    evaluated entry by entry."""
    fh, fw, sh, sw = shape
    ih, iw, ch = 7, 6, 3
    oh, ow = (ih - fh) // sh + 1, (iw - fw) // sw + 1
    m = contract.WindowOperand(100, ih, iw, ch, fh, fw, sh, sw, oh, ow)
    rows, cols = np.meshgrid(np.arange(oh * ow), np.arange(fh * fw * ch), indexing="ij")
    want = np.empty(rows.shape, dtype=np.int64)
    for (i, j), _ in np.ndenumerate(want):
        pr, pc = divmod(i, ow)
        kr, rest = divmod(j, fw * ch)
        kc, c = divmod(rest, ch)
        inside = pr * sh + kr < ih and pc * sw + kc < iw
        want[i, j] = 100 + ((pr * sh + kr) * iw + pc * sw + kc) * ch + c if inside else NO_REQUEST
    assert np.array_equal(m.addresses(rows, cols), want)
    assert np.array_equal(m.addresses(rows[:, :1], cols[:1, :]), want)
