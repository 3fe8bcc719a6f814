"""judge/verifier.py without Docker: verdicts on every path, per-stage blame, diagnosis, bad output.

The sandbox is faked by :class:`FakeSandbox`, which runs the staged harness as a real child process
(``python -I inputs/boot.py``), so the job files, the harness and the manifest are the real ones.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judge import compare, diagnosis, executors, reference_runs, suites
from judge import verifier as vf
from judge.harness import harness, rules
from judge.mutants import MUTANTS, build, candidate_files
from reference_sim import contract
from sandbox.base import Outcome
from tests.helpers import FakeSandbox, write_folder

SUITE: tuple[suites.Workload, ...] = tuple(suites.Workload(w.id, w.hardware, w.layers[:3]) for w in suites.load_suite())
REFERENCE_MODULES = reference_runs.reference_modules()
NO_FINAL: tuple[suites.Workload, ...] = ()


def _mutant(mutant_id: str) -> dict[str, Any]:
    return build(next(m for m in MUTANTS if m.id == mutant_id))


def _write(files: dict[str, str], tmp: Path) -> Path:
    return write_folder(tmp / "candidate", files)


def test_default_suite_covers_dataflows_bandwidths_and_non_powers_of_two() -> None:
    suite = suites.default_suite()
    assert len(suite) >= 10 and all(len(w.layers) == 9 for w in suite)
    assert {w.hardware.dataflow for w in suite} == {"os", "ws", "is"}
    assert {w.hardware.bandwidth_mode for w in suite} == {"CALC", "USER"}

    def pot(n: int) -> bool:
        return n & (n - 1) == 0

    user = [w.hardware for w in suite if w.hardware.bandwidth_mode == "USER"]
    assert 10 in {h.dram_words_per_cycle for h in user}
    assert any(not pot(h.dram_words_per_cycle) for h in user)
    assert any(not pot(k) for w in suite for k in (w.hardware.ifmap_sram_kib, w.hardware.filter_sram_kib,
                                                  w.hardware.ofmap_sram_kib))
    assert [w.id for w in suites.default_final_check()] == ["alexnet_conv1_2@final_check"]


def test_reference_passes_in_process_on_every_path() -> None:
    result = vf.verify(executors.InProcessExecutor(REFERENCE_MODULES), SUITE, final_check=suites.default_final_check())
    assert result.passed, result.diagnosis
    assert result.divergence is None and result.blame is None
    assert len(result.cycle_errors) == 3 * len(SUITE) + 2 and result.total_cycle_error == 0.0
    assert set(result.timings) >= {"traced", "untraced", "final_check", "run"}


def test_reference_folder_passes_in_process(tmp_path: Path) -> None:
    result = vf.verify(executors.InProcessExecutor(_write(candidate_files(), tmp_path)), SUITE[:2],
                       final_check=NO_FINAL)
    assert result.passed, result.diagnosis


def test_network_mutant_stage_evidence_divergence_and_diagnosis() -> None:
    result = vf.verify(executors.InProcessExecutor(_mutant("net-os-ifmap-no-skew")), SUITE, final_check=NO_FINAL)
    assert result.outcome is Outcome.WRONG_RESULT
    div = result.divergence
    assert div is not None
    assert (div.workload, div.layer, div.kind, div.trace, div.row, div.column, div.path) == (
        "edge_cases@spec", 0, "trace", "ifmap_sram", 0, 2, "traced")
    assert result.blamed == ("network",)
    assert result.blame is not None
    stage = result.blame.stages[0]
    assert (stage.stage, stage.field, stage.expected, stage.actual) == (
        "network", "NetworkSchedule.timing.ifmap.skew", "True", "False")
    text = result.diagnosis
    assert len(text) <= diagnosis.DIAGNOSIS_CHARS
    assert text.index("Stage evidence: network(reference mapping)") < text.index("End to end")
    for needle in ("Blamed: network", "NetworkSchedule.timing.ifmap.skew: expected True, got False", "ifmap_sram",
                   "edge_cases@spec"):
        assert needle in text, (needle, text)


def test_report_only_mapping_fault_is_a_figure_and_a_field() -> None:
    result = vf.verify(executors.InProcessExecutor(_mutant("map-compute-util-fill")), SUITE, final_check=NO_FINAL)
    assert result.divergence is not None and result.divergence.kind == "figure"
    assert result.divergence.figure == "compute_util_pct"
    assert result.blamed == ("mapping",)
    assert result.blame is not None and result.blame.stages[0].field == "LayerMapping.compute_utilisation"


def _memory_changed(when: Any, **change: Any) -> dict[str, Any]:
    """The reference's modules with a memory whose result gets ``change`` (fields +N) where ``when`` holds."""

    class Changed:
        @staticmethod
        def simulate(mapping: Any, network: Any, hardware: Any, *, traces: bool = False) -> Any:
            result = REFERENCE_MODULES["memory"].simulate(mapping, network, hardware, traces=traces)
            if not when(mapping, traces):
                return result
            return dataclasses.replace(result, **{k: getattr(result, k) + v for k, v in change.items()})

    return {**REFERENCE_MODULES, "memory": Changed}


