"""The sweep benchmark: its quick correctness run and the row comparison it relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench_sweep as bench
from reference_sim import Hardware, Layer
from reference_sim.sweep import sweep

LAYERS = [Layer("conv", 9, 9, 3, 3, 4, 6, 1, 1), Layer("gemm", 12, 7, 1, 7, 1, 5, 1, 1)]
CONFIGS = [Hardware(4, 4, "ws", 1, 1, 1, bandwidth_mode="USER", dram_words_per_cycle=2), Hardware(8, 4, "is", 2, 2, 2)]


def test_first_difference() -> None:
    cycles = sweep(LAYERS, CONFIGS, figures="cycles", jobs=1)
    full = sweep(LAYERS, CONFIGS, jobs=1)
    assert bench.first_difference(cycles, full) is None
    changed = list(cycles)
    changed[1] = changed[1]._replace(stall_cycles=changed[1].stall_cycles + 1)
    assert (bench.first_difference(changed, full) or "").startswith("engine (4, 4, 'ws'")
    assert bench.first_difference(cycles[:-1], full) == "4 rows from the engine, 3 from the cycles sweep"


def test_missing_shared_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--shared", str(tmp_path)]) == 2
    assert "SCALE-Sim reference data not found" in capsys.readouterr().err


def test_quick_benchmark_checks_the_closed_form(scalesim_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--shared", str(scalesim_data.parent), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "cycles sweep equals the engine" in out
    assert "closed form for 0 of" not in out
