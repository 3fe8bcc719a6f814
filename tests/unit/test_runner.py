"""sandbox/runner.py in-process: candidate folders as packages, mixes, the manifest, candidate errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.mutants import candidate_files
from agents.verifier import CANDIDATE_MIX, Workload, load_suite, make_job, swap_mix
from sandbox import runner

SUITE: tuple[Workload, ...] = tuple(
    Workload(w.id, w.hardware, w.layers[:2]) for w in load_suite()[:2]
)


def _folder(tmp_path: Path, files: dict[str, str], name: str = "cand") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for filename, text in files.items():
        (folder / filename).write_text(text)
    return folder


def _run(tmp_path: Path, files: dict[str, str], mixes: list[object] | None = None) -> dict[str, object]:
    job = make_job(SUITE, mixes or [CANDIDATE_MIX])  # type: ignore[arg-type]
    out = tmp_path / "out"
    out.mkdir()
    return runner.execute_job(runner.validate_job(job), _folder(tmp_path, files), out)


def test_reference_copy_passes_and_writes_reports_traces_and_manifest(tmp_path: Path) -> None:
    manifest = _run(tmp_path, candidate_files())
    assert json.loads((tmp_path / "out" / runner.MANIFEST_FILE).read_text()) == manifest
    runs = manifest["runs"]
    assert isinstance(runs, list) and [r["status"] for r in runs] == ["ok", "ok"]
    assert manifest["candidate_modules"] == {role: {"status": "ok"} for role in runner.ROLES}
    reports = json.loads((tmp_path / "out" / runs[0]["dir"] / runner.REPORTS_FILE).read_text())
    assert [layer["name"] for layer in reports["layers"]] == [layer.name for layer in SUITE[0].layers]
    expected = runner.run_workload("ref", SUITE[0].to_json(), runner.reference_adapters(), traces=True)
    assert reports["layers"][0]["figures"] == expected.layers[0].figures
    with np.load(tmp_path / "out" / runs[0]["dir"] / "traces.npz") as traces:
        assert len(traces.files) == 6 * len(SUITE[0].layers)
        for layer in expected.layers:
            assert layer.traces is not None
            for name, array in layer.traces.items():
                np.testing.assert_array_equal(traces[runner.trace_key(layer.index, name)], array)


def test_candidate_without_contract_copy_uses_the_reference_contract(tmp_path: Path) -> None:
    files = candidate_files()
    del files["contract.py"]
    manifest = _run(tmp_path, files)
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok"]  # type: ignore[index]


def test_own_contract_classes_are_converted_between_candidate_and_reference_modules(tmp_path: Path) -> None:
    files = candidate_files()
    files["mapping.py"] += "\nassert LayerMapping.__module__ == 'simcoder_candidate.contract'\n"
    manifest = _run(tmp_path, files, [CANDIDATE_MIX, swap_mix("network"), swap_mix("memory")])
    assert [r["status"] for r in manifest["runs"]] == ["ok"] * 6  # type: ignore[index]


def test_import_error_is_reported_with_module_and_traceback(tmp_path: Path) -> None:
    files = candidate_files()
    files["mapping.py"] += "\nimport scipy_is_not_in_the_image\n"
    manifest = _run(tmp_path, files, [CANDIDATE_MIX, swap_mix("mapping")])
    runs = manifest["runs"]
    assert isinstance(runs, list)
    failed = runs[0]["error"]
    assert runs[0]["status"] == "error"
    assert (failed["module"], failed["stage"], failed["type"]) == ("mapping", "import", "ModuleNotFoundError")
    assert "scipy_is_not_in_the_image" in failed["traceback"] and "Traceback" in failed["traceback"]
    assert [r["status"] for r in runs[2:]] == ["ok", "ok"]  # the mix without the candidate's mapping runs
    assert manifest["candidate_modules"]["mapping"]["status"] == "error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("role", "old", "new", "stage", "error_type"),
    [
        ("network", "    rows, cols, temporal = mapping.array_rows",
         "    1 / 0\n    rows, cols, temporal = mapping.array_rows", "call", "ZeroDivisionError"),
        ("mapping", '    """Map one layer onto the array for the hardware\'s dataflow."""',
         '    """Map one layer."""\n    return None', "result", "TypeError"),
        ("memory", "import bisect", "import bisect\nraise SystemExit(3)", "import", "SystemExit"),
        ("network", "    return NetworkSchedule(\n        fold_cycles=fold_cycles,",
         "    return NetworkSchedule(\n        fold_cycles='many',", "result", "TypeError"),
    ],
)
def test_candidate_faults_are_named(tmp_path: Path, role: str, old: str, new: str, stage: str,
                                    error_type: str) -> None:
    files = candidate_files()
    assert files[f"{role}.py"].count(old) == 1
    files[f"{role}.py"] = files[f"{role}.py"].replace(old, new)
    manifest = _run(tmp_path, files)
    error = manifest["runs"][0]["error"]  # type: ignore[index]
    assert (error["module"], error["stage"], error["type"]) == (role, stage, error_type)
    assert error["layer"] in (0, None)


def test_missing_module_file_is_an_import_fault(tmp_path: Path) -> None:
    files = candidate_files()
    del files["memory.py"]
    error = _run(tmp_path, files)["runs"][0]["error"]  # type: ignore[index]
    assert (error["module"], error["stage"]) == ("memory", "import")


