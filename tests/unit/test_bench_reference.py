"""The reference benchmark's helpers on tiny inputs: report comparison, cycle checks, tables, targets."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import bench_reference as bench
from reference_sim import compare
from taskbench import scalesim
from taskbench.processes import ProcessRun

COMPUTE = """LayerID, Total Cycles, Stall Cycles, Overall Util %, Mapping Efficiency %, Compute Util %,
0, 138061, 0, 0.7809048174357711, 0.78125, 0.7808991612463966,
1, 125, 7, 1.6, 3.125, 1.5873015873015872,
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_cells_equal() -> None:
    assert compare.cells_equal("138061", "138061")
    assert not compare.cells_equal("138061", "138062")
    assert compare.cells_equal("-171.0", "-171")
    assert compare.cells_equal("0.7809048174357711", "0.7809048174357719")
    assert not compare.cells_equal("0.78090481", "0.78090482")
    assert not compare.cells_equal("1.0", "x")


def test_compare_report_names_the_first_difference(tmp_path: Path) -> None:
    expected = write(tmp_path / "e", "COMPUTE_REPORT.csv", COMPUTE)
    assert compare.compare_report(expected, write(tmp_path / "same", "COMPUTE_REPORT.csv", COMPUTE)) is None
    changed = write(tmp_path / "g", "COMPUTE_REPORT.csv", COMPUTE.replace("125, 7,", "125, 8,"))
    assert compare.compare_report(expected, changed) == (
        "COMPUTE_REPORT.csv row 1 column 'Stall Cycles': expected 7, got 8")
    short = write(tmp_path / "s", "COMPUTE_REPORT.csv", "\n".join(COMPUTE.splitlines()[:2]) + "\n")
    assert compare.compare_report(expected, short) == "COMPUTE_REPORT.csv: 2 layers expected, got 1"


def test_compare_reports_needs_all_three(tmp_path: Path) -> None:
    for name in compare.REPORT_FILES:
        write(tmp_path / "e", name, COMPUTE)
        write(tmp_path / "g", name, COMPUTE)
    assert compare.compare_reports(tmp_path / "e", tmp_path / "g") is None
    (tmp_path / "g" / "BANDWIDTH_REPORT.csv").unlink()
    assert compare.compare_reports(tmp_path / "e", tmp_path / "g") == "BANDWIDTH_REPORT.csv: not written"


def test_compare_reports_on_a_golden_case(scalesim_data: Path, tmp_path: Path) -> None:
    golden = scalesim_data / "golden" / "case105_009"
    assert compare.compare_reports(golden, golden) is None
    copy = tmp_path / "copy"
    shutil.copytree(golden, copy, ignore=shutil.ignore_patterns("layer0"))
    report = copy / "DETAILED_ACCESS_REPORT.csv"
    report.write_text(report.read_text().replace(", 1317888,", ", 1317889,"))
    assert compare.compare_reports(golden, copy) == (
        "DETAILED_ACCESS_REPORT.csv row 0 column 'SRAM IFMAP Reads': expected 1317888, got 1317889")


def test_read_cycles_and_cycles_difference(tmp_path: Path) -> None:
    got = scalesim.read_cycles(write(tmp_path, "COMPUTE_REPORT.csv", COMPUTE))
    assert got == [(138061, 0), (125, 7)]
    assert scalesim.cycles_difference(got, [138061, 125], [0, 7]) is None
    assert scalesim.cycles_difference(got, [138061, 125], [0, 0]) == (
        "layer 1: expected 125 cycles / 0 stalls, got 125 / 7")
    assert scalesim.cycles_difference(got, [1], [0]) == "1 layers expected, got 2"


def test_format_table() -> None:
    text = bench.format_table(("network", "ratio", "ok"), [["NCF", "157x", True], ["Transformer", "2,960x", False]])
    lines = text.splitlines()
    assert lines[0] == "network       ratio   ok"
    assert lines[1] == "-----------  ------  ---"
    assert lines[2] == "NCF            157x  yes"
    assert lines[3] == "Transformer  2,960x   NO"
    assert bench.ratio_text(3.25) == "3.2x"
    assert bench.seconds_text(1747.7) == "1,747.7"


def network(name: str, seconds: float, scalesim: float, rss: float = 50.0, equal: bool = True) -> bench.NetworkRun:
    return bench.NetworkRun(name, 8, seconds, scalesim, rss, equal)


