"""Bounded memory: the CALC paths walk fold blocks in chunks, and a layer beyond the work limit is refused.

The chunked paths are reached on small random layers by shrinking ``memory._CHUNK_ENTRIES`` (and
the other window constants) with monkeypatch; every result is compared with the literal memory
module, traces on and off.  The work limit is checked on the issue's 100,000 x 100,000 x 1,024
layer and on layers just under and over a small limit, whose estimates are worked out by hand.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from reference_sim import cli, memory, memory_literal
from reference_sim.contract import BandwidthMode, Dataflow, Hardware, Layer, OperandName, layer_demand
from reference_sim.engine import REFERENCE, check_work, simulate, simulate_layer
from reference_sim.errors import SimulationError, WorkLimitError
from reference_sim.mapping import map_layer
from reference_sim.network import schedule
from tests.helpers import first_result_difference

LITERAL = REFERENCE.with_module("memory", memory_literal)
OPERAND_NAMES: tuple[OperandName, ...] = ("ifmap", "filter", "ofmap")


def _walked_case(rng: random.Random) -> tuple[Hardware, Layer]:
    """A CALC layer whose ifmap has overlapping windows and more distinct addresses than an epoch holds, walked
    request by request (no channel runs: output stationary only below three channels)."""
    dataflow = rng.choice(["os", "ws", "is", "ws", "is"])
    hardware = Hardware(array_rows=rng.choice([2, 3, 4, 5]), array_cols=rng.choice([2, 3, 4, 6]),
                        dataflow=dataflow, ifmap_sram_kib=1,
                        filter_sram_kib=rng.choice([1, 2]), ofmap_sram_kib=rng.choice([1, 2]),
                        ifmap_offset=rng.choice([0, 37]), word_bytes=4)
    fh, fw = rng.randint(2, 3), rng.randint(1, 3)
    channels = 2 if dataflow == "os" else rng.randint(2, 6)
    h, w = rng.randint(14, 18), rng.randint(max(fw, 12), 16)
    return hardware, Layer("conv", h, w, fh, fw, channels, rng.randint(1, 10), 1, rng.choice([1, 2]))


class _ChunkSpy:
    """Counts the chunks :meth:`memory._Stream.fold_chunk` hands out after the first of their fold."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.later_chunks = 0
        original = memory._Stream.fold_chunk

        def spy(stream: memory._Stream, fold: int, part: int) -> tuple[np.ndarray, np.ndarray]:
            self.later_chunks += part > 0
            return original(stream, fold, part)

        monkeypatch.setattr(memory._Stream, "fold_chunk", spy)


@pytest.mark.parametrize("table_entries", [0, 1 << 24], ids=["open-epoch-set", "last-seen-table"])
@pytest.mark.parametrize("traces", [False, True], ids=["traces-off", "traces-on"])
@pytest.mark.parametrize("seed", range(24))
def test_chunked_calc_paths_match_literal(seed: int, traces: bool, table_entries: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7000 + seed)
    hardware, layer = _walked_case(rng)
    monkeypatch.setattr(memory, "_SEEN_TABLE_ENTRIES", table_entries)
    monkeypatch.setattr(memory, "_CHUNK_ENTRIES", rng.choice([1, 2, 3]))
    monkeypatch.setattr(memory, "_FIRST_WINDOW", rng.choice([1, 3, 64]))
    monkeypatch.setattr(memory, "_CACHED_BLOCK_WORDS", rng.choice([0, 50, 4_000_000]))
    monkeypatch.setattr(memory, "_BATCH_WORDS", 0)
    spy = _ChunkSpy(monkeypatch)
    case = f"seed {seed}: {hardware!r} {layer!r}"
    try:
        literal = simulate([layer], hardware, LITERAL, traces=traces)
    except SimulationError:
        with pytest.raises(SimulationError):
            simulate([layer], hardware, traces=traces)
        return
    fast = simulate([layer], hardware, traces=traces)
    assert first_result_difference(case, literal, fast) is None
    assert spy.later_chunks > 0, "the layer never went through a second chunk of a fold"


