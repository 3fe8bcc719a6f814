"""The harness: candidate folders as packages, tasks per stage, faults named, the manifest, the run-time guard.

In-process runs use :func:`harness.run_tasks`; the entry point and the guard run as a real child
process (``python -I boot.py`` over staged inputs), as in the sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judge import compare, executors, jobs, reference_runs, suites
from judge.harness import harness, wire
from judge.mutants import candidate_files
from reference_sim import contract
from tests.helpers import write_folder

WORKLOADS = tuple(suites.Workload(w.id, w.hardware, w.layers[:2]) for w in suites.load_suite()[:2])


def _folder(tmp_path: Path, files: dict[str, str], name: str = "cand") -> Path:
    return write_folder(tmp_path / name, files)


def _tasks(start: str = "mapping", stop: str = "memory", traces: bool = True) -> list[jobs.Task]:
    return [jobs.Task(f"{start}-{stop}/{w.id}", w, start, stop, traces) for w in WORKLOADS]


def _run(folder: Path | None, tasks: list[jobs.Task], modules: dict[str, Any] | None = None,
         workers: int = 1) -> tuple[list[dict[str, Any]], dict[int, dict[str, np.ndarray]]]:
    job, arrays = jobs.make_job(tasks, workers)
    candidate = harness.Candidate(folder, modules=modules, contract=contract,
                                  shipped=executors.SHIPPED_CONTRACT[0].parent)
    out: dict[int, dict[str, np.ndarray]] = {}

    def keep(i: int, result: harness.TaskResult) -> None:
        out[i] = result.arrays

    return harness.run_tasks(job, arrays, candidate, keep), out


def test_reference_copy_outputs_every_stage_exactly(tmp_path: Path) -> None:
    entries, arrays = _run(_folder(tmp_path, candidate_files()), _tasks())
    assert [e["status"] for e in entries] == ["ok", "ok"]
    for i, workload in enumerate(WORKLOADS):
        decoder = wire.Decoder(contract, arrays[i])
        for layer, ref in zip(entries[i]["layers"], reference_runs.reference_run(workload, True)):
            for key, type_name, expected in (("mapping", "LayerMapping", ref.mapping),
                                             ("schedule", "NetworkSchedule", ref.schedule),
                                             ("memory", "MemoryResult", ref.memory)):
                got = decoder.decode(type_name, layer[key])
                assert compare.first_field_difference(expected, got, type_name) is None, key


@pytest.mark.parametrize("carry_contract", [True, False])
def test_the_contract_is_provided_or_the_candidates_own_copy_is_used(tmp_path: Path, carry_contract: bool) -> None:
    files = candidate_files()
    if not carry_contract:
        del files["contract.py"]
    files["network.py"] = files["network.py"].replace(
        "    rows, cols, temporal = mapping.array_rows",
        "    assert type(mapping).__name__ == 'LayerMapping' and type(mapping) is LayerMapping\n"
        "    rows, cols, temporal = mapping.array_rows", 1)
    entries, _ = _run(_folder(tmp_path, files), _tasks("network", "memory"))
    assert [e["status"] for e in entries] == ["ok", "ok"], entries[0]["error"]


def test_per_stage_tasks_get_the_reference_inputs(tmp_path: Path) -> None:
    entries, arrays = _run(_folder(tmp_path, candidate_files()), _tasks("memory", "memory", traces=False))
    assert [e["status"] for e in entries] == ["ok", "ok"]
    assert set(entries[0]["layers"][0]) == {"index", "memory"}
    got = wire.Decoder(contract, arrays[0]).decode("MemoryResult", entries[0]["layers"][0]["memory"])
    assert got == reference_runs.reference_run(WORKLOADS[0], False)[0].memory_untraced and got.traces is None


def test_import_error_is_reported_with_module_and_traceback(tmp_path: Path) -> None:
    files = candidate_files()
    files["mapping.py"] += "\nimport scipy_is_not_in_the_image\n"
    entries, _ = _run(_folder(tmp_path, files), _tasks())
    failed = entries[0]["error"]
    assert entries[0]["status"] == "error" and entries[0]["layers"] == []
    assert (failed["module"], failed["stage"], failed["type"]) == ("mapping", "import", "ModuleNotFoundError")
    assert "scipy_is_not_in_the_image" in failed["traceback"] and "Traceback" in failed["traceback"]
    ok, _ = _run(_folder(tmp_path, files, "again"), _tasks("network", "memory"))
    assert [e["status"] for e in ok] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("role", "old", "new", "stage", "error_type"),
    [
        ("network", "    rows, cols, temporal = mapping.array_rows",
         "    1 / 0\n    rows, cols, temporal = mapping.array_rows", "call", "ZeroDivisionError"),
        ("mapping", '    """Map one layer onto the array for the hardware\'s dataflow."""',
         '    """Map one layer."""\n    return None', "result", "WireError"),
        ("memory", "import bisect", "import bisect\nraise SystemExit(3)", "import", "SystemExit"),
        ("network", "    return NetworkSchedule(\n        fold_cycles=fold_cycles,",
         "    return NetworkSchedule(\n        fold_cycles='many',", "result", "WireError"),
    ],
)
def test_candidate_faults_are_named(tmp_path: Path, role: str, old: str, new: str, stage: str,
                                    error_type: str) -> None:
    files = candidate_files()
    assert files[f"{role}.py"].count(old) == 1
    files[f"{role}.py"] = files[f"{role}.py"].replace(old, new)
    entries, _ = _run(_folder(tmp_path, files), _tasks())
    error = entries[0]["error"]
    assert (error["module"], error["stage"], error["type"]) == (role, stage, error_type)
    assert error["layer"] == 0