def test_a_fault_only_on_the_traces_off_path_is_caught_there() -> None:
    modules = _memory_changed(lambda mapping, traces: not traces, stall_cycles=1)
    result = vf.verify(executors.InProcessExecutor(modules), SUITE[:1], final_check=NO_FINAL)
    assert result.outcome is Outcome.WRONG_RESULT
    assert result.divergence is not None and result.divergence.path == "untraced"
    assert result.divergence.figure == "stall_cycles"
    assert result.blamed == ("memory",)
    stage = result.blame.stages[0]  # type: ignore[union-attr]
    assert (stage.traces, stage.field, stage.expected, stage.actual) == (False, "MemoryResult.stall_cycles", "0", "1")
    assert "with traces off" in result.diagnosis


def test_final_check_is_verified_by_report_figures() -> None:
    modules = _memory_changed(lambda mapping, traces: mapping.layer.ifmap_h >= 100, total_cycles=7)
    assert vf.verify(executors.InProcessExecutor(modules), SUITE[:2], final_check=NO_FINAL).passed
    result = vf.verify(executors.InProcessExecutor(modules), SUITE[:2], final_check=suites.default_final_check())
    assert result.divergence is not None and result.divergence.path == "final_check"
    assert result.divergence.figure == "total_cycles"
    assert result.failing_workloads == ("alexnet_conv1_2@final_check",)
    assert result.blamed == ("memory",)


def test_cycle_errors_per_layer_and_total() -> None:
    result = vf.verify(executors.InProcessExecutor(_mutant("mem-total-plus1")), SUITE, final_check=NO_FINAL,
                       blame=False)
    assert result.blame is None
    assert all(e.actual == e.expected + 1 for e in result.cycle_errors)
    total_expected = sum(e.expected for e in result.cycle_errors)
    assert result.total_cycle_error == pytest.approx(len(result.cycle_errors) / total_expected)


def test_two_faulty_modules_are_both_named_with_substitution_evidence() -> None:
    result = vf.verify(executors.InProcessExecutor(_mutant("two-os-fold+drain")), SUITE, final_check=NO_FINAL)
    assert result.blamed == ("network", "memory")
    assert result.blame is not None
    assert [s.stage for s in result.blame.stages] == ["network", "memory"]
    assert any("with the reference's mapping" in note for note in result.blame.evidence)


def test_single_faults_carry_no_substitution_notes() -> None:
    result = vf.verify(executors.InProcessExecutor(_mutant("mem-hit-latency")), SUITE, final_check=NO_FINAL)
    assert result.blamed == ("memory",) and result.blame is not None and result.blame.evidence == ()