@pytest.mark.parametrize(
    "job",
    [
        {},
        {"format": runner.JOB_FORMAT, "workloads": [], "mixes": [{"id": "c", "modules": {}}]},
        {"format": runner.JOB_FORMAT, "workloads": [{"id": "w", "hardware": {"bogus": 1}, "layers": []}],
         "mixes": [{"id": "c", "modules": dict.fromkeys(runner.ROLES, "candidate")}]},
        {"format": runner.JOB_FORMAT, "workloads": [{"id": "w", "hardware": {}, "layers": []}],
         "mixes": [{"id": "c", "modules": {"mapping": "mine"}}]},
    ],
)
def test_bad_jobs_are_rejected(job: dict[str, object]) -> None:
    with pytest.raises(runner.JobError):
        runner.validate_job(job)


def test_main_exits_2_on_a_bad_job_and_0_on_a_good_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    cand = _folder(tmp_path, candidate_files())
    monkeypatch.setenv("SIMCODER_INPUTS", str(inputs))
    monkeypatch.setenv("SIMCODER_OUT", str(out))
    monkeypatch.setenv("SIMCODER_CANDIDATE", str(cand))
    (inputs / runner.JOB_FILE).write_text("{not json")
    assert runner.main([]) == 2
    (inputs / runner.JOB_FILE).write_text(json.dumps(make_job(SUITE[:1], [CANDIDATE_MIX])))
    assert runner.main([]) == 0
    assert (out / runner.MANIFEST_FILE).is_file()


def test_scalesim_workloads_are_read_from_the_inputs_folder(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "scale.cfg").write_text(
        "[general]\nrun_name = t\n[architecture_presets]\nArrayHeight: 4\nArrayWidth: 4\nIfmapSramSzkB: 1\n"
        "FilterSramSzkB: 1\nOfmapSramSzkB: 1\nIfmapOffset: 0\nFilterOffset: 10000000\nOfmapOffset: 20000000\n"
        "Bandwidth : 2\nDataflow : ws\n[run_presets]\nInterfaceBandwidth: USER\n")
    (inputs / "t.csv").write_text("Layer, M, N, K,\ng, 5, 6, 7,\n")
    job = {"format": runner.JOB_FORMAT, "traces": False,
           "workloads": [{"id": "g", "scalesim": {"config": "scale.cfg", "topology": "t.csv", "format": "gemm"}}],
           "mixes": [{"id": "reference", "modules": dict.fromkeys(runner.ROLES, "reference")}]}
    out = tmp_path / "out"
    out.mkdir()
    manifest = runner.execute_job(runner.validate_job(job), None, out, inputs)
    assert manifest["runs"][0]["status"] == "ok"  # type: ignore[index]
    assert not (out / "runs" / "0-0" / "layer0").exists()


def test_digest_jobs_write_fingerprints_instead_of_traces(tmp_path: Path) -> None:
    job = {**make_job(SUITE[:1], [CANDIDATE_MIX]), "trace_digests": True}
    out = tmp_path / "out"
    out.mkdir()
    runner.execute_job(runner.validate_job(job), _folder(tmp_path, candidate_files()), out)
    assert not (out / "runs" / "0-0" / "traces.npz").exists()
    layers = json.loads((out / "runs" / "0-0" / runner.REPORTS_FILE).read_text())["layers"]
    expected = runner.run_workload("ref", SUITE[0].to_json(), runner.reference_adapters(), traces=True)
    assert expected.layers[1].traces is not None
    assert layers[1]["digests"] == {name: runner.trace_digest(a) for name, a in expected.layers[1].traces.items()}
    assert runner.trace_digest(np.zeros((2, 3))) != runner.trace_digest(np.zeros((3, 2)))


def test_forked_workers_give_the_same_runs_in_order(tmp_path: Path) -> None:
    job = {**make_job(SUITE, [CANDIDATE_MIX, swap_mix("memory")]), "workers": 2}
    out = tmp_path / "out"
    out.mkdir()
    manifest = runner.execute_job(runner.validate_job(job), _folder(tmp_path, candidate_files()), out)
    runs = manifest["runs"]
    assert [(r["mix"], r["workload"], r["status"]) for r in runs] == [  # type: ignore[union-attr]
        (m, w.id, "ok") for m in ("candidate", "swap-memory") for w in SUITE]
    assert all((out / r["dir"] / "traces.npz").is_file() for r in runs)  # type: ignore[union-attr]


def test_a_worker_that_dies_leaves_its_runs_as_errors(tmp_path: Path) -> None:
    files = candidate_files()
    files["network.py"] = files["network.py"].replace(
        "    rows, cols, temporal = mapping.array_rows",
        "    import os\n    if os.getpid() != PARENT:\n        os._exit(9)\n"
        "    rows, cols, temporal = mapping.array_rows")
    files["network.py"] += "\nimport os as _os\nPARENT = _os.getpid()\n"
    job = {**make_job(SUITE, [CANDIDATE_MIX]), "workers": 2}
    out = tmp_path / "out"
    out.mkdir()
    runs = runner.execute_job(runner.validate_job(job), _folder(tmp_path, files), out)["runs"]
    assert [r["status"] for r in runs] == ["ok", "error"]  # type: ignore[index]
    assert runs[1]["workload"] == SUITE[1].id and runs[1]["error"]["type"] == "WorkerDied"  # type: ignore[index]


def test_unreadable_scalesim_workload_is_a_job_error_not_a_crash(tmp_path: Path) -> None:
    job = {"format": runner.JOB_FORMAT, "workloads": [{"id": "gone", "scalesim": {"config": "no.cfg",
                                                                                   "topology": "no.csv"}}],
           "mixes": [{"id": "reference", "modules": dict.fromkeys(runner.ROLES, "reference")}]}
    out = tmp_path / "out"
    out.mkdir()
    run = runner.execute_job(runner.validate_job(job), None, out, tmp_path)["runs"][0]  # type: ignore[index]
    assert run["status"] == "error" and run["error"]["module"] == "job"
