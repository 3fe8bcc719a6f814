"""Written features: the static check, the in-process run through the feature harness, the host's decoding of
the manifest (with its own classes, every malformed field named), and a whole run's failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from judge import executors
from judge.feature_jobs import (
    FeatureCase,
    FeatureCaseRun,
    feature_static_problem,
    make_feature_job,
    package_files,
    read_feature_cases,
    run_feature_cases,
)
from judge.harness import feature_format
from judge.reference_runs import reference_code
from reference_sim.contract import Hardware, Layer
from reference_sim.engine import simulate
from sandbox.base import Outcome
from tests.helpers import FakeSandbox, assert_same_layer_results

LAYERS = (Layer("conv3x3", 7, 6, 3, 3, 2, 3, 1, 1), Layer("gemm", 5, 6, 1, 6, 1, 4, 1, 1))
HARDWARE = Hardware(4, 4, "os", 64, 64, 64)
MODULES = {role: reference_code(role) for role in feature_format.ROLES}
REPORT = "ENERGY_REPORT.csv"

ENERGY = '''
"""An energy-like feature: the engine's run and one row per layer."""
from .engine import simulate
from .feature_api import FeatureRun


def run(layers, hardware, params, *, traces=False):
    if params.get("explode"):
        raise ZeroDivisionError("the coefficient is zero")
    results = simulate(layers, hardware, traces=traces)
    rows = [{"layer_id": float(r.index), "pj": r.total_cycles * params["pj_per_cycle"],
             "sram": float(sum(r.sram_accesses.values()))} for r in results]
    return FeatureRun(results, {"ENERGY_REPORT.csv": rows})
