"""The verifier through the real Docker sandbox and sandbox/runner.py (numpy 1.24 inside the image).

Candidates are real folders written to ``tmp_path``: the reference, seeded mutants, hostile ones.
The golden SCALE-Sim cases run through the runner inside one container.  Needs the image from
``bash .ci/provision-docker.sh``; fails instead of skipping when ``SIMCODER_CI=1``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents import verifier
from agents.mutants import MUTANTS, candidate_files
from sandbox import Outcome, Sandbox, SandboxConfig, SandboxUnavailable, make_sandbox, runner
from tests.conftest import record_checked, require
from tests.helpers import load_csv_traces, read_report

pytestmark = pytest.mark.integration

PREFIX = f"simcoder-sbx-verif-{uuid.uuid4().hex[:6]}-"


def _docker(**limits: Any) -> Sandbox:
    try:
        return make_sandbox(SandboxConfig(name_prefix=PREFIX, cpus=2.0, **limits), kind="docker")
    except SandboxUnavailable as exc:
        require(False, f"no Docker sandbox: {exc}")
        raise


@pytest.fixture(scope="module")
def docker() -> Iterator[Sandbox]:
    sandbox = _docker(timeout_s=120)
    yield sandbox
    from sandbox.docker_sandbox import connect

    left = connect().containers.list(all=True, filters={"name": PREFIX})
    assert not left, f"containers left behind: {[c.name for c in left]}"


def _folder(tmp_path: Path, files: dict[str, str], name: str = "candidate") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for filename, text in files.items():
        (folder / filename).write_text(text)
    return folder


def _verify(sandbox: Sandbox, folder: Path, tmp_path: Path, **kwargs: Any) -> verifier.Verification:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    result = verifier.verify(verifier.SandboxExecutor(sandbox, folder, workdir=work, **kwargs))
    assert list(work.iterdir()) == [], "the executor left its run folders behind"
    return result


def test_reference_passes_as_a_candidate(docker: Sandbox, tmp_path: Path) -> None:
    result = _verify(docker, _folder(tmp_path, candidate_files()), tmp_path)
    assert result.passed, result.diagnosis
    assert len(result.cycle_errors) == 54 and result.total_cycle_error == 0.0


@pytest.mark.parametrize("mutant_id", ["net-os-ifmap-no-skew", "mem-drain-length", "two-filter+active"])
def test_mutant_is_rejected_and_blamed(docker: Sandbox, tmp_path: Path, mutant_id: str) -> None:
    mutant = next(m for m in MUTANTS if m.id == mutant_id)
    result = _verify(docker, _folder(tmp_path, candidate_files(mutant)), tmp_path)
    assert result.outcome is Outcome.WRONG_RESULT, result.diagnosis
    assert result.blamed == mutant.modules, result.diagnosis
    assert result.divergence is not None and result.divergence.kind == "trace"
    assert result.blame is not None and result.blame.outcome is Outcome.PASSED
    assert ", ".join(mutant.modules) in result.diagnosis and len(result.diagnosis) <= verifier.DIAGNOSIS_CHARS


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


def test_hard_exit_kills_the_runner_and_is_crashed(docker: Sandbox, tmp_path: Path) -> None:
    folder = _hostile(tmp_path, "memory", "import os\nos._exit(7)")
    result = _verify(docker, folder, tmp_path)
    assert result.outcome is Outcome.CRASHED
    assert "exit code 7" in result.message and result.blame is None


def test_infinite_loop_times_out(tmp_path: Path) -> None:
    sandbox = _docker(timeout_s=4)
    folder = _hostile(tmp_path, "network", "def schedule(mapping, hardware):\n    while True:\n        pass")
    result = _verify(sandbox, folder, tmp_path)
    assert result.outcome is Outcome.TIMED_OUT, result.diagnosis
    assert "4 s" in result.message


def test_huge_results_are_bad_output(tmp_path: Path) -> None:
    sandbox = _docker(timeout_s=60, output_limit_mib=16)
    code = ("import os\nwith open(os.path.join(os.environ['SIMCODER_OUT'], 'runs.bin'), 'wb') as f:\n"
            "    f.write(b'x' * (64 * 1024 * 1024))")
    result = _verify(sandbox, _hostile(tmp_path, "memory", code), tmp_path)
    assert result.outcome is Outcome.BAD_OUTPUT, result.diagnosis


def test_malformed_manifest_is_bad_output(docker: Sandbox, tmp_path: Path) -> None:
    code = ("import atexit, os\n"
            "def _spoil():\n"
            "    with open(os.path.join(os.environ['SIMCODER_OUT'], 'manifest.json'), 'w') as f:\n"
            "        f.write('{\"format\": \"simcoder-manifest/1\", \"runs\": [')\n"
            "atexit.register(_spoil)")
    result = _verify(docker, _hostile(tmp_path, "network", code), tmp_path)
    assert result.outcome is Outcome.BAD_OUTPUT, result.diagnosis
    assert "manifest.json is not valid JSON" in result.message


def test_forged_traces_are_caught(docker: Sandbox, tmp_path: Path) -> None:
    code = ("import atexit, os, numpy as np\n"
            "def _forge():\n"
            "    path = os.path.join(os.environ['SIMCODER_OUT'], 'runs', '0-0', 'traces.npz')\n"
            "    with np.load(path) as f:\n"
            "        arrays = {k: f[k] for k in f.files}\n"
            "    arrays['layer0/ifmap_sram'] = arrays['layer0/ifmap_sram'][:-1]\n"
            "    np.savez(path, **arrays)\n"
            "atexit.register(_forge)")
    result = _verify(docker, _hostile(tmp_path, "memory", code), tmp_path)
    assert result.outcome is Outcome.WRONG_RESULT, result.diagnosis
    assert result.divergence is not None and result.divergence.kind == "trace"


def test_memory_bomb_is_out_of_memory(tmp_path: Path) -> None:
    sandbox = _docker(timeout_s=60, memory_mib=256)
    folder = _hostile(tmp_path, "mapping", "import numpy as _np\n_hog = _np.ones((1024, 1024, 1024), dtype=_np.uint8)")
    result = _verify(sandbox, folder, tmp_path)
    assert result.outcome is Outcome.OUT_OF_MEMORY, result.diagnosis


# --------------------------------------------------------------------------- golden SCALE-Sim cases


def test_golden_cases_pass_inside_the_image(scalesim_data: Path, tmp_path: Path) -> None:
    golden = scalesim_data / "golden"
    cases = sorted(p.name for p in golden.glob("case*"))
    assert cases
    workloads = []
    for case in cases:
        kind = json.loads((golden / case / "case.json").read_text())["layer"]["kind"]
        workloads.append({"id": case, "traces": (golden / case / "layer0").is_dir(),
                          "scalesim": {"config": f"{case}/scale.cfg", "topology": f"{case}/topology.csv",
                                       "format": kind}})
    job = {"format": runner.JOB_FORMAT, "traces": False, "workloads": workloads,
           "mixes": [{"id": "reference", "modules": dict.fromkeys(runner.ROLES, "reference")}]}
    holder = _folder(tmp_path, {"job.json": json.dumps(job)}, "job")
    sandbox = _docker(timeout_s=300, memory_mib=1024)
    out = tmp_path / "out"
    result = sandbox.run(holder, golden, out, [*verifier.RUNNER_COMMAND, "/sandbox/candidate/job.json"])
    assert result.outcome is Outcome.PASSED, (result.message, result.stderr[-2000:])
    manifest = json.loads((out / runner.MANIFEST_FILE).read_text())
    assert manifest["numpy"].startswith("1.24"), manifest["numpy"]
    runs = {r["workload"]: r for r in manifest["runs"]}
    traced = 0
    for case in cases:
        run = runs[case]
        assert run["status"] == "ok", (case, run["error"])
        got = json.loads((out / run["dir"] / runner.REPORTS_FILE).read_text())["layers"]
        _, compute = read_report(golden / case / "COMPUTE_REPORT.csv")
        _, detail = read_report(golden / case / "DETAILED_ACCESS_REPORT.csv")
        assert len(got) == len(compute) == len(detail), case
        for layer, c_row, d_row in zip(got, compute, detail):
            values = [layer["figures"][name] for name in runner.FIGURES]
            expected = [*c_row, *d_row]
            for name, e, g in zip(runner.FIGURES, expected, values):
                assert abs(e - g) <= 1e-9 * max(1.0, abs(e)), f"{case}: {name}: expected {e}, got {g}"
        if (golden / case / "layer0").is_dir():
            expected_traces = load_csv_traces(golden / case / "layer0")
            with np.load(out / run["dir"] / "traces.npz") as arrays:
                for name in runner.TRACE_NAMES:
                    e, g = getattr(expected_traces, name), arrays[runner.trace_key(0, name)]
                    assert e.shape == g.shape and np.array_equal(e, g), f"{case}: {name} differs"
            traced += 1
        record_checked("golden cases inside the sandbox image", case)
    assert traced > 0
