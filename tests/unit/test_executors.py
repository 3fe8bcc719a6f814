"""Executors: the local one runs every job once; a job an executor loses is a failed sample or a failed layer,
never a missing one; ``--executor``/``--ray-address`` are checked with one-line errors (exit 2)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reference_sim import Hardware, Layer, SimulationError
from reference_sim import cli as reference_cli
from reference_sim.executors import ExecutorError, JobFailed, LocalExecutor, make_executor
from reference_sim.sweep import grid, sweep
from taskbench import cli, passk
from taskbench.suite import load_suite
from tests.fakes import ScriptedChatModel, fenced

T = TypeVar("T")
R = TypeVar("R")
SUITE = load_suite()


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize(("jobs", "kind"), [(1, "thread"), (3, "thread"), (2, "process")])
def test_the_local_executor_runs_every_job_once(jobs: int, kind: Any) -> None:
    items = list(range(40))
    got = list(LocalExecutor(jobs, kind).map_unordered(_square, items))
    assert sorted(i for i, _ in got) == items
    assert all(result == items[i] ** 2 for i, result in got)
    if jobs == 1:
        assert [i for i, _ in got] == items, "one job at a time runs in order, in this process"


def test_a_job_error_propagates_from_the_local_executor() -> None:
    def boom(x: int) -> int:
        raise ValueError(f"job {x}")

    with pytest.raises(ValueError, match="job"):
        list(LocalExecutor(2).map_unordered(boom, [1, 2, 3]))


class Losing:
    """Runs jobs here, but loses the ones whose index is in ``lost`` (as a dead Ray node does after its retries)."""

    name = "losing"

    def __init__(self, lost: set[int]) -> None:
        self.lost = lost

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R | JobFailed]]:
        for index, item in reversed(list(enumerate(items))):
            yield index, JobFailed("lost on the Ray cluster after 3 retries: NodeDiedError") if index in self.lost \
                else fn(item)


def test_a_lost_benchmark_job_is_a_failed_sample_and_the_others_are_kept(tmp_path: Path) -> None:
    t = SUITE.task("spec._fields")
    settings = passk.Settings("zero_shot", "fake", 4, False, 1)
    context = passk.Context(SUITE, settings, "zero_shot", lambda i: ScriptedChatModel(respond=lambda r: fenced(
        t.solution)), cli.hidden.Runner())
    store = passk.Store(tmp_path / "r")
    store.open(settings)
    seen: list[tuple[int, int]] = []
    samples = passk.run(context, [t], store, executor=Losing({2}), progress=lambda s, d, n: seen.append((d, n)))
    assert [s.sample for s in samples] == [0, 1, 2, 3]
    assert [(s.passed, s.failure, s.stage) for s in samples] == [
        (True, "", ""), (True, "", ""), (False, "crash", "executor"), (True, "", "")]
    assert "NodeDiedError" in samples[2].detail
    assert sorted((s.task, s.sample) for s in store.load()) == [(t.id, i) for i in range(4)]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_worker_with_another_checkout_is_refused() -> None:
    t = SUITE.task("spec._fields")
    spec = passk.WorkerSpec(passk.Settings("zero_shot", "fake", 1, False, 1),
                            cli.llm.ModelConfig("fake", "http://127.0.0.1:9/v1", "OPENAI_API_KEY", 0.0, 5.0, 0, None),
                            "process", 10.0)
    with pytest.raises(passk.BenchError, match="install the same checkout on every node"):
        passk.remote_sample(spec, passk.Job(t.id, "not-its-digest", 0))


BASE = Hardware(array_rows=8, array_cols=8, dataflow="os", ifmap_sram_kib=2, filter_sram_kib=2, ofmap_sram_kib=2)
LAYERS = [Layer("a", 12, 12, 3, 3, 6, 10, 1, 1), Layer("b", 20, 9, 1, 9, 1, 7, 1, 1)]


def test_a_lost_sweep_job_stops_the_sweep_or_is_left_out() -> None:
    configs = grid(BASE, dataflows=["os", "ws"])
    full = sweep(LAYERS, configs, jobs=1)
    assert sweep(LAYERS, configs, executor=Losing(set())) == full
    with pytest.raises(SimulationError, match="lost on the Ray cluster after 3 retries"):
        sweep(LAYERS, configs, executor=Losing({0}))
    kept = sweep(LAYERS, configs, executor=Losing({0}), skip_errors=True)
    assert len(kept) == len(full) - 1 and set(kept) < set(full)


def test_ray_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ExecutorError, match=r"--executor: the Ray executor needs Ray: pip install -e '\.\[ray\]'"):
        make_executor("ray", jobs=1)
    with pytest.raises(ExecutorError, match="--ray-address needs --executor ray"):
        make_executor("local", jobs=1, ray_address="127.0.0.1:6379")


def test_the_clis_refuse_a_bad_executor_with_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    topology = tmp_path / "net.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                        "Strides,\na, 12, 12, 3, 3, 6, 10, 1,\n")
    assert reference_cli.main(["sweep", "-t", str(topology), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--executor: the Ray executor needs Ray: pip install -e '.[ray]'"), err
    args = ["tasks", "--model", "fake", "--base-url", "http://127.0.0.1:9/v1", "--samples", "1", "--k", "1",
            "--tasks", "spec._fields", "--out", str(tmp_path / "b")]
    assert cli.main([*args, "--ray-address", "127.0.0.1:6379"]) == 2
    assert cli.main([*args, "--executor", "ray"]) == 2
    assert caplog.messages[-2:] == ["--executor: --ray-address needs --executor ray",
                        "--executor: the Ray executor needs Ray: pip install -e '.[ray]'"]
    assert not (tmp_path / "b").exists(), "nothing is started before the executor is known to work"
