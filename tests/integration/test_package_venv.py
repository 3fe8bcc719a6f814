"""The standalone package in a fresh virtual environment that holds numpy and nothing else.

How numpy gets into the venv: ``pip install numpy`` through the configured registry, which is what a
user of the package does (pip reads the machine's pip configuration, so an offline mirror or wheel
folder configured there is used; on the CI machine it is a local file index, no network needed).
Only when that install fails (no registry reachable) does the test copy the host's numpy (the
``numpy`` and ``numpy.libs`` folders and its ``dist-info``) into the venv's site-packages: the point
of the test is the package's independence from this repository, not pip, and the copy is the same
numpy the unit tests use.  Which way was taken is printed (``pytest -s``) and recorded in the test's
properties (``record_property``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agents.package import write_package
from agents.package_features import builtin_feature
from features.builtin import BUILTINS
from features.catalogue import load_catalogue, resolve_params
from features.reports import write_tables
from judge.mutants import candidate_files
from reference_sim.reports import REPORT_FILES, write_reports
from reference_sim.scalesim_io import read_config, read_topology

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME = "scale_example_run_32x32_os_sim"
RUN_NAME = "scale_example_run_32x32_os"
TOPOLOGY = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 30, 30, 3, 3, 3, 40, 1,
Conv2, 14, 14, 3, 3, 40, 70, 2,
FC, 1, 1, 1, 1, 300, 50, 1,
"""
FEATURES = {
    "energy": {"pj_per_mac": 0.56, "dram_read_pj_per_word": 64.0},
    "batch": {"batch_images": 2},
    "cores": {"cores": 2},
    "sparsity": {"kept_weights": 2, "group_weights": 4},
    "memory_banks": {"sram_banks": 4, "sram_bank_ports": 2},
}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _venv_site_packages(venv: Path) -> Path:
    found = subprocess.run([str(_venv_python(venv)), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                           capture_output=True, text=True, check=True, env=_clean_env())
    return Path(found.stdout.strip())


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _copy_host_numpy(site: Path) -> None:
    numpy_dir = Path(np.__file__).resolve().parent
    host_site = numpy_dir.parent
    for source in (numpy_dir, host_site / "numpy.libs", *host_site.glob(f"numpy-{np.__version__}.dist-info")):
        if source.is_dir():
            shutil.copytree(source, site / source.name, symlinks=True)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh venv with numpy only, and how numpy got there."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env(), timeout=300)
    install = subprocess.run([str(_venv_python(venv)), "-m", "pip", "install", "--no-input",
                              "--disable-pip-version-check", "-q", "numpy"],
                             capture_output=True, text=True, env=_clean_env(), timeout=600, check=False)
    how = "pip install numpy (configured registry)"
    if install.returncode != 0:
        _copy_host_numpy(_venv_site_packages(venv))
        how = f"copied the host's numpy {np.__version__} (pip failed: {install.stderr.strip().splitlines()[-1:]})"
    print(f"venv numpy: {how}")
    return venv, how


@pytest.fixture
def venv(fresh_venv: tuple[Path, str], record_property: Callable[[str, object], None]) -> Path:
    """The fresh venv; records in the test's properties how numpy was installed."""
    record_property("venv_numpy", fresh_venv[1])
    return fresh_venv[0]


def _in_venv(venv: Path, cwd: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_venv_python(venv)), *args], cwd=cwd, capture_output=True, text=True,
                          env=_clean_env(), timeout=600, check=False)


def test_the_venv_holds_numpy_and_nothing_of_ours(venv: Path, tmp_path: Path) -> None:
    probe = ("import numpy, importlib.metadata as md\n"
             "names = sorted(d.metadata['Name'].lower() for d in md.distributions())\n"
             "for name in ('reference_sim', 'agents', 'sandbox', 'pydantic', 'yaml', 'langgraph'):\n"
             "    try:\n"
             "        __import__(name)\n"
             "    except ImportError:\n"
             "        continue\n"
             "    raise SystemExit(f'{name} is importable')\n"
             "print(','.join(n for n in names if n not in ('pip', 'setuptools', 'wheel')))\n")
    result = _in_venv(venv, tmp_path, ["-c", probe])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"


def test_the_package_runs_scale_cfg_in_the_venv(venv: Path, tmp_path: Path, scalesim_data: Path) -> None:
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    for name, text in candidate_files(None).items():
        (candidate / name).write_text(text)
    package = write_package(candidate, tmp_path / "dist", NAME)
    cfg = scalesim_data / "configs" / "scale.cfg"
    topology = tmp_path / "small.csv"
    topology.write_text(TOPOLOGY)

    ours = _in_venv(venv, package.parent,
                    ["-m", NAME, "-c", str(cfg), "-t", str(topology), "-p", str(tmp_path / "ours")])
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run([sys.executable, "-m", "reference_sim", "-c", str(cfg), "-t", str(topology), "-p",
                             str(tmp_path / "ref")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
    assert theirs.returncode == 0, theirs.stderr
    for report in REPORT_FILES:
        produced = (tmp_path / "ours" / RUN_NAME / report).read_text()
        assert produced == (tmp_path / "ref" / RUN_NAME / report).read_text(), report
        assert len(produced.splitlines()) == 4, report
    assert ours.stdout.splitlines()[:-1] == theirs.stdout.splitlines()[:-1]

    bad = _in_venv(venv, package.parent, ["-m", NAME, "-c", str(cfg), "-t", str(tmp_path / "nope.csv")])
    assert bad.returncode == 2 and bad.stderr.strip().endswith("nope.csv: file not found")


def test_the_package_writes_every_features_reports_in_the_venv(venv: Path, tmp_path: Path, scalesim_data: Path,
                                                               feature_api: Path) -> None:
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    for name, text in candidate_files(None).items():
        (candidate / name).write_text(text)
    catalogue = load_catalogue()
    package = write_package(candidate, tmp_path / "dist", NAME,
                            [builtin_feature(name, params, catalogue) for name, params in FEATURES.items()])
    cfg = scalesim_data / "configs" / "scale.cfg"
    topology = tmp_path / "small.csv"
    topology.write_text(TOPOLOGY)

    ours = _in_venv(venv, package.parent,
                    ["-m", NAME, "-c", str(cfg), "-t", str(topology), "-p", str(tmp_path / "ours"), "-q"])
    assert ours.returncode == 0, ours.stderr
    layers, hardware = read_topology(topology), read_config(cfg).hardware
    for name, params in FEATURES.items():
        definition = catalogue[name].definition
        run = BUILTINS[name](layers, hardware, resolve_params(definition, params, "test"))
        host = tmp_path / "host" / name
        write_reports(run.results, host)
        write_tables(run.tables, {r.file: r.columns for r in definition.reports}, host)
        folder = tmp_path / "ours" / RUN_NAME / "features" / name
        produced = sorted(p.name for p in folder.iterdir())
        assert produced == sorted([*REPORT_FILES, *(r.file for r in definition.reports)]), name
        for report in produced:
            assert (folder / report).read_text() == (host / report).read_text(), (name, report)