'''


def case(case_id: str = "a", traces: bool = True, **params: float) -> FeatureCase:
    return FeatureCase(case_id, LAYERS, HARDWARE, {"pj_per_cycle": 0.5, **params}, traces)


def run_in_process(code: str, *cases: FeatureCase) -> list[FeatureCaseRun]:
    return run_feature_cases(executors.InProcessFeatureExecutor(), MODULES, code, cases or (case(),))


def with_body(body: str) -> str:
    """A feature whose ``run`` ends with ``body`` (``results`` and ``rows`` are the energy-like feature's)."""
    return ENERGY.replace('    return FeatureRun(results, {"ENERGY_REPORT.csv": rows})\n', body)


# --------------------------------------------------------------------------- a correct feature


@pytest.mark.parametrize("traces", [True, False])
def test_a_correct_feature_round_trips_equal_to_the_hosts_own_results(traces: bool) -> None:
    (run,) = run_in_process(ENERGY, case(traces=traces))
    assert run.error is None and run.id == "a"
    expected = simulate(LAYERS, HARDWARE, traces=traces)
    assert_same_layer_results(expected, run.results)
    assert run.tables == {REPORT: [{"layer_id": float(r.index), "pj": r.total_cycles * 0.5,
                                    "sram": float(sum(r.sram_accesses.values()))} for r in expected]}


def test_one_crashing_case_leaves_the_others_alone() -> None:
    good, bad = run_in_process(ENERGY, case("good"), case("bad", explode=1))
    assert good.error is None and good.results is not None
    assert bad.results is None and bad.error == "ZeroDivisionError: the coefficient is zero (your module line 9)"


def test_a_feature_that_fails_to_import_fails_every_case() -> None:
    runs = run_in_process(ENERGY + "\nraise RuntimeError('broken at import')\n", case("a"), case("b"))
    assert [r.error for r in runs] == ["feature.py could not be imported: RuntimeError: broken at import"] * 2


@pytest.mark.parametrize(("body", "message"), [
    ("    return FeatureRun(results[:1], {})\n", "run() returned 1 layer results for 2 layers"),
    ("    rows[1]['pj'] = float('nan')\n    return FeatureRun(results, {'ENERGY_REPORT.csv': rows})\n",
     "tables['ENERGY_REPORT.csv'][1].pj: expected a finite number, got nan"),
    ("    return FeatureRun(results, {'ENERGY_REPORT.csv': [{'pj': 1.0}] * 5000})\n",
     "tables['ENERGY_REPORT.csv']: 5000 rows (at most 1024)"),
    ("    rows[0]['pj'] = 'lots'\n    return FeatureRun(results, {'ENERGY_REPORT.csv': rows})\n",
     "tables['ENERGY_REPORT.csv'][0].pj: expected a number, got 'lots'"),
    ("    return FeatureRun(results, {'ENERGY_REPORT.csv': [{str(c): 1.0 for c in range(100)}]})\n",
     "tables['ENERGY_REPORT.csv'][0]: 100 columns (at most 64)"),
    ("    return results\n", "FeatureRun: expected a FeatureRun (results, tables), got list"),
    ("    return FeatureRun([dataclasses_free(r) for r in results], {})\n", "results[0].total_cycles"),
])
def test_a_wrong_result_is_that_cases_error_naming_the_field(body: str, message: str) -> None:
    code = with_body(body)
    if "dataclasses_free" in body:
        code = code.replace("from .feature_api import FeatureRun", "from .feature_api import FeatureRun\n"
                            "from dataclasses import replace\n\n\ndef dataclasses_free(r):\n"
                            "    return replace(r, total_cycles='many')\n")
    (run,) = run_in_process(code)
    assert run.results is None and run.error is not None
    assert message in run.error


# --------------------------------------------------------------------------- the static check


class NeverRuns:
    """An executor that fails the test if anything reaches it."""

    def run(self, files: Any, job: Any, arrays: Any) -> executors.Execution:
        raise AssertionError("refused code reached the executor")


@pytest.mark.parametrize(("code", "problem"), [
    ("import os\n" + ENERGY, "feature.py:1: import os (file-system access)"),
    ("import subprocess\n" + ENERGY, "feature.py:1: import subprocess (processes)"),
    (ENERGY + "\nX = __import__('os')\n", "use of __import__ (import machinery)"),
    (ENERGY + "\nX = open('/etc/passwd').read()\n", "use of open (file-system access)"),
    (ENERGY + "\nimport socket\n", "import socket (network access)"),
    ("from ..judge import x\n" + ENERGY, "feature.py:1: from ..judge import ... (a relative import beyond"),
    ("from .secrets import key\n" + ENERGY, "the candidate has no file secrets.py"),
    (ENERGY.replace("from .engine import", "from engine import"), "feature.py:3: imports a module of its package "
                                                                  "by an absolute name (import it relatively"),
    ("import mapping\n" + ENERGY, "feature.py:1: imports a module of its package by an absolute name"),
    (ENERGY.replace("def run(", "def go("), "feature.py:1: defines no top-level function run(layers, hardware"),
    (ENERGY.replace(", *, traces=False", ""), "run() takes no keyword argument traces"),
    (ENERGY + "\ndef broken(:\n", "feature.py:15: does not parse (invalid syntax)"),
])
def test_refused_code_is_named_with_its_line_and_never_runs(code: str, problem: str) -> None:
    found = feature_static_problem(code)
    assert found is not None and problem in found
    runs = run_feature_cases(NeverRuns(), MODULES, code, [case("a"), case("b")])  # type: ignore[arg-type]
    assert [r.error for r in runs] == [f"the feature was refused before it ran: {found}"] * 2
    assert all(r.results is None for r in runs)


def test_the_package_modules_and_the_allowlist_pass_the_static_check() -> None:
    code = ("import math\nimport numpy as np\nfrom . import mapping, network, memory\n"
            "from .contract import OPERANDS\n"
            "from .engine import simulate_layer, layer_result, check_work, layer_shape, LayerResult\n"
            + ENERGY)
    assert feature_static_problem(code) is None
    assert feature_static_problem(ENERGY) is None


# --------------------------------------------------------------------------- the host's decoding


def good_execution(*cases: FeatureCase) -> executors.Execution:
    job, arrays = make_feature_job(cases)
    return executors.InProcessFeatureExecutor().run(package_files(MODULES, ENERGY), job, arrays)


def spoiled(change: Any, *cases: FeatureCase) -> list[FeatureCaseRun]:
    cases = cases or (case(),)
    execution = good_execution(*cases)
    assert execution.manifest is not None
    change(execution.manifest)
    return read_feature_cases(execution, cases)


def _set(path: str, value: Any) -> Any:
    def change(manifest: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = manifest
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return change


@pytest.mark.parametrize(("path", "value", "message"), [
    ("cases/0/results/1/total_cycles", "x", "cases[0].results[1].total_cycles: expected an integer, got 'x'"),
    ("cases/0/results/0/sram_accesses", {"ifmap": 1}, "cases[0].results[0].sram_accesses: expected the operands"),
    ("cases/0/results/0/traces/ifmap_sram", {"$array": "nowhere"}, "cases[0].results[0].traces.ifmap_sram: "
                                                                   "expected an array reference"),
    ("cases/0/results", {"0": 1}, "cases[0].results: expected a list"),
    ("cases/0/tables", [], "cases[0].tables: expected a dict of tables"),
    ("cases/0/tables/ENERGY_REPORT.csv/0/pj", True, "cases[0].tables['ENERGY_REPORT.csv'][0].pj: expected a number"),
    ("cases/0/status", "fine", "cases[0].status: expected 'ok' or 'error'"),
    ("cases/0/refused", ["open '/etc/passwd'"], "refused by the verifier: open '/etc/passwd'"),
])
def test_a_malformed_case_in_the_manifest_is_that_cases_error_naming_the_field(path: str, value: Any,
                                                                              message: str) -> None:
    first, second = spoiled(_set(path, value), case("a"), case("b"))
    assert first.results is None and first.error is not None and message in first.error
    assert second.error is None and second.results is not None


@pytest.mark.parametrize(("path", "value", "message"), [
    ("format", "simcoder-feature-result/0", "the manifest is not a simcoder-feature-result/1 document"),
    ("cases", [], "cases: expected a list of the job's 2 cases"),
    ("cases/1/id", "z", "cases[1].id: expected 'b'"),
])
def test_a_manifest_that_does_not_list_the_cases_fails_every_case(path: str, value: Any, message: str) -> None:
    runs = spoiled(_set(path, value), case("a"), case("b"))
    assert [r.error for r in runs] == [f"the feature harness's output is not acceptable: {message}"] * 2


def test_a_whole_run_failure_is_every_cases_error() -> None:
    execution = executors.Execution(Outcome.TIMED_OUT, "the feature's run timed out after 120 s", 120.0)
    runs = read_feature_cases(execution, [case("a"), case("b")])
    assert [(r.results, r.error) for r in runs] == [(None, "the feature's run timed out after 120 s")] * 2


# --------------------------------------------------------------------------- the sandbox executor on a fake sandbox


def test_the_sandbox_executor_runs_the_feature_harness_and_cleans_up(tmp_path: Path) -> None:
    fake = FakeSandbox()
    work = tmp_path / "work"
    work.mkdir()
    runs = run_feature_cases(executors.SandboxFeatureExecutor(fake, workdir=work), MODULES, ENERGY,
                             [case("a"), case("b", traces=False)])
    assert [r.error for r in runs] == [None, None]
    assert_same_layer_results(simulate(LAYERS, HARDWARE, traces=True), runs[0].results)
    assert_same_layer_results(simulate(LAYERS, HARDWARE), runs[1].results)
    for sandboxed, in_process in zip(runs, run_in_process(ENERGY, case("a"), case("b", traces=False))):
        assert sandboxed.tables == in_process.tables and in_process.results is not None
        assert_same_layer_results(in_process.results, sandboxed.results)
    assert feature_format.JOB_FILE in fake.inputs[0] and "boot.py" in fake.inputs[0]
    assert list(work.iterdir()) == [], "the executor left its run folders behind"


def test_the_sandbox_executor_names_the_timeout(tmp_path: Path) -> None:
    executor = executors.SandboxFeatureExecutor(FakeSandbox(Outcome.TIMED_OUT), timeout_s=7, workdir=tmp_path)
    runs = run_feature_cases(executor, MODULES, ENERGY, [case("a"), case("b")])
    assert [r.error for r in runs] == ["the feature's run timed out after 7 s"] * 2
    assert list(tmp_path.iterdir()) == []


def test_sandboxes_hand_out_a_feature_executor_on_their_slots(tmp_path: Path) -> None:
    fake = FakeSandbox()
    pool = executors.Sandboxes(lambda: fake, 1, workdir=tmp_path)
    (run,) = run_feature_cases(pool.feature_executor(timeout_s=30), MODULES, ENERGY, [case()])
    assert run.error is None and len(fake.commands) == 1


@pytest.mark.parametrize(("body", "message"), [
    ("    import socket\n    return FeatureRun(results, {})\n",
     "ForbiddenError: refused by the verifier: import socket from simcoder_candidate.feature (network access)"),
    ("    try:\n        import os\n    except ImportError:\n        pass\n    return FeatureRun(results, {})\n",
     "refused by the verifier: import os from simcoder_candidate.feature (file-system access)"),
    ("    import numpy\n    getattr(numpy, 'fromfile')('job.json')\n    return FeatureRun(results, {})\n",
     "ForbiddenError: refused by the verifier: open "),
])
def test_the_guard_refuses_what_slips_past_the_static_check(tmp_path: Path, body: str, message: str) -> None:
    code = with_body(body)
    job, arrays = make_feature_job([case("a"), case("b", explode=1)])
    execution = executors.SandboxFeatureExecutor(FakeSandbox(), workdir=tmp_path).run(
        package_files(MODULES, code), job, arrays)
    try:
        first, second = read_feature_cases(execution, [case("a"), case("b", explode=1)])
    finally:
        execution.close()
    assert first.results is None and first.error is not None and message in first.error
    assert second.error == "ZeroDivisionError: the coefficient is zero (your module line 9)"