def test_missing_module_file_is_an_import_fault(tmp_path: Path) -> None:
    files = candidate_files()
    del files["memory.py"]
    error = _run(_folder(tmp_path, files), _tasks())[0][0]["error"]
    assert (error["module"], error["stage"]) == ("memory", "import")


@pytest.mark.parametrize("job", [
    {}, {"format": harness.JOB_FORMAT, "tasks": []},
    {"format": harness.JOB_FORMAT, "tasks": [{"id": "t", "start": "memory", "stop": "mapping", "hardware": {},
                                              "layers": []}]},
    {"format": harness.JOB_FORMAT, "tasks": [{"id": "t", "start": "mapping", "stop": "memory"}]},
    {"format": "simcoder-job/1", "workloads": [], "mixes": []},
])
def test_bad_jobs_are_rejected(job: dict[str, object]) -> None:
    with pytest.raises(harness.JobError):
        harness.validate_job(job)


def test_forked_workers_give_the_same_results_in_order(tmp_path: Path) -> None:
    folder = _folder(tmp_path, candidate_files())
    tasks = _tasks() + _tasks(traces=False)
    single, _ = _run(folder, tasks)
    forked, forked_arrays = _run(folder, tasks, workers=2)
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in single]
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in forked] == strip
    assert set(forked_arrays) == {0, 2}  # the parent's own tasks; the child's were written by the child


def test_a_worker_that_dies_leaves_its_tasks_as_errors() -> None:
    parent = os.getpid()
    reference = reference_runs.reference_modules()

    class DiesInChild:
        @staticmethod
        def simulate(mapping: Any, network: Any, hardware: Any, *, traces: bool = False) -> Any:
            if os.getpid() != parent:
                os._exit(3)
            return reference["memory"].simulate(mapping, network, hardware, traces=traces)

    modules = {**reference, "memory": DiesInChild}
    entries, _ = _run(None, _tasks(), modules=modules, workers=2)
    assert entries[0]["status"] == "ok"
    assert entries[1]["status"] == "error" and entries[1]["error"]["type"] == "WorkerDied"


# --------------------------------------------------------------------------- the entry point and the guard


def _main(tmp_path: Path, files: dict[str, str], tasks: list[jobs.Task] | None = None,
          job: dict[str, Any] | None = None, boot: str | None = None,
          make_out: bool = True) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = _folder(tmp_path, files)
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    made, arrays = jobs.make_job(tasks or _tasks()[:1])
    executors.stage_inputs(inputs, job if job is not None else made, arrays)
    if boot is not None:
        (inputs / executors.BOOT_FILE).write_text(boot)
    if make_out:
        out.mkdir()
    env = {"SIMCODER_CANDIDATE": str(folder), "SIMCODER_INPUTS": str(inputs), "SIMCODER_OUT": str(out),
           "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([sys.executable, "-I", str(inputs / executors.BOOT_FILE), str(tmp_path / "marker")], env=env,
                          cwd=out if make_out else tmp_path, capture_output=True, text=True, timeout=120)
    return done, out


def test_main_writes_the_manifest_and_exits_0(tmp_path: Path) -> None:
    done, out = _main(tmp_path, candidate_files())
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / harness.MANIFEST_FILE).read_text())
    assert manifest["format"] == harness.RESULTS_FORMAT
    assert [t["status"] for t in manifest["tasks"]] == ["ok"]
    assert manifest["modules"] == {role: {"status": "ok"} for role in harness.STAGES}
    assert (out / harness.task_arrays_file(0)).is_file()
    assert not list(Path(tmp_path / "cand").rglob("__pycache__"))


def test_main_exits_2_on_a_bad_job(tmp_path: Path) -> None:
    done, out = _main(tmp_path, candidate_files(), job={"format": "nonsense"})
    assert done.returncode == 2 and "bad job" in done.stderr
    assert not (out / harness.MANIFEST_FILE).exists()