def test_crashing_candidate_is_crashed_and_blamed_on_the_failing_stage(tmp_path: Path) -> None:
    files = candidate_files()
    files["memory.py"] = files["memory.py"].replace("def simulate(\n", "def _unused(\n", 1)
    result = vf.verify(executors.InProcessExecutor(_write(files, tmp_path)), SUITE[:1], final_check=NO_FINAL)
    assert result.outcome is Outcome.CRASHED
    assert result.divergence is not None and result.divergence.kind == "error"
    assert result.divergence.module == "memory"
    assert result.blamed == ("memory",)
    assert "simulate" in result.diagnosis


def test_a_candidate_that_does_not_import_is_not_run_again_for_blame(tmp_path: Path) -> None:
    files = candidate_files()
    files["network.py"] = "raise RuntimeError('no network today')\n"
    executor = CountingExecutor(executors.InProcessExecutor(_write(files, tmp_path)))
    result = vf.verify(executor, SUITE[:2], final_check=NO_FINAL)
    assert result.outcome is Outcome.CRASHED
    assert result.blamed == ("network",)
    assert executor.runs == 1
    assert "no network today" in result.diagnosis


def test_forbidden_sources_are_refused_before_anything_runs(tmp_path: Path) -> None:
    files = candidate_files()
    files["memory.py"] = "from reference_sim.memory import simulate\n"
    executor = CountingExecutor(executors.InProcessExecutor(_write(files, tmp_path)))
    result = vf.verify(executor, SUITE[:1], final_check=NO_FINAL)
    assert result.outcome is Outcome.FORBIDDEN
    assert executor.runs == 0
    assert result.refusals == (f"memory.py:1: from reference_sim.memory import ... ({rules.NOT_ALLOWED})",)
    assert "memory.py:1" in result.diagnosis


def test_syntax_errors_are_crashes_named_by_file_and_line(tmp_path: Path) -> None:
    files = candidate_files()
    files["network.py"] = "def schedule(:\n"
    result = vf.verify(executors.InProcessExecutor(_write(files, tmp_path)), SUITE[:1], final_check=NO_FINAL)
    assert result.outcome is Outcome.CRASHED and "network.py:1" in result.message


class CountingExecutor:
    def __init__(self, inner: executors.Executor) -> None:
        self.inner = inner
        self.runs = 0

    @property
    def candidate_dir(self) -> Path | None:
        return self.inner.candidate_dir

    def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> executors.Execution:
        self.runs += 1
        return self.inner.run(job, arrays)


@pytest.mark.parametrize(
    ("expected", "actual", "found"),
    [
        (contract.DramPort(10, 1), contract.DramPort(10, 1), None),
        (contract.DramPort(10, 1), contract.DramPort(10, 2), ("P.latency_cycles", None, "1", "2")),
        ({"a": (1.0, 2.0)}, {"a": (1.0, 2.5)}, ("P.a[1]", None, "2", "2.5")),
        ({"a": 1}, {"b": 1}, ("P", None, "['a']", "['b']")),
        (np.arange(5), np.array([0, 1, 2, 9, 4]), ("P", (3,), "3", "9")),
        (np.arange(5), np.arange(4), ("P", None, "shape (5,)", "shape (4,)")),
        (np.zeros((3, 2)), np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), ("P", (1, 1), "0", "1")),
        (0.1 + 0.2, 0.3, None),
    ],
)
def test_first_field_difference(expected: Any, actual: Any, found: Any) -> None:
    assert compare.first_field_difference(expected, actual, "P") == found


# --------------------------------------------------------------------------- SandboxExecutor on a fake sandbox


def _executor(fake: FakeSandbox, files: dict[str, str], tmp_path: Path) -> executors.SandboxExecutor:
    (tmp_path / "w").mkdir()
    return executors.SandboxExecutor(fake, _write(files, tmp_path / "c"), workdir=tmp_path / "w", workers=2)


def test_sandbox_executor_round_trip_passes_and_cleans_up(tmp_path: Path) -> None:
    fake = FakeSandbox()
    result = vf.verify(_executor(fake, candidate_files(), tmp_path), SUITE[:2], final_check=NO_FINAL)
    assert result.passed, result.diagnosis
    assert fake.commands == [list(executors.HARNESS_COMMAND)]
    assert list((tmp_path / "w").iterdir()) == []
    assert result.stdout_tail == "out\n" and result.stderr_tail.startswith("boom")