@pytest.mark.parametrize("traces", [False, True], ids=["traces-off", "traces-on"])
def test_batches_taken_fold_by_fold_match_literal(traces: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of folds that repeat addresses go fold by fold (every batch, at ``_SPLIT_FOLD_WORDS = 1``);
    random walked cases against the literal model, some folds free of repeats and some not."""
    monkeypatch.setattr(memory, "_SPLIT_FOLD_WORDS", 1)
    pieces = {"distinct": 0, "sorted": 0}
    original = memory._batch_reuse

    def spy(addr: np.ndarray, rows: np.ndarray, check: memory._DistinctCheck,
            fold_cycles: int) -> Iterator[memory._BlockReuse]:
        blocks = list(original(addr, rows, check, fold_cycles))
        if len(blocks) > 1:
            for block in blocks:
                pieces["distinct" if block.distinct else "sorted"] += 1
        return iter(blocks)

    monkeypatch.setattr(memory, "_batch_reuse", spy)
    for seed in range(40):
        rng = random.Random(9100 + seed)
        hardware, layer = _walked_case(rng)
        case = f"seed {seed}: {hardware!r} {layer!r}"
        try:
            literal = simulate([layer], hardware, LITERAL, traces=traces)
        except SimulationError:
            continue
        assert first_result_difference(case, literal, simulate([layer], hardware, traces=traces)) is None
    assert min(pieces.values()) > 0, pieces


def test_chunked_cases_walk_the_elements_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most random cases above take the element-by-element epoch pass, in more than one chunk per fold."""
    walked = 0
    original = memory._epochs_from_elements

    def spy(stream: memory._Stream, epoch_words: Sequence[int], record: bool) -> list[memory._Epochs]:
        nonlocal walked
        walked += not record and any(stream.chunk_count(f) > 1 for f in range(stream.num_folds))
        return original(stream, epoch_words, record)

    monkeypatch.setattr(memory, "_epochs_from_elements", spy)
    monkeypatch.setattr(memory, "_CHUNK_ENTRIES", 5)
    monkeypatch.setattr(memory, "_BATCH_WORDS", 0)
    for seed in range(24):
        hardware, layer = _walked_case(random.Random(7000 + seed))
        try:
            simulate([layer], hardware)
        except SimulationError:
            continue
    assert walked >= 12


@pytest.mark.parametrize("seed", range(40))
def test_fold_chunks_are_the_fold_in_stream_order(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the literal demand matrix: each fold's chunks, in order, are its requests row by row, port by port."""
    rng = random.Random(9000 + seed)
    hardware = Hardware(rng.choice([1, 2, 3, 5]), rng.choice([1, 2, 4, 6]), rng.choice(["os", "ws", "is"]), 1, 1, 1)
    fh, fw = rng.randint(1, 4), rng.randint(1, 4)
    layer = Layer("conv", rng.randint(fh, 9), rng.randint(fw, 9), fh, fw, rng.randint(1, 4), rng.randint(1, 9),
                  rng.randint(1, 3), rng.randint(1, 3))
    mapped = map_layer(layer, hardware)
    network = schedule(mapped, hardware)
    monkeypatch.setattr(memory, "_CHUNK_ENTRIES", rng.choice([1, 2, 3, 7]))
    for name in OPERAND_NAMES:
        demand = layer_demand(mapped, network, name)
        stream = memory._Stream(mapped, network, name)
        for fold in range(stream.num_folds):
            rows = demand[fold * network.fold_cycles : (fold + 1) * network.fold_cycles]
            want_rows, want_lanes = np.nonzero(rows != -1)
            parts = [stream.fold_chunk(fold, p) for p in range(stream.chunk_count(fold))]
            assert np.array_equal(np.concatenate([a for a, _ in parts]), rows[want_rows, want_lanes])
            assert np.array_equal(np.concatenate([r for _, r in parts]), want_rows)


@pytest.mark.parametrize("seed", range(20))
def test_row_cumulative_matches_the_demand(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cum[r]`` and ``cum.search(i)`` against the cumulative request count of the literal demand matrix."""
    rng = random.Random(9500 + seed)
    hardware = Hardware(rng.choice([2, 3, 4]), rng.choice([2, 3, 5]), rng.choice(["os", "ws", "is"]), 1, 1, 1)
    fh, fw = rng.randint(1, 3), rng.randint(1, 3)
    layer = Layer("conv", rng.randint(fh, 8), rng.randint(fw, 8), fh, fw, rng.randint(1, 3), rng.randint(1, 7),
                  rng.randint(1, 3), rng.randint(1, 3))
    mapped = map_layer(layer, hardware)
    network = schedule(mapped, hardware)
    monkeypatch.setattr(memory, "_CHUNK_ENTRIES", rng.choice([2, 1 << 21]))
    for name in OPERAND_NAMES:
        want = np.cumsum((layer_demand(mapped, network, name) != -1).sum(axis=1))
        cum = memory._RowCumulative(memory._Stream(mapped, network, name))
        assert cum.size == want.size
        assert [cum[r] for r in range(want.size)] == want.tolist()
        assert cum[-1] == int(want[-1])
        for requests in range(int(want[-1]) + 2):
            assert cum.search(requests) == int(np.searchsorted(want, requests, side="right"))


# ------------------------------------------------------------------------------------------ work limit

BIG = Layer("Big", 100_000, 100_000, 3, 3, 1024, 64, 1, 1)
SCALE = Hardware(32, 32, "os", 64, 64, 64)


def test_the_issue_layer_is_refused_fast_without_allocating(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMCODER_MAX_REQUESTS", raising=False)
    cfg = tmp_path / "scale.cfg"
    cfg.write_text("[general]\nrun_name = big\n[architecture_presets]\nArrayHeight: 32\nArrayWidth: 32\n"
                   "IfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: 64\nIfmapOffset: 0\n"
                   "FilterOffset: 10000000\nOfmapOffset: 20000000\nBandwidth: 10\nDataflow: os\n"
                   "[run_presets]\nInterfaceBandwidth: CALC\n")
    topology = tmp_path / "big.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                        "Num Filter, Strides,\nSmall, 8, 8, 3, 3, 2, 4, 1,\nBig, 100000, 100000, 3, 3, 1024, 64, 1,\n")
    tracemalloc.start()
    start = time.perf_counter()
    code = cli.main(["-c", str(cfg), "-t", str(topology), "-p", str(tmp_path / "out"), "-q"])
    seconds = time.perf_counter() - start
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == 1
    assert seconds < 0.5
    assert peak_bytes < 20 * 2**20
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: layer 1 ('Big'): about ")
    assert "requests" in lines[0] and "the limit of 2.0e9" in lines[0]
    assert "--max-requests N" in lines[0] and "SIMCODER_MAX_REQUESTS=N" in lines[0]
    assert not (tmp_path / "out" / "big" / "COMPUTE_REPORT.csv").exists(), "the small layer ran before the check"


def test_every_layer_is_checked_before_the_first_runs() -> None:
    ran: list[str] = []
    with pytest.raises(WorkLimitError, match=r"^layer 1 \('Big'\)"):
        simulate([GEMM, BIG], SCALE, on_layer=lambda result: ran.append(result.name))
    assert ran == []


def test_the_issue_layer_is_refused_in_every_mode() -> None:
    user = Hardware(32, 32, "is", 64, 64, 64, bandwidth_mode="USER")
    for hardware in (SCALE, Hardware(12, 14, "ws", 36, 36, 36), user):
        with pytest.raises(WorkLimitError) as refused:
            simulate_layer(BIG, hardware)
        assert refused.value.estimate > 100 * refused.value.limit


# An output-stationary GEMM on a 4x4 array: M=8, N=8, K=5 is 2 x 2 folds; each window is a whole ifmap row,
# so no ifmap address repeats and the fast module walks no request: 4 folds x 1,000 = 4,000 requests.
# The literal module has no estimate of its own: every request counts, 8*5*2 + 5*8*2 + 8*8 = 224, plus the folds.
GEMM = Layer("gemm", 8, 5, 1, 5, 1, 8, 1, 1)
SMALL = Hardware(4, 4, "os", 1, 1, 1)


CONV2 = Layer("conv", 6, 6, 3, 3, 2, 3, 1, 1)
CONV3 = Layer("conv", 6, 6, 3, 3, 3, 3, 1, 1)


def _tiny(dataflow: Dataflow, bandwidth: BandwidthMode = "CALC") -> Hardware:
    """A 4x4 array whose 1 KiB SRAMs hold 128 eight-byte words: a CALC epoch is 50 distinct addresses."""
    return Hardware(4, 4, dataflow, 1, 1, 1, word_bytes=8, bandwidth_mode=bandwidth)


# 6x6 ifmap, 3x3 filter, stride 1: M = 16 pixels, N = 3 filters, K = 9 x channels; the windows overlap and
# the ifmap has 36 x channels >= 50 distinct addresses, so no shortcut applies.
#   WS, 2 channels: Sr = K = 18 -> 5 row folds, 1 column fold; ifmap walked request by request: 16 x 18 = 288.
#   OS, 2 channels: Sr = M = 16 -> 4 folds; under three channels the ifmap is walked: 18 x 16 = 288.
#   OS, 3 channels: one per channel run, 27 x 16 / 3 = 144, and one per ifmap pixel, 36.
#   USER, WS: every read request: ifmap 288 and filter K x N = 54.
#   traces, OS, 3 channels: ifmap 27 x 16 = 432, filter 27 x 3 x 4 folds = 324, ofmap 16 x 3 = 48.
@pytest.mark.parametrize(("layer", "hardware", "traces", "expected"), [
    (CONV2, _tiny("ws"), False, 5000 + 288),
    (CONV2, _tiny("os"), False, 4000 + 288),
    (CONV3, _tiny("os"), False, 4000 + 144 + 36),
    (CONV2, _tiny("ws", "USER"), False, 5000 + 288 + 54),
    (CONV3, _tiny("os"), True, 4000 + 432 + 324 + 48),
    (GEMM, SMALL, False, 4000),
])
def test_estimates_worked_out_by_hand(layer: Layer, hardware: Hardware, traces: bool, expected: int) -> None:
    assert memory.estimate_requests(layer, hardware, traces=traces) == expected


def test_a_layer_just_under_the_limit_runs_and_just_over_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMCODER_MAX_REQUESTS", raising=False)
    check_work(GEMM, SMALL, limit=4000)
    with pytest.raises(WorkLimitError, match=r"^layer 3 \('gemm'\): about 4\.0e3 requests, 1\.0x the limit of 4\.0e3; "
                                             r"raise it with --max-requests N or SIMCODER_MAX_REQUESTS=N$"):
        check_work(GEMM, SMALL, index=3, limit=3999)
    check_work(GEMM, SMALL, LITERAL, limit=4224)
    with pytest.raises(WorkLimitError):
        check_work(GEMM, SMALL, LITERAL, limit=4223)
    assert simulate([GEMM], SMALL, limit=4000)[0].total_cycles > 0
    with pytest.raises(WorkLimitError):
        simulate([GEMM], SMALL, limit=3999)
    monkeypatch.setenv("SIMCODER_MAX_REQUESTS", "4e3")
    simulate_layer(GEMM, SMALL)
    monkeypatch.setenv("SIMCODER_MAX_REQUESTS", "3_999")
    with pytest.raises(WorkLimitError):
        simulate_layer(GEMM, SMALL)
    assert simulate_layer(GEMM, SMALL, limit=4000).total_cycles > 0


def test_max_requests_flag_and_env(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "small.cfg"
    cfg.write_text("[general]\nrun_name = small\n[architecture_presets]\nArrayHeight: 4\nArrayWidth: 4\n"
                   "IfmapSramSzkB: 1\nFilterSramSzkB: 1\nOfmapSramSzkB: 1\nIfmapOffset: 0\n"
                   "FilterOffset: 10000000\nOfmapOffset: 20000000\nDataflow: os\n"
                   "[run_presets]\nInterfaceBandwidth: CALC\n")
    topology = tmp_path / "mnk.csv"
    topology.write_text("Layer, M, N, K,\ngemm, 8, 8, 5,\n")
    run = ["-c", str(cfg), "-t", str(topology), "-i", "gemm", "-p", str(tmp_path / "out"), "-q"]
    monkeypatch.delenv("SIMCODER_MAX_REQUESTS", raising=False)
    assert cli.main([*run, "--max-requests", "4000"]) == 0
    assert cli.main([*run, "--max-requests", "3999"]) == 1
    assert "about 4.0e3 requests" in capsys.readouterr().err
    monkeypatch.setenv("SIMCODER_MAX_REQUESTS", "3999")
    assert cli.main(run) == 1
    assert cli.main([*run, "--max-requests", "1e4"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("SIMCODER_MAX_REQUESTS", "lots")
    assert cli.main(run) == 2
    assert capsys.readouterr().err.strip() == (
        "error: SIMCODER_MAX_REQUESTS: must be a positive whole number of requests such as 2e9, got 'lots'")
    for bad in ("0", "-5", "1.5", "x", "inf", "nan", ""):
        with pytest.raises(SystemExit) as usage:
            cli.main([*run, "--max-requests", bad])
        assert usage.value.code == 2


@pytest.mark.parametrize("traces", [False, True], ids=["traces-off", "traces-on"])
@pytest.mark.parametrize("seed", range(16))
def test_repeated_passes_match_literal(seed: int, traces: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Folds that read one sequence of operand blocks three or more times (``memory._pass_period``; the
    ifmap of a weight-stationary layer with three or more filter folds): the passes after the second are
    the second one shifted, and the epochs still match the literal memory."""
    rng = random.Random(8100 + seed)
    hardware, layer = _walked_case(rng)
    folds = rng.randint(3, 5)
    hardware = replace(hardware, dataflow="ws")
    layer = replace(layer, num_filters=hardware.array_cols * folds + rng.randint(0, hardware.array_cols - 1))
    periods: list[int | None] = []
    original = memory._pass_period

    def spy(stream: memory._Stream) -> int | None:
        periods.append(original(stream))
        return periods[-1]

    monkeypatch.setattr(memory, "_pass_period", spy)
    monkeypatch.setattr(memory, "_FIRST_WINDOW", rng.choice([1, 3, 64]))
    case = f"seed {seed}: {hardware!r} {layer!r}"
    literal = simulate([layer], hardware, LITERAL, traces=traces)
    fast = simulate([layer], hardware, traces=traces)
    assert first_result_difference(case, literal, fast) is None
    assert any(p is not None for p in periods), f"{case}: no pass was repeated ({periods})"


class _Blocks:
    def __init__(self, ids: list[int], sizes: list[int]):
        self._ids, self._sizes = np.array(ids), np.array(sizes)

    def block_ids(self) -> np.ndarray:
        return self._ids

    def fold_sizes(self) -> np.ndarray:
        return self._sizes


@pytest.mark.parametrize(("ids", "period"), [
    ([0, 1, 2, 0, 1, 2, 0, 1, 2], 3),
    ([4, 4, 4], 1),
    ([0, 1, 0, 1], None),
    ([0, 1, 2, 0, 1, 2, 0, 1], None),
    ([0, 1, 2, 0, 1, 3, 0, 1, 2], None),
    ([0, 0, 1, 0, 0, 1, 0, 0, 1], None),
    ([5, 6, 7, 8], None),
])
def test_pass_period(ids: list[int], period: int | None) -> None:
    assert memory._pass_period(_Blocks(ids, [10] * len(ids))) == period  # type: ignore[arg-type]


def test_pass_period_needs_a_pass_that_fits_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_CACHED_BLOCK_WORDS", 30)
    assert memory._pass_period(_Blocks([0, 1, 2] * 3, [10] * 9)) == 3  # type: ignore[arg-type]
    assert memory._pass_period(_Blocks([0, 1, 2] * 3, [11] * 9)) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("traces", [False, True], ids=["traces-off", "traces-on"])
@pytest.mark.parametrize("seed", range(16))
def test_batched_folds_match_literal(seed: int, traces: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Folds that each read their own block (an output-stationary ifmap with one filter fold, an
    input-stationary ifmap) are walked many at a time (``_Stream.fold_batches``), in batches cut anywhere
    from one fold to all of them; the epochs still match the literal memory."""
    rng = random.Random(8300 + seed)
    hardware, layer = _walked_case(rng)
    hardware = replace(hardware, dataflow=rng.choice(["os", "is"]))
    if hardware.dataflow == "os":
        layer = replace(layer, channels=2, num_filters=rng.randint(1, hardware.array_cols))
    monkeypatch.setattr(memory, "_BATCH_WORDS", rng.choice([300, 1000, 1 << 18]))
    monkeypatch.setattr(memory, "_FIRST_WINDOW", rng.choice([1, 3, 64]))
    batches = 0
    original = memory._Stream.fold_batches

    def spy(stream: memory._Stream) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        nonlocal batches
        for batch in original(stream):
            batches += 1
            yield batch

    monkeypatch.setattr(memory._Stream, "fold_batches", spy)
    case = f"seed {seed}: {hardware!r} {layer!r}"
    literal = simulate([layer], hardware, LITERAL, traces=traces)
    fast = simulate([layer], hardware, traces=traces)
    assert first_result_difference(case, literal, fast) is None
    assert batches > 0, f"{case}: no fold went through a batch"