@pytest.mark.parametrize(("code", "refused"), [
    ("import reference_sim\n", "import reference_sim from simcoder_candidate.mapping"),
    ("import importlib\n", "import importlib from simcoder_candidate.mapping (import machinery)"),
    ("from sys import modules\n", "import sys from simcoder_candidate.mapping (interpreter internals)"),
    ("import atexit\n", "import atexit from simcoder_candidate.mapping (exit hooks)"),
    ("import numpy as _np\n_os = getattr(getattr(_np, '_pytest' + 'tester'), 'o' + 's')\n"
     "_os.listdir('/')\n", "os.listdir '/'"),
    ("import numpy as _np\ntry:\n    getattr(_np, 'lo' + 'ad')(__file__.rsplit('/', 2)[0] + '/inputs/inputs.npz')\n"
     "except Exception:\n    pass\n", "open '"),
])
def test_the_run_time_guard_refuses_and_reports(tmp_path: Path, code: str, refused: str) -> None:
    files = candidate_files()
    files["mapping.py"] += "\n" + code
    done, out = _main(tmp_path, files)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / harness.MANIFEST_FILE).read_text())
    task = manifest["tasks"][0]
    assert any(refused in r for r in task["refused"]), task


def test_the_guard_refuses_nothing_the_reference_needs(tmp_path: Path) -> None:
    done, out = _main(tmp_path, candidate_files(), tasks=_tasks() + _tasks("memory", "memory"))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / harness.MANIFEST_FILE).read_text())
    assert all(t["refused"] == [] and t["status"] == "ok" for t in manifest["tasks"]), manifest["tasks"]


HOOKED_BOOT = (
    "import atexit\n"
    "import sys\n"
    "from pathlib import Path\n"
    "sys.path.insert(0, str(Path(__file__).resolve().parent))\n"
    "atexit.register(Path(sys.argv[1]).write_text, 'the exit hook ran')\n"
    "from simcoder_harness.harness import main\n"
    "raise SystemExit(main())\n"
)


@pytest.mark.parametrize(("case", "code"), [("ran", 0), ("bad job", 2), ("failed", 1)])
def test_the_entry_point_ends_the_process_before_any_exit_hook(tmp_path: Path, case: str, code: int) -> None:
    done, out = _main(tmp_path, candidate_files(), boot=HOOKED_BOOT, job={"format": "nonsense"} if case == "bad job"
                      else None, make_out=case != "failed")
    assert done.returncode == code, done.stderr
    assert (out / harness.MANIFEST_FILE).is_file() is (case == "ran")
    if case == "failed":
        assert "the harness failed" in done.stderr and "Traceback" in done.stderr
    assert not (tmp_path / "marker").exists()


def test_no_finaliser_of_the_candidate_runs_at_exit(tmp_path: Path) -> None:
    files = candidate_files()
    files["mapping.py"] += ("\n\nclass _Mark:\n    path = __file__.rsplit('/', 2)[0] + '/marker'\n\n"
                            "    def __del__(self, write=open):\n"
                            "        with write(self.path, 'w') as marker:\n"
                            "            marker.write('a finaliser ran')\n\n\n"
                            "_MARK = _Mark()\n")
    done, out = _main(tmp_path, files)
    assert done.returncode == 0, done.stderr
    assert [t["status"] for t in json.loads((out / harness.MANIFEST_FILE).read_text())["tasks"]] == ["ok"]
    assert not (tmp_path / "marker").exists()


def test_the_guard_refuses_os_open_with_write_flags(tmp_path: Path) -> None:
    files = candidate_files()
    files["mapping.py"] += ("\nimport numpy as _np\n_os = getattr(getattr(_np, '_pytest' + 'tester'), 'o' + 's')\n"
                            "try:\n    _os.open(__file__.rsplit('/', 2)[0] + '/marker', _os.O_WRONLY | _os.O_CREAT)\n"
                            "except ImportError:\n    pass\n")
    done, out = _main(tmp_path, files)
    assert done.returncode == 0, done.stderr
    refused = json.loads((out / harness.MANIFEST_FILE).read_text())["tasks"][0]["refused"]
    assert any(r.startswith("open ") and "marker" in r for r in refused), refused
    assert not (tmp_path / "marker").exists()


def test_a_helper_imported_by_plain_name_is_guarded_too(tmp_path: Path) -> None:
    files = {**candidate_files(), "helpers.py": "import os\n"}
    files["mapping.py"] += "\nimport helpers\n"
    done, out = _main(tmp_path, files)
    assert done.returncode == 0, done.stderr
    task = json.loads((out / harness.MANIFEST_FILE).read_text())["tasks"][0]
    assert "import os from helpers (file-system access)" in task["refused"], task


def test_output_is_flushed_before_the_process_ends(tmp_path: Path) -> None:
    files = candidate_files()
    files["mapping.py"] += "\nprint('the candidate says hello')\n"
    done, _ = _main(tmp_path, files)
    assert done.returncode == 0, done.stderr
    assert "the candidate says hello" in done.stdout