def test_the_sandbox_gets_the_harness_the_contract_and_the_job_only(tmp_path: Path) -> None:
    fake = FakeSandbox()
    vf.verify(_executor(fake, candidate_files(), tmp_path), SUITE[:1], final_check=NO_FINAL)
    package = harness.HARNESS_PACKAGE
    assert fake.inputs[0] == {harness.JOB_FILE, harness.INPUT_ARRAYS_FILE, executors.BOOT_FILE, package,
                              *(f"{package}/{name}" for name in (
                                  "__init__.py", "harness.py", "probe.py", "rules.py", "wire.py", "feature_api.py",
                                  "feature_format.py", "feature_harness.py", "contract.py", "errors.py"))}


def test_sandbox_executor_blames_in_one_more_run(tmp_path: Path) -> None:
    mutant = next(m for m in MUTANTS if m.id == "net-write-latency")
    fake = FakeSandbox()
    result = vf.verify(_executor(fake, candidate_files(mutant), tmp_path), SUITE[:1], final_check=NO_FINAL)
    assert result.outcome is Outcome.WRONG_RESULT and result.blamed == ("network",)
    assert len(fake.commands) == 2


@pytest.mark.parametrize("outcome", [Outcome.TIMED_OUT, Outcome.OUT_OF_MEMORY, Outcome.CRASHED, Outcome.BAD_OUTPUT])
def test_sandbox_outcomes_pass_through(tmp_path: Path, outcome: Outcome) -> None:
    result = vf.verify(executors.SandboxExecutor(FakeSandbox(outcome), _write(candidate_files(), tmp_path),
                                                 workdir=tmp_path), SUITE[:1], final_check=NO_FINAL)
    assert result.outcome is outcome and not result.passed
    assert f"fake {outcome.value}" in result.diagnosis and "boom" in result.diagnosis
    assert result.stderr_tail == "boom\n"


def _garbage_manifest(out: Path) -> None:
    (out / harness.MANIFEST_FILE).write_text("{" * 100)


def _huge_manifest(out: Path) -> None:
    (out / harness.MANIFEST_FILE).write_text(" " * (executors.MANIFEST_LIMIT_BYTES + 1))


def _bad_npz(out: Path) -> None:
    (out / harness.task_arrays_file(0)).write_bytes(b"PK not a zip")


def _missing_task(out: Path) -> None:
    manifest = json.loads((out / harness.MANIFEST_FILE).read_text())
    manifest["tasks"].pop()
    (out / harness.MANIFEST_FILE).write_text(json.dumps(manifest))


def _forged_layer(out: Path) -> None:
    manifest = json.loads((out / harness.MANIFEST_FILE).read_text())
    manifest["tasks"][0]["layers"][0]["memory"] = {"total_cycles": "all of them"}
    (out / harness.MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize("spoil", [_garbage_manifest, _huge_manifest, _bad_npz, _missing_task])
def test_malformed_output_is_bad_output(tmp_path: Path, spoil: Any) -> None:
    fake = FakeSandbox(spoil=spoil)
    result = vf.verify(_executor(fake, candidate_files(), tmp_path), SUITE[:1], final_check=NO_FINAL)
    assert result.outcome is Outcome.BAD_OUTPUT, result.diagnosis
    assert "not acceptable" in result.message


def test_a_result_that_does_not_fit_the_contract_is_that_modules_fault(tmp_path: Path) -> None:
    fake = FakeSandbox(spoil=_forged_layer)
    result = vf.verify(_executor(fake, candidate_files(), tmp_path), SUITE[:1], final_check=NO_FINAL, blame=False)
    assert not result.passed
    assert result.divergence is not None and result.divergence.kind == "error"
    assert result.divergence.module == "memory" and "MemoryResult" in result.divergence.evidence
