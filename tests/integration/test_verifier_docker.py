"""The verifier through the real Docker sandbox and the harness (numpy 1.24 inside the image).

Candidates are real folders written to ``tmp_path``: the reference, seeded mutants, hostile ones.
The golden SCALE-Sim cases run through the harness inside one container.  Needs the image from
``bash .ci/provision-docker.sh``; fails instead of skipping when ``SIMCODER_CI=1``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from judge import compare, diagnosis, executors, jobs, suites, verdict, verifier
from judge.mutants import MUTANTS, candidate_files
from sandbox import Outcome, Sandbox
from tests.conftest import record_checked
from tests.helpers import docker_sandbox, write_folder

pytestmark = pytest.mark.integration

PREFIX = f"simcoder-sbx-verif-{uuid.uuid4().hex[:6]}-"


def _docker(**limits: Any) -> Sandbox:
    return docker_sandbox(PREFIX, **limits)


@pytest.fixture(scope="module")
def docker() -> Iterator[Sandbox]:
    sandbox = _docker(timeout_s=120)
    yield sandbox
    from sandbox.docker_sandbox import connect

    left = connect().containers.list(all=True, filters={"name": PREFIX})
    assert not left, f"containers left behind: {[c.name for c in left]}"


def _folder(tmp_path: Path, files: dict[str, str], name: str = "candidate") -> Path:
    return write_folder(tmp_path / name, files)


def _verify(sandbox: Sandbox, folder: Path, tmp_path: Path, **kwargs: Any) -> verdict.Verification:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    result = verifier.verify(executors.SandboxExecutor(sandbox, folder, workdir=work, **kwargs))
    assert list(work.iterdir()) == [], "the executor left its run folders behind"
    return result


def test_reference_passes_as_a_candidate(docker: Sandbox, tmp_path: Path) -> None:
    result = _verify(docker, _folder(tmp_path, candidate_files()), tmp_path)
    assert result.passed, result.diagnosis
    assert len(result.cycle_errors) == 92 and result.total_cycle_error == 0.0


@pytest.mark.parametrize("mutant_id", ["net-os-ifmap-no-skew", "mem-drain-length", "two-filter+active"])
def test_mutant_is_rejected_and_blamed(docker: Sandbox, tmp_path: Path, mutant_id: str) -> None:
    mutant = next(m for m in MUTANTS if m.id == mutant_id)
    result = _verify(docker, _folder(tmp_path, candidate_files(mutant)), tmp_path)
    assert result.outcome is Outcome.WRONG_RESULT, result.diagnosis
    assert result.blamed == mutant.modules, result.diagnosis
    assert result.divergence is not None and result.divergence.kind == "trace"
    assert result.blame is not None and result.blame.outcome is Outcome.PASSED
    assert ", ".join(mutant.modules) in result.diagnosis and len(result.diagnosis) <= diagnosis.DIAGNOSIS_CHARS


def _hostile(tmp_path: Path, role: str, code: str) -> Path:
    files = candidate_files()
    files[f"{role}.py"] += "\n" + code + "\n"
    return _folder(tmp_path, files)


def test_crash_on_import_is_crashed_with_module_and_blame(docker: Sandbox, tmp_path: Path) -> None:
    folder = _hostile(tmp_path, "mapping", "raise RuntimeError('candidate refuses to import')")
    result = _verify(docker, folder, tmp_path)
    assert result.outcome is Outcome.CRASHED
    assert result.divergence is not None and result.divergence.kind == "error"
    assert result.divergence.module == "mapping"
    assert result.blamed == ("mapping",)
    assert "candidate refuses to import" in result.diagnosis


def test_system_exit_on_import_is_a_crash_of_that_module(docker: Sandbox, tmp_path: Path) -> None:
    folder = _hostile(tmp_path, "memory", "raise SystemExit(7)")
    result = _verify(docker, folder, tmp_path)
    assert result.outcome is Outcome.CRASHED
    assert result.blamed == ("memory",) and "SystemExit" in result.diagnosis


def test_infinite_loop_times_out(tmp_path: Path) -> None:
    sandbox = _docker(timeout_s=4)
    folder = _hostile(tmp_path, "network", "def schedule(mapping, hardware):\n    while True:\n        pass")
    result = _verify(sandbox, folder, tmp_path)
    assert result.outcome is Outcome.TIMED_OUT, result.diagnosis
    assert "4 s" in result.message


def test_huge_results_are_bad_output(tmp_path: Path) -> None:
    sandbox = _docker(timeout_s=60, output_limit_mib=16)
    code = ("import numpy as np\nfrom .contract import MemoryResult, TraceSet\n"
            "def simulate(mapping, network, hardware, *, traces=False):\n"
            "    big = np.zeros((64 * 1024 * 1024, 1), dtype=np.int8)\n"
            "    return MemoryResult(1, 0, {}, {}, {}, TraceSet(*([big] * 6)))")
    result = _verify(sandbox, _hostile(tmp_path, "memory", code), tmp_path)
    assert result.outcome is Outcome.BAD_OUTPUT, result.diagnosis


def test_memory_bomb_is_out_of_memory(tmp_path: Path) -> None:
    sandbox = _docker(timeout_s=60, memory_mib=256)
    folder = _hostile(tmp_path, "mapping", "import numpy as _np\n_hog = _np.ones((1024, 1024, 1024), dtype=_np.uint8)")
    result = _verify(sandbox, folder, tmp_path)
    assert result.outcome is Outcome.OUT_OF_MEMORY, result.diagnosis


# --------------------------------------------------------------------------- golden SCALE-Sim cases


def test_golden_cases_pass_inside_the_image(scalesim_data: Path, tmp_path: Path) -> None:
    """The reference copied as a candidate, run by the harness on the image's numpy, equals the host's reference
    (which equals SCALE-Sim's golden reports) on every golden case."""
    from reference_sim.scalesim_io import read_config, read_topology

    golden = scalesim_data / "golden"
    cases = sorted(p.name for p in golden.glob("case*"))
    assert cases
    tasks = []
    for case in cases:
        kind = json.loads((golden / case / "case.json").read_text())["layer"]["kind"]
        hardware = read_config(golden / case / "scale.cfg").hardware
        layers = tuple(read_topology(golden / case / "topology.csv", kind))
        workload = suites.Workload(case, hardware, layers)
        tasks.append(jobs.Task(f"golden/{case}", workload, "mapping", "memory", False))
    job, arrays = jobs.make_job(tasks)
    sandbox = _docker(timeout_s=300, memory_mib=1024)
    executor = executors.SandboxExecutor(sandbox, _folder(tmp_path, candidate_files()), workdir=tmp_path)
    execution = executor.run(job, arrays)
    try:
        assert execution.outcome is Outcome.PASSED, (execution.message, execution.stderr_tail)
        assert execution.manifest is not None and execution.manifest["numpy"].startswith("1.24")
        for index, task in enumerate(tasks):
            run = jobs.read_task(execution, index, task)
            _, divergence = compare.compare_pipeline(task, run, "untraced")
            assert divergence is None, divergence.describe()
            record_checked("golden cases inside the sandbox image", task.workload.id)
    finally:
        execution.close()
