"""Every fast path of :mod:`reference_sim.memory`, each named by a test, against a literal reading of the model.

The fast module computes a few things without walking the demand, and its report-only run
(``simulate(traces=False)``) has paths of its own that a traced run never takes:

* the distinct-address shortcut: an operand with fewer distinct addresses than a CALC epoch closes
  no epoch (:meth:`_Stream.distinct_addresses`, with :func:`_covered` for windows);
* the CALC epoch strategies :func:`_epochs_from_blocks` (operands without reuse, gated by
  :meth:`_Stream.all_distinct_and_valid`), :func:`_epochs_from_channel_runs` (output-stationary
  ifmap, gated by :func:`_channel_runs_apply`, in batches of folds, runs cached across column
  folds) and :func:`_epochs_from_elements` (everything else, and every traced run; fold blocks
  cached across passes);
* the start row of a report-only estimate, taken from :meth:`_Stream.busy_rows`;
* the busy-row and row-count shortcuts from fold profiles when no window hangs over the ifmap edge;
* SCALE-Sim's failure when two epochs end in one cycle, checked without building the DRAM trace.

Each test reaches its path (the case or a spy on the path's function proves it) and compares with
the demand matrix of :func:`reference_sim.contract.layer_demand` walked word by word (the literal
memory's reading of the CALC estimate) or with :mod:`reference_sim.memory_literal` itself.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from reference_sim import mapping, memory, memory_literal, network
from reference_sim.contract import (
    NO_REQUEST,
    OPERANDS,
    READ_OPERANDS,
    AffineOperand,
    Dataflow,
    Hardware,
    Layer,
    OperandName,
    layer_demand,
)
from reference_sim.engine import REFERENCE, simulate
from reference_sim.errors import SimulationError
from tests.helpers import first_result_difference
from tests.unit.test_cross_check import report_path_case

LITERAL = REFERENCE.with_module("memory", memory_literal)
Case = tuple[Hardware, Layer]


def _hw(rows: int, cols: int, dataflow: Dataflow, kib: int = 1, word_bytes: int = 1) -> Hardware:
    return Hardware(array_rows=rows, array_cols=cols, dataflow=dataflow, ifmap_sram_kib=kib, filter_sram_kib=kib,
                    ofmap_sram_kib=kib, word_bytes=word_bytes)


def _gemm(m: int, n: int, k: int) -> Layer:
    return Layer("gemm", m, k, 1, k, 1, n, 1, 1)


def _conv(h: int, w: int, fh: int, fw: int, channels: int, filters: int, sh: int, sw: int) -> Layer:
    return Layer("conv", h, w, fh, fw, channels, filters, sh, sw)


HOLE: Case = (_hw(4, 8, "os"), _gemm(17, 25, 75))
"""The sixth filter epoch (500 words) is the last 500 entries of a 600-word fold: ``rest == epoch_words``."""

HAND_CASES: tuple[Case, ...] = (
    HOLE,
    (_hw(4, 8, "ws"), _gemm(17, 25, 75)),
    (_hw(3, 5, "is", word_bytes=4), _gemm(23, 11, 30)),
    (_hw(4, 4, "os", word_bytes=8), _conv(9, 9, 3, 3, 5, 12, 1, 1)),
    (_hw(5, 3, "os", word_bytes=4), _conv(10, 11, 3, 3, 4, 7, 2, 2)),
    (_hw(6, 2, "os", word_bytes=8), _conv(12, 7, 2, 3, 6, 9, 1, 2)),
    (_hw(4, 3, "ws", word_bytes=8), _conv(8, 8, 2, 2, 3, 5, 1, 1)),
    (_hw(4, 3, "is", word_bytes=8), _conv(9, 9, 3, 3, 2, 5, 2, 3)),
    (_hw(3, 4, "ws", word_bytes=8), _conv(10, 9, 3, 2, 3, 4, 3, 2)),
    (_hw(2, 5, "os", word_bytes=8), _conv(7, 8, 1, 1, 8, 11, 2, 3)),
    (_hw(7, 3, "os", word_bytes=8), _conv(11, 11, 4, 4, 3, 10, 3, 3)),
)
CASES: tuple[Case, ...] = HAND_CASES + tuple(report_path_case(seed) for seed in range(80))


def _case_id(case: Case) -> str:
    hw, layer = case
    return (f"{hw.dataflow}{hw.array_rows}x{hw.array_cols}w{hw.word_bytes}-{layer.name}"
            f"{layer.ifmap_h}x{layer.ifmap_w}f{layer.filter_h}x{layer.filter_w}c{layer.channels}"
            f"n{layer.num_filters}s{layer.stride_h}{layer.stride_w}")


@functools.cache
def _streams(case: Case) -> dict[OperandName, memory._Stream]:
    hw, layer = case
    mapped = mapping.map_layer(layer, hw)
    scheduled = network.schedule(mapped, hw)
    return {name: memory._Stream(mapped, scheduled, name) for name in OPERANDS}


@functools.cache
def _demand(case: Case, name: OperandName) -> np.ndarray:
    stream = _streams(case)[name]
    scheduled = network.schedule(stream.mapping, case[0])
    demand: np.ndarray = layer_demand(stream.mapping, scheduled, name)
    return demand


@functools.cache
def _requests(case: Case, name: OperandName) -> tuple[list[int], list[int]]:
    """Row and address of every request, in the order the literal memory serves them."""
    demand = _demand(case, name)
    rows, lanes = np.nonzero(demand != NO_REQUEST)
    return rows.tolist(), demand[rows, lanes].tolist()


@functools.cache
def _literal_epochs(case: Case, name: OperandName, epoch_words: int) -> tuple[list[int], int, list[list[float]]]:
    """End rows of the epochs, distinct addresses of the open one, every epoch's new addresses (open one last)."""
    ends: list[int] = []
    contents: list[list[float]] = []
    seen: set[int] = set()
    current: list[int] = []
    for row, address in zip(*_requests(case, name)):
        if address in seen:
            continue
        seen.add(address)
        current.append(address)
        if len(current) == epoch_words:
            ends.append(row)
            contents.append([float(a) for a in current])
            seen, current = set(), []
    contents.append([float(a) for a in current])
    return ends, len(current), contents


