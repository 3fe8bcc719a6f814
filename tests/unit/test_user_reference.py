"""A user's own reference is code like a candidate's: checked with the rules, run only through an executor.

Executors here run in this process (``InProcessExecutor``, trusted code); where the test is that the host never
imports the reference, a spy executor records every run and runs a stand-in folder instead.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents import optimiser, planner, summary
from judge import checks, compare, executors, reference_runs, suites, user_reference
from judge import verifier as vf
from judge.mutants import MUTANTS, build, candidate_files
from reference_sim import engine
from sandbox.base import Outcome
from tests import fakes
from tests.helpers import write_folder

SPEC = Path(__file__).resolve().parents[2] / "scale_sim.yaml"
SUITE: suites.Suite = tuple(suites.Workload(w.id, w.hardware, w.layers[:3]) for w in suites.load_suite()[:3])
FINAL: suites.Suite = tuple(suites.Workload(w.id, w.hardware, w.layers[:2]) for w in suites.load_final_check()[:1])
MUTANT = next(m for m in MUTANTS if m.id == "mem-total-plus1")
"""The user's reference: the built-in one whose memory module reports one total cycle more."""
ON_THE_HOST = "\nraise RuntimeError('the user reference was imported on the host')\n"


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("user") / "reference", candidate_files(MUTANT))


@pytest.fixture(scope="module")
def expected(own: Path) -> tuple[suites.Suite, suites.Suite]:
    return user_reference.expected_suites(own, fakes.in_process, SUITE, FINAL)


class Spy:
    """An executor factory that records each folder and job; ``stand_ins`` maps a folder to the one really run."""

    def __init__(self, stand_ins: dict[Path, Path] | None = None) -> None:
        self.stand_ins = stand_ins or {}
        self.runs: list[tuple[Path, dict[str, Any]]] = []

    def __call__(self, folder: Path) -> executors.Executor:
        spy = self

        class Recording:
            candidate_dir = folder

            def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> executors.Execution:
                spy.runs.append((folder, job))
                return executors.InProcessExecutor(spy.stand_ins.get(folder, folder)).run(job, arrays)

        return Recording()

    def folders(self) -> list[Path]:
        return [folder for folder, _ in self.runs]


def _same(expected: suites.ReferenceLayer, got: suites.ReferenceLayer) -> str | None:
    """The first field where two expected layers differ, ``None`` when equal."""
    for name, kind in (("mapping", "LayerMapping"), ("schedule", "NetworkSchedule"), ("memory", "MemoryResult"),
                       ("memory_untraced", "MemoryResult")):
        found = compare.first_field_difference(getattr(expected, name), getattr(got, name), kind)
        if found is not None:
            return f"{found}"
    return None if expected.figures == got.figures else f"figures {expected.figures} != {got.figures}"


def test_expected_results_are_the_users_reference_run(expected: tuple[suites.Suite, suites.Suite], own: Path) -> None:
    suite, final = expected
    host = engine.Modules(**build(MUTANT))
    assert [w.id for w in suite] == [w.id for w in SUITE] and [w.id for w in final] == [w.id for w in FINAL]
    for got, traced in [*((w, True) for w in suite), *((w, False) for w in (*suite, *final))]:
        assert got.reference == own.resolve()
        want = reference_runs.reference_run(
            dataclasses.replace(got, reference=host, expected=None, expected_untraced=None), traced)
        have = reference_runs.reference_run(got, traced)
        assert len(have) == len(got.layers)
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            assert _same(w, h) is None, f"{got.id} layer {i} traces {traced}: {_same(w, h)}"
        builtin = reference_runs.reference_run(suites.Workload(got.id, got.hardware, got.layers), traced)
        assert [h.figures["total_cycles"] - 1 for h in have] == [b.figures["total_cycles"] for b in builtin]
    assert final[0].expected is None, "the final check runs without traces only"


def test_candidates_are_judged_by_the_users_reference(expected: tuple[suites.Suite, suites.Suite], own: Path,
                                                      tmp_path: Path) -> None:
    suite, final = expected
    builtin = vf.verify(executors.InProcessExecutor(reference_runs.reference_modules()), suite, final_check=final)
    assert builtin.outcome is Outcome.WRONG_RESULT, builtin.diagnosis
    assert builtin.divergence is not None and builtin.divergence.figure == "total_cycles"
    assert builtin.divergence.expected == builtin.divergence.actual + 1  # type: ignore[operator]
    assert builtin.blamed == ("memory",)
    assert builtin.blame is not None and builtin.blame.stages[0].field == "MemoryResult.total_cycles"
    assert set(builtin.failing_workloads) == {w.id for w in (*SUITE, *FINAL)}
    assert vf.verify(executors.InProcessExecutor(reference_runs.reference_modules()), SUITE, final_check=FINAL).passed
    same = vf.verify(executors.InProcessExecutor(shutil.copytree(own, tmp_path / "candidate")), suite,
                     final_check=final)
    assert same.passed, same.diagnosis


def test_module_checks_compare_with_the_users_reference(expected: tuple[suites.Suite, suites.Suite]) -> None:
    suite, _ = expected
    found = checks.stage_evidence("memory", reference_runs.reference_code("memory"), fakes.in_process, suite)
    assert isinstance(found, compare.StageEvidence) and found.field == "MemoryResult.total_cycles"
    assert checks.local_problem("network", reference_runs.reference_code("network"), fakes.in_process, suite) is None
    assert checks.stage_evidence("network", reference_runs.reference_code("network"), fakes.in_process, suite) is None


