"""The command line, run as a user would: reports, traces (CSV and binary), progress and summary."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reference_sim import cli
from reference_sim.reports import REPORT_FILES, TRACE_FILES, read_binary_traces
from tests.helpers import first_trace_difference, load_csv_traces, read_report

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "reference_sim", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300, check=False)


def _traced_case(root: Path) -> Path:
    return next(p for p in sorted((root / "golden").glob("case*")) if (p / "layer0").is_dir()
                and json.loads((p / "case.json").read_text())["bw_mode"] == "USER")


def test_cli_writes_scalesim_reports_and_traces(scalesim_data: Path, tmp_path: Path) -> None:
    case = _traced_case(scalesim_data)
    kind = json.loads((case / "case.json").read_text())["layer"]["kind"]
    done = _cli("-c", str(case / "scale.cfg"), "-t", str(case / "topology.csv"), "-i", kind, "-p", "out",
                "--traces", "both", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out" / "golden"
    for report in REPORT_FILES:
        assert read_report(out / report) == read_report(case / report), report
        assert (out / report).read_text().splitlines()[0] == (case / report).read_text().splitlines()[0]
    expected = load_csv_traces(case / "layer0")
    assert first_trace_difference(case.name, expected, load_csv_traces(out / "layer0")) is None
    assert first_trace_difference(case.name, expected, read_binary_traces(out / "layer0" / "traces.npz")) is None
    assert set(TRACE_FILES.values()) <= {p.name for p in (out / "layer0").iterdir()}
    assert "total" in done.stdout and "cycles" in done.stdout, "summary table expected"
    assert "\r" not in done.stderr, "no progress bar when stderr is not a terminal"


def test_cli_runs_the_repo_spec(tmp_path: Path) -> None:
    done = _cli("--arch", str(REPO / "scale_sim.yaml"), "--workload", "edge_cases", "-p", "out", "--traces", "npz",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out" / "scale_example_run_32x32_os" / "edge_cases"
    compute = read_report(out / "COMPUTE_REPORT.csv")[1]
    assert len(compute) == 9
    traces = read_binary_traces(out / "layer0" / "traces.npz")
    assert traces.ifmap_sram.shape[0] == int(compute[0][0]) + 1
    assert np.all(np.diff(traces.ofmap_sram[:, 0]) >= 1)


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    done = _cli(cwd=tmp_path)
    assert done.returncode == 2 and "give -c CFG" in done.stderr


def test_progress_bar_draws_only_on_a_terminal() -> None:
    import io

    from reference_sim.progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = ProgressBar("net", stream, unit="layers")
        bar(1, 2, "conv1")
        bar(2, 2, "conv2")
    assert pipe.getvalue() == ""
    assert terminal.getvalue().count("\r") == 2 and "2/2 layers" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")


FAULTS_AFTER_FREEING = """
import resource, sys
import numpy as np
import pytest
from reference_sim import cli
if sys.argv[1] == "tuned" and not cli.keep_freed_memory():
    print("no mallopt"); raise SystemExit(0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for kib in range(256, 2048, 64):
    block = np.ones(kib << 7)
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_freed_blocks_are_reused_without_faulting_them_in_again() -> None:
    """Arrays of 256 KiB to 2 MiB, each freed before the next (bigger) one: by default each is a new
    mapping, faulted in afresh; tuned, the heap's pages are reused."""
    faults: dict[str, int] = {}
    for mode in ("default", "tuned"):
        done = subprocess.run([sys.executable, "-c", FAULTS_AFTER_FREEING, mode], capture_output=True, text=True,
                              check=True, cwd=REPO)
        if done.stdout.strip() == "no mallopt":
            pytest.skip("the C library has no mallopt (not glibc)")
        faults[mode] = int(done.stdout)
    assert faults["tuned"] * 5 < faults["default"], faults


def test_the_command_line_tunes_malloc_before_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("tuned") or True)
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 0)
    with pytest.raises(SystemExit) as ended:
        runpy.run_module("reference_sim", run_name="__main__")
    assert (ended.value.code, calls) == (0, ["tuned", "main"])
