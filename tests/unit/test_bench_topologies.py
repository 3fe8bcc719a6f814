"""The topology benchmark: discovery, USER configs, run classification, timeouts, and a ``--quick`` run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_topologies as bench
from reference_sim.scalesim_io import read_config
from taskbench.processes import ProcessRun


def test_gemm_topologies_are_told_by_their_header(tmp_path: Path) -> None:
    gemm = tmp_path / "mnk.csv"
    gemm.write_text("\ufeffLayer,M,N,K,\nfc,4,5,6,\n", encoding="utf-8")
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("Layer Name, M, N, K, \nfc, 4, 5, 6,\n")
    conv = tmp_path / "conv.csv"
    conv.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,\nc1, 8, 8, 3, 3, 1, 1, 1,\n")
    assert [bench.topology_kind(p) for p in (gemm, spaced, conv)] == ["gemm", "gemm", "conv"]


def test_every_shared_gemm_topology_is_found(scalesim_data: Path) -> None:
    root = scalesim_data / "topologies"
    paths = bench.topologies(root)
    assert len(paths) == 117
    gemm = {p.relative_to(root).as_posix() for p in paths if bench.topology_kind(p) == "gemm"}
    assert {p.relative_to(root).as_posix() for p in (root / "GEMM_mnk").glob("*.csv")} == gemm
    assert [p.name for p in bench.topologies(root, "conv_nets/yolo")] == ["yolo.csv", "yolo_tiny.csv",
                                                                           "yolo_tiny_layer1.csv"]


def test_user_config_matches_scalesims_user_config(scalesim_data: Path, tmp_path: Path) -> None:
    """scale.cfg switched to USER is SCALE-Sim's own os_user10.cfg; eyeriss.cfg keeps its other settings."""
    theirs = read_config(scalesim_data / "user_bw10" / "os_user10.cfg")
    for name in bench.CONFIGS:
        original = read_config(scalesim_data / "configs" / name)
        user = read_config(bench.config_for(scalesim_data / "configs" / name, "USER", tmp_path))
        assert user.hardware.bandwidth_mode == "USER" and user.hardware.dram_words_per_cycle == 10
        assert user.hardware.array_rows == original.hardware.array_rows
        assert user.hardware.dataflow == original.hardware.dataflow
        if name == "scale.cfg":
            assert user.hardware == theirs.hardware
    assert bench.config_for(scalesim_data / "configs" / "scale.cfg", "CALC", tmp_path) == (
        scalesim_data / "configs" / "scale.cfg")
    assert "Bandwidth: 10" in bench.user_config_text("[architecture_presets]\nArrayHeight: 4\n"
                                                     "[run_presets]\nInterfaceBandwidth: CALC\n")


def finished(code: int | None, stderr: str = "", rss_mib: float = 50.0) -> ProcessRun:
    """A run that exited with ``code``, or was killed at its timeout when ``code`` is None."""
    return ProcessRun(1.0, int(rss_mib * 1024), -9 if code is None else code, stderr, code is None)


def test_classify() -> None:
    assert bench.classify(finished(0)) == ("ok", "")
    assert bench.classify(finished(0, rss_mib=1024.0)) == ("over 1 GiB", "")
    assert bench.classify(finished(None)) == ("timeout", "")
    limit = "error: layer 3 ('Big'): about 3.1e12 requests, 1,550x the limit of 2.0e9; raise it with --max-requests N"
    assert bench.classify(finished(1, limit + "\n")) == ("limit", limit)
    assert bench.classify(finished(1, "warning: blank line skipped\n" + limit + "\n")) == ("limit", limit)
    assert bench.classify(finished(2, "error: x.csv:3: missing value\n")) == ("error", "error: x.csv:3: missing value")
    crash = "Traceback (most recent call last):\n  File ...\nnumpy._core._exceptions._ArrayMemoryError: 74.5 GiB\n"
    assert bench.classify(finished(1, crash)) == ("traceback", "numpy._core._exceptions._ArrayMemoryError: 74.5 GiB")
    assert bench.classify(finished(-9)) == ("error", "exit code -9")


def test_a_layer_beyond_the_limit_is_a_limit_run(scalesim_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "topologies"
    root.mkdir()
    big = root / "big.csv"
    big.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                   "Strides,\nBig, 100000, 100000, 3, 3, 1024, 64, 1,\n")
    work = tmp_path / "work"
    work.mkdir()
    run = bench.run_one(big, root, scalesim_data / "configs" / "eyeriss.cfg", "USER", work, 60)
    assert (run.topology, run.config, run.mode, run.layers, run.returncode) == ("big.csv", "eyeriss.cfg", "USER", 1, 1)
    assert run.status == "limit" and run.message.startswith("error: layer 0 ('Big'): about ")
    assert run.acceptable and run.ended_cleanly
    assert "big.csv" in bench.runs_table([run]) and "limit: error: layer 0" in bench.runs_table([run])


def test_missing_shared_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--shared", str(tmp_path)]) == 2
    assert "SCALE-Sim topologies not found" in capsys.readouterr().err


@pytest.mark.integration
def test_quick_benchmark_runs(scalesim_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--timeout", "120", "--shared", str(scalesim_data.parent), "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == len(bench.QUICK_TOPOLOGIES) * len(bench.CONFIGS) * len(bench.MODES)
    assert {(r["config"], r["mode"]) for r in runs} == {(c, m) for c in bench.CONFIGS for m in bench.MODES}
    assert all(r["returncode"] == 0 and r["status"] == "ok" for r in runs)
    assert all(r["layers"] >= 1 and r["max_rss_mib"] > 0 for r in runs)