def _epoch_sizes(case: Case, name: OperandName) -> list[int]:
    """Epoch sizes around the fold sizes and the distinct count, where an off-by-one shows (100 epochs at most)."""
    stream = _streams(case)[name]
    requests = len(_requests(case, name)[1])
    distinct = len(set(_requests(case, name)[1]))
    sizes = {7, 50, distinct - 1, distinct, distinct + 1}
    for size in np.unique(stream.fold_sizes()).tolist()[:3]:
        sizes |= {size - 1, size, size + 1, 2 * size - 1, 2 * size, 2 * size + 1}
    return sorted(s for s in sizes if s >= max(1, requests // 100))


def _streams_where(predicate: Callable[[memory._Stream], bool]) -> list[tuple[Case, OperandName]]:
    return [(case, name) for case in CASES for name in READ_OPERANDS if predicate(_streams(case)[name])]


def _params(pairs: list[tuple[Case, OperandName]]) -> list[Any]:
    return [pytest.param(case, name, id=f"{_case_id(case)}-{name}") for case, name in pairs]


class _Spy:
    """Counts the calls of one module function (by operand name of its first argument) while it runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, function: str) -> None:
        self.names: list[str] = []
        original = getattr(memory, function)

        def spy(stream: memory._Stream, *args: Any, **kwargs: Any) -> Any:
            self.names.append(stream.name)
            return original(stream, *args, **kwargs)

        monkeypatch.setattr(memory, function, spy)


def _strategy_spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, _Spy]:
    return {f: _Spy(monkeypatch, f) for f in ("_epochs_from_blocks", "_epochs_from_channel_runs",
                                              "_epochs_from_elements")}


def _assert_reports_match_literal(case: Case) -> None:
    hw, layer = case
    difference = first_result_difference(f"{hw!r} {layer!r}", simulate([layer], hw, LITERAL), simulate([layer], hw))
    assert difference is None, difference


# --------------------------------------------------------------------------- busy rows and row counts


@pytest.mark.parametrize("valid", [True, False], ids=["busy_row_shortcut", "busy_rows_from_fold_elements"])
def test_busy_rows_match_demand(valid: bool) -> None:
    """``busy_rows``: from the first and last fold's profile when every entry is a request, else from elements."""
    checked = 0
    for case in CASES:
        for name in OPERANDS:
            if _streams(case)[name].all_valid() != valid:
                continue
            busy = np.flatnonzero((_demand(case, name) != NO_REQUEST).any(axis=1))
            assert _streams(case)[name].busy_rows() == (int(busy[0]), int(busy[-1])), (case, name)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("valid", [True, False], ids=["row_count_shortcut", "row_counts_from_fold_elements"])
def test_row_counts_match_demand(valid: bool) -> None:
    """``row_counts``: fold profiles by shape when every entry is a request, else a bincount of every fold."""
    checked = 0
    for case in CASES:
        for name in OPERANDS:
            stream = _streams(case)[name]
            if stream.all_valid() != valid:
                continue
            expected = (_demand(case, name) != NO_REQUEST).sum(axis=1)
            assert np.array_equal(stream.row_counts(), expected), (case, name)
            shapes = [stream.shape(f) for f in range(stream.num_folds)]
            assert [tuple(s) for s in stream.shapes().tolist()] == shapes, (case, name)
            checked += 1
    assert checked >= 10


# --------------------------------------------------------------------------- the distinct-address shortcut


def test_distinct_address_count_matches_demand() -> None:
    """``distinct_addresses`` (windows by covered positions, all-distinct matrices by size) counts the demand."""
    kinds: set[str] = set()
    for case in CASES:
        for name in READ_OPERANDS:
            stream = _streams(case)[name]
            distinct = stream.distinct_addresses()
            if distinct is None:
                continue
            kinds.add(stream.matrix.kind)
            assert distinct == len(set(_requests(case, name)[1])), (case, name)
    assert kinds == {"window", "affine"}


SHORTCUT_CASES: tuple[tuple[Case, OperandName], ...] = (
    ((_hw(4, 8, "os"), _gemm(9, 25, 20)), "filter"),
    ((_hw(4, 8, "ws"), _gemm(9, 25, 20)), "filter"),
    ((_hw(4, 4, "os"), _conv(10, 10, 3, 3, 5, 4, 1, 1)), "ifmap"),
    ((_hw(4, 4, "is"), _conv(10, 10, 3, 3, 5, 4, 1, 1)), "ifmap"),
    ((_hw(3, 4, "ws"), _conv(10, 10, 2, 2, 5, 4, 2, 2)), "ifmap"),
    ((_hw(3, 4, "os"), _conv(15, 15, 2, 2, 5, 4, 3, 3)), "ifmap"),
)
"""Operands with 500 distinct addresses (in the last, every third ifmap row and column is never read)."""


@pytest.mark.parametrize("set_words", [9, 10, 11], ids=["epoch_450", "epoch_500", "epoch_550"])
@pytest.mark.parametrize(("case", "name"), _params(list(SHORTCUT_CASES)))
def test_distinct_address_shortcut_at_the_epoch_boundary(case: Case, name: OperandName, set_words: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """500 distinct addresses close one epoch of 450 or 500 words; only an epoch of 550 takes the shortcut."""
    stream = _streams(case)[name]
    assert stream.distinct_addresses() == len(set(_requests(case, name)[1])) == 500
    epoch_words = memory.ESTIMATE_SETS_PER_HALF * set_words
    spies = _strategy_spies(monkeypatch)
    got = memory._estimate_epochs(stream, memory._Buffer(memory.PARTS_PER_BUFFER * set_words), record=False)
    ends, last, _ = _literal_epochs(case, name, epoch_words)
    assert (got.end_rows, got.last_distinct, got.first_row) == (ends, last, _requests(case, name)[0][0])
    took_shortcut = not any(spy.names for spy in spies.values())
    assert took_shortcut == (epoch_words > 500)


def _matrix_addresses(stream: memory._Stream) -> np.ndarray:
    n_rows, n_cols = stream.matrix.shape
    addresses: np.ndarray = stream.matrix.addresses(np.arange(n_rows)[:, None], np.arange(n_cols)[None, :])
    return addresses


def _no_reuse(addresses: np.ndarray) -> bool:
    return bool((addresses != NO_REQUEST).all()) and np.unique(addresses).size == addresses.size


def test_all_distinct_gate_admits_no_reuse() -> None:
    """``all_distinct_and_valid`` (the gate of ``_epochs_from_blocks``) holds only for operands without reuse.

    Affine layouts of every small stride (overlapping ones too) besides the mapping's own; windows of the cases.
    """
    base = _streams(HOLE)["filter"]
    scheduled = network.schedule(base.mapping, HOLE[0])
    admitted = {"affine": 0, "window": 0}
    for n_rows, n_cols, row_stride, col_stride in itertools.product((1, 2, 3, 5), (1, 2, 4), (0, 1, 2, 3, 5),
                                                                    (0, 1, 2, 3, 4, 6, 15)):
        operand = AffineOperand(0, n_rows, n_cols, row_stride, col_stride)
        stream = memory._Stream(dataclasses.replace(base.mapping, filter=operand), scheduled, "filter")
        if stream.all_distinct_and_valid():
            admitted["affine"] += 1
            assert _no_reuse(_matrix_addresses(stream)), operand
    for case in CASES:
        for name in OPERANDS:
            stream = _streams(case)[name]
            if stream.all_distinct_and_valid():
                admitted[stream.matrix.kind] += 1
                assert _no_reuse(_matrix_addresses(stream)), (case, name)
    assert min(admitted.values()) >= 20, admitted


# --------------------------------------------------------------------------- the report-only estimate


def _set_sizes(case: Case, name: OperandName) -> list[int]:
    distinct = len(set(_requests(case, name)[1]))
    per_epoch = memory.ESTIMATE_SETS_PER_HALF
    return sorted({1, 2, 5, max(1, distinct // per_epoch), distinct // per_epoch + 1})


@pytest.mark.parametrize("case", [pytest.param(c, id=_case_id(c)) for c in CASES])
def test_report_only_estimate_matches_literal_walk(case: Case) -> None:
    """``_estimate_epochs(record=False)`` (shortcut, strategy gates, start row) on several buffer sizes."""
    for name in READ_OPERANDS:
        for set_words in _set_sizes(case, name):
            got = memory._estimate_epochs(_streams(case)[name], memory._Buffer(memory.PARTS_PER_BUFFER * set_words),
                                          record=False)
            ends, last, _ = _literal_epochs(case, name, memory.ESTIMATE_SETS_PER_HALF * set_words)
            assert (got.end_rows, got.last_distinct, got.first_row, got.set_words) == (
                ends, last, _requests(case, name)[0][0], set_words), (name, set_words)


def test_report_only_estimate_cases_reach_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases above take the shortcut and each of the three strategies, each many times."""
    spies = _strategy_spies(monkeypatch)
    shortcuts = 0
    for case in CASES:
        for name in READ_OPERANDS:
            for set_words in _set_sizes(case, name):
                calls = sum(len(spy.names) for spy in spies.values())
                memory._estimate_epochs(_streams(case)[name], memory._Buffer(memory.PARTS_PER_BUFFER * set_words),
                                        record=False)
                shortcuts += calls == sum(len(spy.names) for spy in spies.values())
    assert shortcuts >= 20
    assert all(len(spy.names) >= 20 for spy in spies.values()), {f: len(s.names) for f, s in spies.items()}


# --------------------------------------------------------------------------- the CALC epoch strategies


BLOCK_STREAMS = _streams_where(lambda s: s.all_distinct_and_valid())
RUN_STREAMS = _streams_where(memory._channel_runs_apply)


def test_strategy_cases_reach_every_strategy() -> None:
    """The cases give each strategy many streams: runs over several passes and over the ifmap edge, reread blocks."""
    assert len(BLOCK_STREAMS) >= 20
    assert len(RUN_STREAMS) >= 10
    assert any(_streams(case)[name].mapping.col_folds > 1 for case, name in RUN_STREAMS)
    assert any(not _streams(case)[name].all_valid() for case, name in RUN_STREAMS)
    assert any(np.unique(_streams(case)[name].block_ids()).size < _streams(case)[name].num_folds
               for case, name in BLOCK_STREAMS)


@pytest.mark.parametrize("fold_window", [memory._FOLD_WINDOW, 1], ids=["default_window", "one_fold_window"])
@pytest.mark.parametrize(("case", "name"), _params(BLOCK_STREAMS))
def test_epochs_from_blocks_match_literal_walk(case: Case, name: OperandName, fold_window: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``_epochs_from_blocks``: epochs from fold sizes and block reuse, on epoch sizes around the fold sizes."""
    monkeypatch.setattr(memory, "_FOLD_WINDOW", fold_window)
    stream = _streams(case)[name]
    for epoch_words in _epoch_sizes(case, name):
        ends, last, _ = _literal_epochs(case, name, epoch_words)
        assert memory._epochs_from_blocks(stream, epoch_words) == (ends, last), epoch_words


@pytest.mark.parametrize(("per_batch", "run_window"), [
    (memory._RUNS_PER_BATCH, memory._RUN_WINDOW), (1, memory._RUN_WINDOW), (memory._RUNS_PER_BATCH, 1),
], ids=["defaults", "one_fold_per_batch", "one_run_window"])
@pytest.mark.parametrize(("case", "name"), _params(RUN_STREAMS))
def test_epochs_from_channel_runs_match_literal_walk(case: Case, name: OperandName, per_batch: int, run_window: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``_epochs_from_channel_runs``: epochs per (pixel, tap) run, folds in batches, runs cached across passes."""
    monkeypatch.setattr(memory, "_RUNS_PER_BATCH", per_batch)
    monkeypatch.setattr(memory, "_RUN_WINDOW", run_window)
    stream = _streams(case)[name]
    for epoch_words in _epoch_sizes(case, name):
        ends, last, _ = _literal_epochs(case, name, epoch_words)
        got = memory._epochs_from_channel_runs(stream, epoch_words)
        assert (got.end_rows, got.last_distinct, got.first_row) == (ends, last, _requests(case, name)[0][0]), (
            epoch_words)


@pytest.mark.parametrize("table_entries", [memory._SEEN_TABLE_ENTRIES, 0], ids=["last_seen_table", "open_epoch_sets"])
@pytest.mark.parametrize("batch_words", [memory._BATCH_WORDS, 7], ids=["big_batches", "small_batches"])
@pytest.mark.parametrize("cache_words", [memory._CACHED_BLOCK_WORDS, 0], ids=["blocks_cached", "nothing_cached"])
@pytest.mark.parametrize("record", [False, True], ids=["report_only", "recording"])
@pytest.mark.parametrize("case", [pytest.param(c, id=_case_id(c)) for c in CASES[:40]])
def test_epochs_from_elements_match_literal_walk(case: Case, record: bool, cache_words: int, batch_words: int,
                                                 table_entries: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_epochs_from_elements``: the word-by-word pass, with and without the pass-to-pass block cache; folds
    that read their own block walked many at a time (big batches) or fold by fold (small ones); operands
    small enough for a table of last requests, or not (a sorted set of the open epoch's addresses per epoch
    size); every epoch size of the case in one shared pass."""
    monkeypatch.setattr(memory, "_CACHED_BLOCK_WORDS", cache_words)
    monkeypatch.setattr(memory, "_BATCH_WORDS", batch_words)
    monkeypatch.setattr(memory, "_SEEN_TABLE_ENTRIES", table_entries)
    for name in READ_OPERANDS:
        stream = _streams(case)[name]
        sizes = _epoch_sizes(case, name)
        assert len(sizes) > 1
        for epoch_words, got in zip(sizes, memory._epochs_from_elements(stream, sizes, record), strict=True):
            ends, last, contents = _literal_epochs(case, name, epoch_words)
            assert (got.end_rows, got.last_distinct, got.first_row) == (ends, last, _requests(case, name)[0][0]), (
                name, epoch_words)
            assert got.contents == (contents if record else None)


# --------------------------------------------------------------------------- whole layers against the literal memory


@pytest.mark.parametrize(("strategy", "case"), [
    ("_epochs_from_blocks", HOLE),
    ("_epochs_from_blocks", (_hw(4, 8, "ws"), _gemm(17, 25, 75))),
    ("_epochs_from_blocks", (_hw(3, 5, "is", word_bytes=4), _gemm(23, 11, 30))),
    ("_epochs_from_channel_runs", (_hw(4, 4, "os", word_bytes=8), _conv(9, 9, 3, 3, 5, 12, 1, 1))),
    ("_epochs_from_channel_runs", (_hw(5, 3, "os", word_bytes=4), _conv(10, 11, 3, 3, 4, 7, 2, 2))),
    ("_epochs_from_channel_runs", (_hw(7, 3, "os", word_bytes=8), _conv(11, 11, 4, 4, 3, 10, 3, 3))),
    ("_epochs_from_elements", (_hw(4, 3, "ws", word_bytes=8), _conv(8, 8, 2, 2, 3, 5, 1, 1))),
    ("_epochs_from_elements", (_hw(4, 3, "is", word_bytes=8), _conv(9, 9, 3, 3, 2, 5, 2, 3))),
], ids=lambda v: v if isinstance(v, str) else _case_id(v))
def test_report_only_strategy_matches_literal_memory(strategy: str, case: Case,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole layers, traces off: the case reaches ``strategy`` and the reports equal the literal memory's."""
    spy = _Spy(monkeypatch, strategy)
    _assert_reports_match_literal(case)
    assert spy.names, f"{strategy} not reached"


def test_blocks_epoch_ending_at_a_fold_end_matches_literal_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """An epoch that is exactly the rest of its fold (``rest == epoch_words``): the filter's DRAM stop cycle."""
    hw, layer = HOLE
    literal = simulate([layer], hw, LITERAL)
    assert literal[0].dram_start_stop["filter"] == (-50.0, 1272.0)
    spy = _Spy(monkeypatch, "_epochs_from_blocks")
    assert simulate([layer], hw)[0].dram_start_stop["filter"] == (-50.0, 1272.0)
    assert "filter" in spy.names


@pytest.mark.parametrize("kib", [1, 2], ids=["one_epoch_of_500", "shortcut_epoch_1000"])
@pytest.mark.parametrize(("case", "name"), _params(list(SHORTCUT_CASES)))
def test_few_distinct_addresses_match_literal_memory(case: Case, name: OperandName, kib: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole layers, traces off: 500 distinct addresses fill one epoch at 1 KiB and take the shortcut at 2 KiB."""
    hw, layer = case
    sized = dataclasses.replace(hw, ifmap_sram_kib=kib, filter_sram_kib=kib)
    spies = _strategy_spies(monkeypatch)
    _assert_reports_match_literal((sized, layer))
    assert (name not in [n for spy in spies.values() for n in spy.names]) == (kib == 2)


def test_two_epochs_in_one_cycle_fail_without_traces() -> None:
    """SCALE-Sim v2 fails when two read-estimate epochs end in one cycle; so does the report-only run."""
    hw, layer = _hw(64, 64, "os", word_bytes=8), _gemm(64, 64, 64)
    for modules in (LITERAL, REFERENCE):
        with pytest.raises(SimulationError, match="two read-estimate epochs end in one cycle"):
            simulate([layer], hw, modules)


@pytest.mark.parametrize(("addr", "distinct"), [
    ([5, 3, 4, 9], True),
    ([5, 3, 5, 9], False),
    ([0, 1000], False),
    ([7], True),
])
def test_all_distinct_counts_only_dense_addresses(addr: list[int], distinct: bool) -> None:
    """A chunk whose addresses are all distinct skips the sort; a sparse chunk (``[0, 1000]``) is sorted,
    unless a table over the operand's addresses (``_DistinctCheck``) finds it distinct."""
    assert memory._all_distinct(np.array(addr, dtype=np.int64)) is distinct
    check = memory._DistinctCheck(-3, 1004)
    assert check(np.array(addr, dtype=np.int64)) is (len(set(addr)) == len(addr))
    assert check(np.array(addr[::-1], dtype=np.int64)) is (len(set(addr)) == len(addr))
    block = memory._BlockReuse.of(np.array(addr, dtype=np.int64), np.arange(len(addr), dtype=np.int64))
    assert block.distinct is distinct
    firsts = sorted(addr.index(a) for a in set(addr))
    assert sorted(block.first.tolist()) == firsts
    assert block.local_prev.tolist() == [max((j for j in range(i) if addr[j] == a), default=-1)
                                         for i, a in enumerate(addr)]


@pytest.mark.parametrize("seed", range(5))
def test_unique_is_numpys_unique_with_its_inverse(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(-5, 3 + 20 * seed, size=int(rng.integers(0, 40)))
    distinct, inverse = memory._unique(values)
    want, want_inverse = np.unique(values, return_inverse=True)
    assert np.array_equal(distinct, want) and np.array_equal(inverse, want_inverse.reshape(-1))