def test_network_table_has_a_total_line() -> None:
    text = bench.network_table([network("NCF", 0.25, 42.7), network("AlphaGoZero", 0.5, 50.4, equal=False)])
    total = text.splitlines()[-1].split()
    assert total == ["total", "16", "0.750", "93.1", "124x", "50", "NO"]


def test_targets() -> None:
    stalls = [bench.StallRun("slow", "conv", 10, 1.0, 173.0, 40.0, True),
              bench.StallRun("fast", "gemm", 10, 1.0, 9.0, 30.0, False)]
    targets = {t.name: t for t in bench.evaluate_targets(
        [network("NCF", 0.02, 42.7), network("Big", 1.0, 99.0, rss=2048.0)], stalls, 3780.6)}
    assert targets["Table 2 total speed-up"].met
    assert targets["Table 2 total speed-up"].measured.startswith("3,706x")
    assert not targets["every network's speed-up"].met
    assert "(Big)" in targets["every network's speed-up"].measured
    assert not targets["peak RSS per process"].met
    assert targets["Table 2 cycles equal"].met
    assert targets["slowest stall case speed-up"].met
    assert not targets["stall case reports equal"].met
    text = bench.format_targets(list(targets.values()))
    assert "every network's speed-up" in text and "NO" in text


def test_machine_and_cache_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    info = bench.machine()
    assert {"cpu", "cores", "python", "numpy"} <= set(info)
    monkeypatch.setenv("SIMCODER_CACHE", str(tmp_path))
    assert scalesim.scalesim_venv() == tmp_path / "scalesim-2.0.2-venv"
    monkeypatch.setenv("SIMCODER_SHARED", str(tmp_path / "shared"))
    assert bench.default_shared() == tmp_path / "shared"


def test_missing_shared_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--shared", str(tmp_path)]) == 2
    assert "SCALE-Sim reference data not found" in capsys.readouterr().err