def test_the_host_never_imports_the_users_reference(tmp_path: Path) -> None:
    files = candidate_files()
    stand_in = write_folder(tmp_path / "stand_in", files)
    hostile = write_folder(tmp_path / "hostile", {**files, "memory.py": files["memory.py"] + ON_THE_HOST})
    spy = Spy({hostile.resolve(): stand_in})
    plan = planner.plan_run(SPEC, reference_dir=hostile)
    folder = Path(plan["reference"])
    assert folder == hostile.resolve()
    suite, final = user_reference.expected_suites(folder, spy, SUITE, FINAL)
    assert spy.folders() == [folder], "one run of the reference, through the executor"
    job = spy.runs[0][1]
    assert sorted((t["start"], t["stop"], t["traces"]) for t in job["tasks"]) == sorted(
        [("mapping", "memory", True)] * len(SUITE) + [("mapping", "memory", False)] * (len(SUITE) + len(FINAL)))
    result = vf.verify(executors.InProcessExecutor(reference_runs.reference_modules()), suite, final_check=final)
    assert result.passed, result.diagnosis
    assert checks.stage_evidence("memory", reference_runs.reference_code("memory"), spy, suite) is None
    assert spy.folders().count(folder) == 1
    timed = summary.reference_sources(final[0].reference)
    assert timed == folder
    assert optimiser.measure(timed, spy, final, repeats=1) >= 0.0
    assert spy.folders().count(folder) == 2, "timing the reference runs its folder through the executor too"
    loaded = [name for name, module in list(sys.modules.items())
              if getattr(module, "__file__", None) and Path(str(module.__file__)).resolve().is_relative_to(folder)]
    assert loaded == [] and str(folder) not in sys.path


def test_a_forbidden_reference_is_refused_before_any_run(tmp_path: Path) -> None:
    files = candidate_files()
    line = len(files["mapping.py"].splitlines()) + 2
    folder = write_folder(tmp_path / "reference", {**files, "mapping.py": files["mapping.py"] + "\nimport os\n"})
    folder = folder.resolve()
    spy = Spy()
    pattern = (rf"^the reference in {re.escape(str(folder))} uses what the sandbox's rules forbid: "
               rf"mapping\.py:{line}: import os \([^()]+\)$")
    with pytest.raises(user_reference.UserReferenceError, match=pattern):
        user_reference.expected_suites(folder, spy, SUITE, FINAL)
    with pytest.raises(planner.PlanError, match=pattern):
        planner.plan_run(SPEC, reference_dir=folder)
    assert spy.runs == []


def test_a_crashing_reference_is_one_line_naming_folder_and_workload(tmp_path: Path) -> None:
    files = candidate_files()
    crash = ("\n\ndef simulate(mapping, network, hardware, *, traces=False):\n"
             "    raise ZeroDivisionError('the user model divides by zero\\non two lines')\n")
    folder = write_folder(tmp_path / "reference", {**files, "memory.py": files["memory.py"] + crash}).resolve()
    with pytest.raises(user_reference.UserReferenceError) as info:
        user_reference.expected_suites(folder, fakes.in_process, SUITE, FINAL)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"the user's reference in {folder} crashed on workload {SUITE[0].id} (traces on): "
                              "the memory module raised: ")
    assert "the user model divides by zero on two lines" in message


def test_a_reference_run_that_does_not_finish_is_one_line(own: Path) -> None:
    class TimedOut:
        candidate_dir = own

        def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> executors.Execution:
            return executors.Execution(Outcome.TIMED_OUT, "the run took longer than 60 s", 60.0,
                                       stderr_tail="busy\nstill")

    with pytest.raises(user_reference.UserReferenceError) as info:
        user_reference.expected_suites(own, lambda folder: TimedOut(), SUITE)
    assert str(info.value) == (f"the user's reference in {own.resolve()} did not finish in the sandbox (timed_out): "
                               "the run took longer than 60 s (stderr: busy still)")


def test_a_users_reference_without_its_sandbox_run_is_never_computed_here(own: Path) -> None:
    suite = suites.load_suite(SPEC, own.resolve())
    spy = Spy()
    with pytest.raises(reference_runs.UserReferenceError,
                       match=r"no expected results without traces for edge_cases@spec: they come from its sandbox run"):
        vf.verify(spy(own), suite[:1], final_check=())
    with pytest.raises(reference_runs.UserReferenceError, match="no expected results with traces"):
        reference_runs.reference_run(suite[0], True)
    assert spy.runs == []


def test_attached_results_follow_the_workloads_layers(expected: tuple[suites.Suite, suites.Suite]) -> None:
    first = expected[0][0]
    with pytest.raises(ValueError, match="attached only for a user's reference folder"):
        dataclasses.replace(first, reference=engine.REFERENCE)
    fewer = dataclasses.replace(first, layers=first.layers[:1])
    assert len(reference_runs.reference_run(fewer, True)) == 1
    other = dataclasses.replace(first, layers=first.layers[1:])
    with pytest.raises(reference_runs.UserReferenceError, match="attached are for other layers"):
        reference_runs.reference_run(other, False)
