"""The standalone package: it runs with numpy alone and writes exactly the reference's reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.package import (
    MANIFEST_FILE,
    REFERENCE_DIR,
    PackageError,
    import_problems,
    package_name_for,
    write_package,
)
from judge.mutants import MUTANTS, candidate_files
from reference_sim.errors import SimCoderError
from reference_sim.reports import REPORT_FILES

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME = "tiny_run_sim"
TOPOLOGY = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
conv1, 12, 12, 3, 3, 4, 20, 1,
conv2, 9, 7, 2, 3, 40, 8, 2,
pw, 5, 5, 1, 1, 24, 30, 1,
"""
GEMM_TOPOLOGY = """Layer, M, N, K,
g1, 20, 9, 30,
g2, 1, 17, 5,
"""


def _config(run_name: str, *, mode: str = "CALC", sram_kib: int = 64, dataflow: str = "os", rows: int = 8,
            cols: int = 8) -> str:
    return f"""[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {sram_kib}
FilterSramSzkB: {sram_kib}
OfmapSramSzkB: {sram_kib}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : 4
Dataflow : {dataflow}
MemoryBanks: 1

[run_presets]
InterfaceBandwidth: {mode}
"""


def _candidate(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _numpy_only(tmp_path: Path) -> Path:
    """A folder holding numpy alone (links to the host's numpy and its bundled libraries)."""
    deps = tmp_path / "deps"
    if not deps.exists():
        deps.mkdir()
        numpy_dir = Path(np.__file__).resolve().parent
        for source in (numpy_dir, numpy_dir.with_name("numpy.libs")):
            if source.exists():
                (deps / source.name).symlink_to(source, target_is_directory=True)
    return deps


def _isolated(tmp_path: Path, parent: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the interpreter without site-packages (``-S``) and with PYTHONPATH = package parent + numpy only."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join((str(parent), str(_numpy_only(tmp_path))))}
    return subprocess.run([sys.executable, "-S", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _reference(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reference_sim", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference's modules written as a package: ``<tmp>/pkgs/tiny_run_sim``."""
    base = tmp_path_factory.mktemp("package")
    candidate = _candidate(base / "candidate", candidate_files(None))
    return write_package(candidate, base / "pkgs", NAME)


def _inputs(tmp_path: Path, cfg_text: str, topology: str = TOPOLOGY) -> tuple[Path, Path]:
    cfg, topo = tmp_path / "arch.cfg", tmp_path / "net.csv"
    cfg.write_text(cfg_text)
    topo.write_text(topology)
    return cfg, topo


def _reports(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in REPORT_FILES}


def test_the_isolated_interpreter_sees_numpy_and_nothing_of_ours(tmp_path: Path, package: Path) -> None:
    probe = ("import numpy\n"
             "for name in ('reference_sim', 'agents', 'judge', 'taskbench', 'pydantic', 'yaml'):\n"
             "    try:\n"
             "        __import__(name)\n"
             "    except ImportError:\n"
             "        continue\n"
             "    raise SystemExit(f'{name} is importable')\n"
             f"import {NAME}\n"
             "print('isolated')\n")
    result = _isolated(tmp_path, package.parent, ["-c", probe])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "isolated"


@pytest.mark.parametrize(("label", "cfg_kwargs", "topology", "extra"), [
    ("calc_os", {}, TOPOLOGY, []),
    ("user_small_sram_ws", {"mode": "USER", "sram_kib": 1, "dataflow": "ws"}, TOPOLOGY, []),
    ("gemm_is", {"dataflow": "is", "rows": 4, "cols": 6}, GEMM_TOPOLOGY, ["--gemm"]),
])
def test_reports_match_the_reference(tmp_path: Path, package: Path, label: str, cfg_kwargs: dict[str, object],
                                     topology: str, extra: list[str]) -> None:
    cfg, topo = _inputs(tmp_path, _config(label, **cfg_kwargs), topology)  # type: ignore[arg-type]
    ours = _isolated(tmp_path, package.parent, ["-m", NAME, "-c", str(cfg), "-t", str(topo), "-p",
                                                str(tmp_path / "ours"), *extra])
    assert ours.returncode == 0, ours.stderr
    reference_args = [a if a != "--gemm" else "-i=gemm" for a in extra]
    theirs = _reference(tmp_path, ["-c", str(cfg), "-t", str(topo), "-p", str(tmp_path / "ref"), *reference_args])
    assert theirs.returncode == 0, theirs.stderr
    assert _reports(tmp_path / "ours" / label) == _reports(tmp_path / "ref" / label)
    assert ours.stdout.splitlines()[:-1] == theirs.stdout.splitlines()[:-1]  # the summary table, not the path line
    if label.startswith("user"):
        assert any(float(row.split(",")[2]) > 0 for row in _reports(tmp_path / "ours" / label)
                   ["COMPUTE_REPORT.csv"].splitlines()[1:]), "expected stalls with 1 KiB SRAMs and USER bandwidth"


def test_traces_match_the_reference(tmp_path: Path, package: Path) -> None:
    cfg, topo = _inputs(tmp_path, _config("traced", mode="USER", sram_kib=2))
    ours = _isolated(tmp_path, package.parent, ["-m", NAME, "-c", str(cfg), "-t", str(topo), "-p",
                                                str(tmp_path / "ours"), "--traces", "both", "-q"])
    assert ours.returncode == 0, ours.stderr
    theirs = _reference(tmp_path, ["-c", str(cfg), "-t", str(topo), "-p", str(tmp_path / "ref"), "--traces", "both",
                                   "-q"])
    assert theirs.returncode == 0, theirs.stderr
    ours_dir, ref_dir = tmp_path / "ours" / "traced", tmp_path / "ref" / "traced"
    files = sorted(p.relative_to(ref_dir) for p in ref_dir.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(ours_dir) for p in ours_dir.rglob("*") if p.is_file())
    assert len([f for f in files if f.name.endswith("_TRACE.csv")]) == 6 * 3
    for rel in files:
        if rel.suffix == ".npz":
            with np.load(ours_dir / rel) as a, np.load(ref_dir / rel) as b:
                assert sorted(a.files) == sorted(b.files)
                for key in a.files:
                    np.testing.assert_array_equal(a[key], b[key])
        else:
            assert (ours_dir / rel).read_bytes() == (ref_dir / rel).read_bytes(), rel
    bare = _isolated(tmp_path, package.parent, ["-m", NAME, "-c", str(cfg), "-t", str(topo), "-p",
                                                str(tmp_path / "bare"), "--traces", "-q"])
    assert bare.returncode == 0, bare.stderr
    assert sorted(p.name for p in (tmp_path / "bare" / "traced" / "layer0").iterdir()) == sorted(
        p.name for p in (ref_dir / "layer0").iterdir() if p.suffix == ".csv")


def test_a_mutant_gives_different_reports(tmp_path: Path, package: Path) -> None:
    mutant = next(m for m in MUTANTS if m.id == "map-row-folds-floor")
    mutated = write_package(_candidate(tmp_path / "mutant", candidate_files(mutant)), tmp_path / "pkgs", NAME)
    cfg, topo = _inputs(tmp_path, _config("mut"))
    args = ["-m", NAME, "-c", str(cfg), "-t", str(topo), "-q"]
    bad = _isolated(tmp_path, mutated.parent, [*args, "-p", str(tmp_path / "bad")])
    good = _isolated(tmp_path, package.parent, [*args, "-p", str(tmp_path / "good")])
    assert bad.returncode == 0 and good.returncode == 0, bad.stderr + good.stderr
    bad_reports, good_reports = _reports(tmp_path / "bad" / "mut"), _reports(tmp_path / "good" / "mut")
    assert bad_reports["COMPUTE_REPORT.csv"] != good_reports["COMPUTE_REPORT.csv"]
    bad_cycles = [float(r.split(",")[1]) for r in bad_reports["COMPUTE_REPORT.csv"].splitlines()[1:]]
    good_cycles = [float(r.split(",")[1]) for r in good_reports["COMPUTE_REPORT.csv"].splitlines()[1:]]
    assert bad_cycles != good_cycles


def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, package: Path) -> None:
    cfg, topo = _inputs(tmp_path, _config("bad"), TOPOLOGY + "broken, 3, 3, 5, 1, 1, 1, 1,\n")
    cases = [
        ["-c", str(tmp_path / "missing.cfg"), "-t", str(topo)],
        ["-c", str(cfg), "-t", str(topo)],
        ["-t", str(topo)],
        ["-c", str(cfg), "-t", str(topo), "--traces", "sideways"],
    ]
    expected = ["missing.cfg: file not found", "net.csv:5: filter height 5 is larger than ifmap height 3",
                "the following arguments are required: -c", "argument --traces: invalid choice"]
    for args, message in zip(cases, expected):
        result = _isolated(tmp_path, package.parent, ["-m", NAME, *args, "-p", str(tmp_path / "out")])
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)
    assert not (tmp_path / "out" / "bad").exists()


def test_a_crashing_module_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    files = candidate_files(None)
    files["network.py"] += "\n\ndef schedule(mapping, hardware):\n    raise ZeroDivisionError('oops')\n"
    pkg = write_package(_candidate(tmp_path / "crash", files), tmp_path / "pkgs", NAME)
    cfg, topo = _inputs(tmp_path, _config("crash"))
    result = _isolated(tmp_path, pkg.parent, ["-m", NAME, "-c", str(cfg), "-t", str(topo), "-p", str(tmp_path)])
    assert result.returncode == 1
    assert result.stderr.strip() == "error: the simulator failed on layer 0 (conv1): ZeroDivisionError: oops"


def test_package_contents(package: Path) -> None:
    names = {p.name for p in package.iterdir() if p.is_file()}
    assert names == {"__init__.py", "__main__.py", "cli.py", "README.txt", MANIFEST_FILE, "mapping.py", "network.py",
                     "memory.py", "contract.py", "errors.py", "engine.py", "reports.py", "scalesim_io.py",
                     "progress.py"}
    for glue in ("contract.py", "errors.py", "engine.py", "reports.py", "scalesim_io.py", "progress.py"):
        assert (package / glue).read_bytes() == (REFERENCE_DIR / glue).read_bytes()
    assert (package / "memory.py").read_text() == candidate_files(None)["memory.py"]
    readme = (package / "README.txt").read_text()
    assert f"python -m {NAME} -c scale.cfg -t resnet50.csv -p out" in readme and "numpy" in readme
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    assert manifest["format"] == "simcoder-package/1" and manifest["name"] == NAME
    assert set(manifest["files"]) == names - {MANIFEST_FILE}
    assert import_problems(package) == []


def test_the_import_check_catches_the_full_reference() -> None:
    problems = import_problems(REFERENCE_DIR, "reference_sim")
    assert any(p.startswith("spec.py:") and "import yaml" in p for p in problems), problems
    assert any("pydantic" in p for p in problems), problems


def test_helper_files_are_shipped(tmp_path: Path) -> None:
    files = candidate_files(None)
    files["folds.py"] = "import math\n\n\ndef ceil_div(a: int, b: int) -> int:\n    return math.ceil(a / b)\n"
    files["mapping.py"] = files["mapping.py"].replace("from .contract import (", "from .folds import ceil_div\n"
                                                      "from .contract import (", 1)
    pkg = write_package(_candidate(tmp_path / "c", files), tmp_path / "pkgs", NAME)
    assert (pkg / "folds.py").read_text() == files["folds.py"]
    assert "folds.py" in json.loads((pkg / MANIFEST_FILE).read_text())["candidate_files"]


@pytest.mark.parametrize(("edit", "match"), [
    (lambda f: f.pop("memory.py"), r"the candidate has no memory\.py"),
    (lambda f: f.update({"mapping.py": "from reference_sim.contract import Layer\n" + f["mapping.py"]}),
     r"mapping\.py:1: from reference_sim\.contract import \.\.\. \(not numpy"),
    (lambda f: f.update({"helper.py": "import pydantic\n"}), r"helper\.py:1: import pydantic"),
    (lambda f: f.update({"network.py": f["network.py"] + "\nX = __import__('yaml')\n"}), r"__import__\('yaml'\)"),
    (lambda f: f.update({"memory.py": f["memory.py"] + "\nfrom ..agents import verifier\n"}),
     r"relative import beyond the package"),
    (lambda f: f.update({"network.py": f["network.py"].replace("def schedule(", "def schedule_it(")}),
     r"network\.py: defines no schedule\(\)"),
    (lambda f: f.update({"contract.py": f["contract.py"] + "\nEXTRA = 1\n"}), r"differs from reference_sim/contract"),
    (lambda f: f.update({"engine.py": "X = 1\n"}), r"engine\.py is a file of the package itself"),
    (lambda f: f.update({"mapping.py": "def map_layer(:\n"}), r"does not parse"),
])
def test_refusals(tmp_path: Path, edit: object, match: str) -> None:
    files = candidate_files(None)
    edit(files)  # type: ignore[operator]
    dest = tmp_path / "pkgs"
    with pytest.raises(PackageError, match=match) as caught:
        write_package(_candidate(tmp_path / "c", files), dest, NAME)
    assert isinstance(caught.value, SimCoderError) and isinstance(caught.value, ValueError)
    assert not dest.exists() or list(dest.iterdir()) == [], "a refused package left files behind"


def test_overwrite_replaces_the_whole_package(tmp_path: Path) -> None:
    files = candidate_files(None)
    files["helper.py"] = "VALUE = 1\n"
    first = write_package(_candidate(tmp_path / "one", files), tmp_path / "pkgs", NAME)
    assert (first / "helper.py").exists()
    mutant = next(m for m in MUTANTS if m.id == "map-row-folds-floor")
    second = write_package(_candidate(tmp_path / "two", candidate_files(mutant)), tmp_path / "pkgs", NAME)
    assert second == first
    assert not (second / "helper.py").exists(), "a file of the old package survived"
    assert (second / "mapping.py").read_text() == candidate_files(mutant)["mapping.py"]
    assert [p.name for p in (tmp_path / "pkgs").iterdir()] == [NAME], "temporary folders left behind"


def test_a_foreign_folder_is_not_overwritten(tmp_path: Path) -> None:
    foreign = tmp_path / "pkgs" / NAME
    foreign.mkdir(parents=True)
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(PackageError, match="not a package written by SimulatorCoder"):
        write_package(_candidate(tmp_path / "c", candidate_files(None)), tmp_path / "pkgs", NAME)
    assert (foreign / "precious.txt").read_text() == "keep me"
    assert [p.name for p in (tmp_path / "pkgs").iterdir()] == [NAME]


@pytest.mark.parametrize(("spec_name", "expected"), [
    ("scale_example_run_32x32_os", "scale_example_run_32x32_os_sim"),
    ("my-net.v2", "my_net_v2_sim"),
    ("3x3 tiles", "sim_3x3_tiles_sim"),
    ("Edge--Cases", "edge_cases_sim"),
    ("", "sim_sim"),
    ("already_sim", "already_sim"),
    ("json", "json_sim"),
    ("class", "class_sim"),
    ("naïve", "na_ve_sim"),
])
def test_package_name_for(spec_name: str, expected: str) -> None:
    name = package_name_for(spec_name)
    assert name == expected
    assert name.isidentifier() and name.isascii()


@pytest.mark.parametrize("name", ["bad-name", "1abc", "json", "numpy", "class", "", "a.b"])
def test_bad_package_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(PackageError, match="package name"):
        write_package(_candidate(tmp_path / "c", candidate_files(None)), tmp_path / "pkgs", name)