@pytest.mark.integration
def test_quick_benchmark_runs(scalesim_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--shared", str(scalesim_data.parent), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert [n["name"] for n in figures["networks"]] == list(bench.QUICK_NETWORKS)
    assert all(n["cycles_equal"] for n in figures["networks"])
    assert len(figures["stall_cases"]) == bench.QUICK_STALL_CASES
    assert all(s["reports_equal"] for s in figures["stall_cases"])
    assert figures["traces"]["rows"] > 0
    assert figures["sweep"]["rows"] == figures["sweep"]["configurations"] * figures["sweep"]["layers"]
    variants = {(v["network"], v["dataflow"], v["bandwidth"]): v for v in figures["variants"]}
    assert set(variants) == {(n, d, scalesim.bandwidth_label(w)) for n, d, w in bench.QUICK_VARIANTS}
    assert variants[("NCF", "os", "USER:10")]["reports_equal"] is True
    assert variants[("AlphaGoZero", "os", "USER:10")]["ratio"] > 0
    assert variants[("NCF", "ws", "CALC")]["reports_equal"] is None


def test_variant_config_changes_only_dataflow_and_bandwidth(scalesim_data: Path, tmp_path: Path) -> None:
    user = bench.read_config(scalesim.variant_config(scalesim_data, tmp_path, "os", 10))
    recorded = bench.read_config(scalesim_data / "user_bw10" / "os_user10.cfg")
    assert user.hardware == recorded.hardware and user.run_name == recorded.run_name
    seven = bench.read_config(scalesim.variant_config(scalesim_data, tmp_path, "ws", 7)).hardware
    assert (seven.dataflow, seven.bandwidth_mode, seven.dram_words_per_cycle) == ("ws", "USER", 7)
    calc = bench.read_config(scalesim.variant_config(scalesim_data, tmp_path, "is", None)).hardware
    assert calc == replace(bench.read_config(scalesim_data / "configs" / "scale.cfg").hardware, dataflow="is")
    assert scalesim.recorded_scalesim(scalesim_data, "NCF", "os", 10) == (scalesim_data / "user_bw10" / "NCF", 103.7)
    assert scalesim.recorded_scalesim(scalesim_data, "NCF", "ws", 10) is None
    assert scalesim.recorded_scalesim(scalesim_data, "ResNet50", "os", 10) is None


def variant(network: str, dataflow: str, bandwidth: str, seconds: float, scalesim: float | None,
            rss: float = 50.0, equal: bool | None = None, finished: bool = True) -> bench.VariantRun:
    return bench.VariantRun(network, dataflow, bandwidth, 8, seconds, rss, scalesim, finished, equal)


def test_variant_targets_and_table() -> None:
    runs = [variant("NCF", "os", "USER:10", 1.0, 103.7, equal=True), variant("NCF", "ws", "USER:10", 2.0, None),
            variant("AlphaGoZero", "os", "USER:10", 1.0, 157.0, rss=1500.0, equal=False),
            variant("NCF", "is", "CALC", 0.1, 600.0, finished=False)]
    targets = {t.name: t for t in bench.variant_targets(runs)}
    speed = targets["USER speed-up, 2 of 3 timed"]
    assert speed.met and speed.measured == "lowest 104x (NCF os)"
    assert not targets["USER peak RSS per process"].met
    assert targets["CALC speed-up, 1 of 1 timed"].met
    assert targets["reports equal SCALE-Sim's"].measured == "1/2 runs"
    lines = bench.variant_table(runs).splitlines()
    assert lines[3].split()[-3:] == ["-", "-", "-"]
    assert "> 600" in lines[5] and "> 6,000x" in lines[5]


def test_side_by_side_flags(scalesim_data: Path) -> None:
    parser = argparse.Namespace(scalesim="NCF,AlphaGoZero", dataflow="os,ws", bandwidth="CALC,USER:10",
                                scalesim_timeout=60.0)
    runs = bench.side_by_side_runs(parser, scalesim_data)
    assert runs == [("NCF", "os", None), ("NCF", "ws", None), ("AlphaGoZero", "os", None),
                    ("AlphaGoZero", "ws", None), ("NCF", "os", 10), ("NCF", "ws", 10), ("AlphaGoZero", "os", 10),
                    ("AlphaGoZero", "ws", 10)]
    for field, value, message in (("scalesim", "NCF,VGG", "--scalesim: unknown network 'VGG'"),
                                  ("dataflow", "os,rs", "--dataflow: 'os,rs'"),
                                  ("bandwidth", "USER", "--bandwidth: 'USER': CALC or USER:WORDS"),
                                  ("scalesim_timeout", 0.0, "--scalesim-timeout must be positive"),
                                  ("scalesim_stop_ratio", 1.0, "--scalesim-stop-ratio must be over 1")):
        bad = argparse.Namespace(**{**vars(parser), field: value})
        problem = bench.side_by_side_runs(bad, scalesim_data)
        assert isinstance(problem, str) and problem.startswith(message), problem


def test_side_by_side_times_ours_as_the_median_and_stops_scalesim_from_it(
        scalesim_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = iter([0.5, 0.3, 0.1])
    timeouts: list[float | None] = []

    def fake_run(command: list[str], cwd: Path | None = None, timeout: float | None = None,
                 env: dict[str, str] | None = None, stdout: Path | None = None) -> ProcessRun:
        if "reference_sim" in command:
            return ProcessRun(next(ours), 1024, 0, "")
        timeouts.append(timeout)
        return ProcessRun(2.0, 2048, 1, "scalesim: no such file")

    monkeypatch.setattr(scalesim, "ensure_scalesim", lambda venv: Path("/fake/python"))
    monkeypatch.setattr(scalesim, "run_process", fake_run)
    result = scalesim.side_by_side("NCF", "ws", None, scalesim_data, tmp_path, stop_ratio=310, repeat=3)
    assert (result["ours_seconds"], result["ours_runs"]) == (0.3, 3)
    assert timeouts == [pytest.approx(310 * 0.3)]
    assert result["problems"] == ["SCALE-Sim: exit code 1: scalesim: no such file"]


def test_the_first_timed_network_follows_an_untimed_run(scalesim_data: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def fake_run(command: list[str], cwd: Path | None = None, timeout: float | None = None,
                 env: dict[str, str] | None = None, stdout: Path | None = None) -> ProcessRun:
        ran.append(command)
        return ProcessRun(0.1, 1024, 0, "")

    class FirstTimedError(Exception):
        pass

    def first_network(name: str, *args: object) -> object:
        raise FirstTimedError(name)

    monkeypatch.setattr(bench, "run_process", fake_run)
    monkeypatch.setattr(bench, "run_network", first_network)
    with pytest.raises(FirstTimedError, match="NCF"):
        bench.run_benchmark(scalesim_data, False, 1, tmp_path, 3)
    assert len(ran) == 1
    assert ran[0][1:3] == ["-m", "reference_sim"] and ran[0][ran[0].index("-t") + 1].endswith("NCF.csv")


def test_measure_repeats_and_reports_the_first_problem(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_file = f"import pathlib; p = pathlib.Path({str(out)!r}); p.mkdir(); (p / 'r.txt').write_text('ok')"
    checks: list[bool] = []

    def check() -> str | None:
        checks.append((out / "r.txt").read_text() == "ok")
        return None if len(checks) < 2 else "second run differs"

    times, rss, difference = bench.measure([sys.executable, "-c", write_file], out, 2, check)
    assert len(times) == 2 and rss > 1
    assert checks == [True, True]
    assert difference == "second run differs"
    assert not out.exists()
    _, _, failed = bench.measure([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
                                 out, 1, check)
    assert failed == "exit code 3: boom"


BANDWIDTH = """LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, \
Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,
0, 0.99, 7.99, 0.0005, 9.997559338580755, 9.997039057523038, 8.0,
1, 1.0, 1.0, 1.0, 0.5, 0.25, 0.0004,
"""

PRINTED = """SCALE-Sim banner ...

Running Layer 0
Compute cycles: 138061
Stall cycles: 0
Overall utilization: 0.78%
Mapping efficiency: 0.78%
Average IFMAP DRAM BW: 9.998 words/cycle
Average Filter DRAM BW: 9.997 words/cycle
Average OFMAP DRAM BW: 8.000 words/cycle

Running Layer 1
Compute cycles: 125
Stall cycles: 7
"""


def test_printed_layers_are_the_finished_ones() -> None:
    layers = scalesim.printed_layers(PRINTED)
    assert len(layers) == 1
    assert layers[0]["Compute cycles"] == "138061" and layers[0]["Average OFMAP DRAM BW"] == "8.000"
    finished = PRINTED + "Overall utilization: 1.60%\nMapping efficiency: 3.12%\nAverage IFMAP DRAM BW: 0.500 " \
        "words/cycle\nAverage Filter DRAM BW: 0.250 words/cycle\nAverage OFMAP DRAM BW: 0.000 words/cycle\n"
    assert len(scalesim.printed_layers(finished)) == 2


def test_printed_difference_checks_the_finished_layers(tmp_path: Path) -> None:
    write(tmp_path, "COMPUTE_REPORT.csv", COMPUTE)
    write(tmp_path, "BANDWIDTH_REPORT.csv", BANDWIDTH)
    assert scalesim.printed_difference(PRINTED, tmp_path) == (1, None)
    assert scalesim.printed_difference("no layer finished yet\n", tmp_path) == (0, None)
    float_cycles = PRINTED.replace("Compute cycles: 138061", "Compute cycles: 138061.0")
    assert scalesim.printed_difference(float_cycles, tmp_path) == (1, None)
    for line, shown in (("Stall cycles: 0", "Stall cycles: 1"),
                        ("Mapping efficiency: 0.78%", "Mapping efficiency: 0.79%"),
                        ("Average OFMAP DRAM BW: 8.000", "Average OFMAP DRAM BW: 8.001")):
        count, difference = scalesim.printed_difference(PRINTED.replace(line, shown), tmp_path)
        name, value = shown.split(": ")
        assert count == 1 and difference is not None
        assert difference.startswith(f"layer 0: {name}: SCALE-Sim printed {value}"), difference
    three = PRINTED.split("\nRunning Layer 1")[0] * 3
    assert scalesim.printed_difference(three, tmp_path)[1] == "SCALE-Sim printed 3 layers, our reports have 2"


def test_compile_bytecode_writes_the_cache_and_names_a_broken_folder(tmp_path: Path) -> None:
    good = tmp_path / "good"
    write(good, "mod.py", "VALUE = 1\n")
    bench.compile_bytecode([good])
    assert list((good / "__pycache__").glob("mod.*.pyc"))
    bad = tmp_path / "bad"
    write(bad, "broken.py", "def (:\n")
    with pytest.raises(RuntimeError, match=f"{bad}: compileall failed"):
        bench.compile_bytecode([good, bad])
