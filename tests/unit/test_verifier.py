"""agents/verifier.py without Docker: trace diff, verdicts, blame, diagnosis, the sandbox executor on a fake."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents import verifier as vf
from agents.mutants import MUTANTS, build, candidate_files
from reference_sim import engine
from sandbox import runner
from sandbox.base import Outcome, RunResult

SUITE: tuple[vf.Workload, ...] = tuple(vf.Workload(w.id, w.hardware, w.layers[:3]) for w in vf.load_suite())
REFERENCE_MODULES = {role: getattr(engine.REFERENCE, role) for role in runner.ROLES}


def _mutant(mutant_id: str) -> dict[str, Any]:
    return build(next(m for m in MUTANTS if m.id == mutant_id))


def test_default_suite_is_edge_cases_under_the_six_variants() -> None:
    suite = vf.default_suite()
    assert [w.id for w in suite] == [
        "edge_cases@spec", "edge_cases@ws_user_small_sram", "edge_cases@is_user_small_sram",
        "edge_cases@os_user_small_sram", "edge_cases@ws_calc_small_ofmap", "edge_cases@is_calc"]
    assert all(len(w.layers) == 9 for w in suite)
    assert {w.hardware.dataflow for w in suite} == {"os", "ws", "is"}
    assert {w.hardware.bandwidth_mode for w in suite} == {"CALC", "USER"}


@pytest.mark.parametrize(
    ("expected", "actual", "found"),
    [
        (np.arange(12.0).reshape(4, 3), np.arange(12.0).reshape(4, 3), None),
        (np.arange(12.0).reshape(4, 3), np.where(np.arange(12.0) == 7, -1, np.arange(12.0)).reshape(4, 3), (2, 1)),
        (np.arange(12.0).reshape(4, 3), np.arange(9.0).reshape(3, 3), (3, 0)),
        (np.arange(12.0).reshape(4, 3), np.arange(16.0).reshape(4, 4), (0, 3)),
        (np.zeros((0, 3)), np.zeros((1, 3)), (0, 0)),
    ],
)
def test_first_trace_difference(expected: np.ndarray, actual: np.ndarray, found: tuple[int, int] | None) -> None:
    result = vf.first_trace_difference(expected, actual)
    assert (result[:2] if result is not None else None) == found


def test_reference_passes_in_process() -> None:
    result = vf.verify(vf.InProcessExecutor(REFERENCE_MODULES), SUITE)
    assert result.passed, result.diagnosis
    assert result.divergence is None and result.blame is None
    assert len(result.cycle_errors) == 18 and result.total_cycle_error == 0.0
    assert all(e.relative == 0.0 for e in result.cycle_errors)


def test_reference_folder_passes_in_process(tmp_path: Path) -> None:
    result = vf.verify(vf.InProcessExecutor(_write(candidate_files(), tmp_path)), SUITE[:2])
    assert result.passed, result.diagnosis


def _write(files: dict[str, str], tmp: Path) -> Path:
    folder = tmp / "candidate"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_network_mutant_first_divergence_blame_and_diagnosis() -> None:
    result = vf.verify(vf.InProcessExecutor(_mutant("net-os-ifmap-no-skew")), SUITE)
    assert result.outcome is Outcome.WRONG_RESULT
    div = result.divergence
    assert div is not None
    assert (div.workload, div.layer, div.kind, div.trace, div.row, div.column) == (
        "edge_cases@spec", 0, "trace", "ifmap_sram", 0, 2)
    assert div.cycle == 1.0 and div.expected == -1.0 and div.actual == 5.0
    assert result.blamed == ("network",)
    assert result.failing_workloads == ("edge_cases@spec", "edge_cases@os_user_small_sram")
    text = result.diagnosis
    assert len(text) <= vf.DIAGNOSIS_CHARS
    for needle in ("network", "ifmap_sram", "row 0", "edge_cases@spec", "port 1", "expected -1, got 5"):
        assert needle in text, (needle, text)


def test_report_only_mutant_diverges_on_a_figure() -> None:
    result = vf.verify(vf.InProcessExecutor(_mutant("map-compute-util-fill")), SUITE)
    assert result.divergence is not None and result.divergence.kind == "figure"
    assert result.divergence.figure == "compute_util_pct"
    assert result.blamed == ("mapping",)
    assert "Total cycles match" in result.diagnosis


def test_cycle_errors_per_layer_and_total() -> None:
    result = vf.verify(vf.InProcessExecutor(_mutant("mem-total-plus1")), SUITE, blame=False)
    assert result.blame is None
    assert all(e.actual == e.expected + 1 for e in result.cycle_errors)
    total_expected = sum(e.expected for e in result.cycle_errors)
    assert result.total_cycle_error == pytest.approx(len(result.cycle_errors) / total_expected)


def test_two_module_mutant_names_both_and_three_modules_name_all() -> None:
    result = vf.verify(vf.InProcessExecutor(_mutant("two-os-fold+drain")), SUITE)
    assert result.blamed == ("network", "memory")
    three = {**_mutant("map-ifmap-offset"), "network": _mutant("net-read-latency")["network"],
             "memory": _mutant("mem-hit-latency")["memory"]}
    result = vf.verify(vf.InProcessExecutor(three), SUITE)
    assert result.blamed == ("mapping", "network", "memory")
    assert "no single or pair swap" in result.blame.evidence[-1]  # type: ignore[union-attr]


def test_crashing_candidate_is_crashed_and_blamed_by_substitution(tmp_path: Path) -> None:
    files = candidate_files()
    files["memory.py"] = files["memory.py"].replace("def simulate(\n", "def _unused(\n", 1)
    result = vf.verify(vf.InProcessExecutor(_write(files, tmp_path)), SUITE[:1])
    assert result.outcome is Outcome.CRASHED
    assert result.divergence is not None and result.divergence.kind == "error"
    assert result.divergence.module == "memory"
    assert result.blamed == ("memory",)
    assert "simulate" in result.diagnosis


# --------------------------------------------------------------------------- SandboxExecutor on a fake sandbox


class FakeSandbox:
    """Runs the runner in-process over the folders, then lets a test spoil the output."""

    name = "fake"

    def __init__(self, outcome: Outcome = Outcome.PASSED, spoil: Any = None) -> None:
        self.outcome = outcome
        self.spoil = spoil
        self.commands: list[Sequence[str]] = []

    def run(self, candidate_dir: Path, inputs_dir: Path, output_dir: Path, command: Sequence[str], *,
            timeout_s: float | None = None) -> RunResult:
        self.commands.append(command)
        output_dir.mkdir(parents=True, exist_ok=True)
        if self.outcome is Outcome.PASSED:
            job = runner.validate_job(json.loads((inputs_dir / runner.JOB_FILE).read_text()))
            runner.execute_job(job, candidate_dir, output_dir, inputs_dir)
            if self.spoil is not None:
                self.spoil(output_dir)
        return RunResult(self.outcome, 0 if self.outcome is Outcome.PASSED else None, "", "boom\n", 0.01,
                         output_dir, (), f"fake {self.outcome.value}")


def _executor(fake: FakeSandbox, files: dict[str, str], tmp_path: Path) -> vf.SandboxExecutor:
    (tmp_path / "w").mkdir()
    return vf.SandboxExecutor(fake, _write(files, tmp_path / "c"), workdir=tmp_path / "w")


def test_sandbox_executor_round_trip_passes_and_cleans_up(tmp_path: Path) -> None:
    fake = FakeSandbox()
    result = vf.verify(_executor(fake, candidate_files(), tmp_path), SUITE[:2])
    assert result.passed, result.diagnosis
    assert fake.commands == [list(vf.RUNNER_COMMAND)]
    assert list((tmp_path / "w").iterdir()) == []


def test_sandbox_executor_blames_in_one_more_run(tmp_path: Path) -> None:
    from agents.mutants import MUTANTS as ALL

    mutant = next(m for m in ALL if m.id == "net-write-latency")
    fake = FakeSandbox()
    result = vf.verify(_executor(fake, candidate_files(mutant), tmp_path), SUITE[:1])
    assert result.outcome is Outcome.WRONG_RESULT and result.blamed == ("network",)
    assert len(fake.commands) == 2


@pytest.mark.parametrize("outcome", [Outcome.TIMED_OUT, Outcome.OUT_OF_MEMORY, Outcome.CRASHED, Outcome.BAD_OUTPUT])
def test_sandbox_outcomes_pass_through(tmp_path: Path, outcome: Outcome) -> None:
    result = vf.verify(vf.SandboxExecutor(FakeSandbox(outcome), tmp_path, workdir=tmp_path), SUITE[:1])
    assert result.outcome is outcome and not result.passed
    assert f"fake {outcome.value}" in result.diagnosis and "boom" in result.diagnosis


def _garbage_manifest(out: Path) -> None:
    (out / runner.MANIFEST_FILE).write_text("{" * 100)


def _huge_manifest(out: Path) -> None:
    (out / runner.MANIFEST_FILE).write_text(" " * (vf.MANIFEST_LIMIT_BYTES + 1))


def _bad_npz(out: Path) -> None:
    (out / "runs" / "0-0" / "traces.npz").write_bytes(b"PK not a zip")


def _escaping_dir(out: Path) -> None:
    manifest = json.loads((out / runner.MANIFEST_FILE).read_text())
    manifest["runs"][0]["dir"] = "../../etc"
    (out / runner.MANIFEST_FILE).write_text(json.dumps(manifest))


def _bad_reports(out: Path) -> None:
    (out / "runs" / "0-0" / runner.REPORTS_FILE).write_text('{"layers": [{"index": 0}]}')


@pytest.mark.parametrize("spoil", [_garbage_manifest, _huge_manifest, _bad_npz, _escaping_dir, _bad_reports])
def test_malformed_output_is_bad_output(tmp_path: Path, spoil: Any) -> None:
    fake = FakeSandbox(spoil=spoil)
    result = vf.verify(_executor(fake, candidate_files(), tmp_path), SUITE[:1])
    assert result.outcome is Outcome.BAD_OUTPUT, result.diagnosis
    assert "not acceptable" in result.message
