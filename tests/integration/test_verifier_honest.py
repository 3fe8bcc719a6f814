"""The verifier cannot be fooled: candidates that borrow the reference instead of simulating are refused.

Real Docker sandbox.  Each borrowing candidate is refused by the static check (``forbidden``, naming
file, line and what), and, run past that check, still finds nothing: no reference module on any
path in the container, and the harness's run-time guard refuses the access.  Needs the image from
``bash .ci/provision-docker.sh``; fails instead of skipping when ``SIMCODER_CI=1``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from judge import executors, jobs, suites, verifier
from judge.mutants import candidate_files
from sandbox import Outcome, Sandbox
from tests.helpers import docker_sandbox, write_folder

pytestmark = pytest.mark.integration

PREFIX = f"simcoder-sbx-honest-{uuid.uuid4().hex[:6]}-"
SUITE = suites.default_suite()[:2]


@pytest.fixture(scope="module")
def docker() -> Iterator[Sandbox]:
    yield docker_sandbox(PREFIX, timeout_s=120)


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    return write_folder(tmp_path / "candidate", files)


def _borrow(line: str) -> dict[str, str]:
    return {f"{role}.py": line.format(role=role, function=function)
            for role, function in (("mapping", "map_layer"), ("network", "schedule"), ("memory", "simulate"))}


BORROWERS: dict[str, tuple[dict[str, str], str]] = {
    "import": (_borrow("from reference_sim.{role} import {function}\n"), "from reference_sim."),
    "importlib": (_borrow("import importlib\n"
                          "{function} = importlib.import_module('reference_sim.{role}').{function}\n"),
                  "import importlib"),
    "sys.modules": (_borrow("import sys\n{function} = sys.modules['reference_sim.{role}'].{function}\n"),
                    "attribute .modules"),
    "source on a mount": (_borrow(
        "import os\n"
        "for root, _, files in os.walk('/'):\n"
        "    if '{role}.py' in files and 'reference_sim' in root:\n"
        "        exec(open(os.path.join(root, '{role}.py')).read())\n"), "import os"),
    "gc": (_borrow(
        "import gc\n"
        "{function} = next(o for o in gc.get_objects() if getattr(o, '__name__', '') == '{function}'\n"
        "                  and getattr(o, '__module__', '') == 'reference_sim.{role}')\n"), "import gc"),
}


@pytest.mark.parametrize("kind", sorted(BORROWERS))
def test_borrowing_candidates_are_forbidden(docker: Sandbox, tmp_path: Path, kind: str) -> None:
    files, what = BORROWERS[kind]
    result = verifier.verify(executors.SandboxExecutor(docker, _folder(tmp_path, files), workdir=tmp_path), SUITE,
                             final_check=())
    assert result.outcome is Outcome.FORBIDDEN, result.diagnosis
    assert result.refusals and result.refusals[0].startswith("mapping.py:"), result.refusals
    assert any(what in r for r in result.refusals), result.refusals
    assert "REJECTED (forbidden)" in result.diagnosis


def _run_past_the_static_check(sandbox: Sandbox, folder: Path, tmp_path: Path) -> dict[str, Any]:
    tasks = [jobs.Task(f"traced/{w.id}", w, "mapping", "memory", True) for w in SUITE]
    job, arrays = jobs.make_job(tasks)
    execution = executors.SandboxExecutor(sandbox, folder, workdir=tmp_path).run(job, arrays)
    try:
        assert execution.outcome is Outcome.PASSED, execution.message
        assert execution.manifest is not None
        return execution.manifest
    finally:
        execution.close()


@pytest.mark.parametrize("kind", sorted(BORROWERS))
def test_past_the_static_check_there_is_nothing_to_borrow(docker: Sandbox, tmp_path: Path, kind: str) -> None:
    files, _ = BORROWERS[kind]
    manifest = _run_past_the_static_check(docker, _folder(tmp_path, files), tmp_path)
    for task in manifest["tasks"]:
        assert task["status"] == "error" and task["error"]["stage"] == "import", task
        assert task["layers"] == []
    text = json.dumps(manifest)
    assert any(sign in text for sign in ("refused by the verifier", "No module named 'reference_sim'", "KeyError",
                                         "StopIteration")), text[:2000]


def test_the_runtime_guard_catches_what_the_static_check_cannot_see(docker: Sandbox, tmp_path: Path) -> None:
    files = candidate_files()
    files["memory.py"] += (
        "\nimport numpy as _numpy\n"
        "_os = getattr(getattr(_numpy, '_pytest' + 'tester'), 'o' + 's')\n"
        "_seen = getattr(_os, 'list' + 'dir')('/sandbox/inputs')\n")
    result = verifier.verify(executors.SandboxExecutor(docker, _folder(tmp_path, files), workdir=tmp_path), SUITE,
                             final_check=())
    assert result.outcome is Outcome.FORBIDDEN, result.diagnosis
    assert any("os.listdir" in r for r in result.refusals), result.refusals


def test_reading_the_jobs_inputs_is_refused_at_run_time(docker: Sandbox, tmp_path: Path) -> None:
    files = candidate_files()
    files["mapping.py"] += (
        "\nimport numpy as _numpy\n"
        "_reader = getattr(_numpy, 'lo' + 'ad')\n"
        "def map_layer(layer, hardware, _original=map_layer):\n"
        "    try:\n"
        "        _reader('/sandbox/inputs/inputs.npz')\n"
        "    except Exception:\n"
        "        pass\n"
        "    return _original(layer, hardware)\n")
    result = verifier.verify(executors.SandboxExecutor(docker, _folder(tmp_path, files), workdir=tmp_path), SUITE,
                             final_check=())
    assert result.outcome is Outcome.FORBIDDEN, result.diagnosis
    assert any("open" in r and "/sandbox/inputs" in r for r in result.refusals), result.refusals


def test_no_reference_code_anywhere_in_the_container(docker: Sandbox, tmp_path: Path) -> None:
    """A plain command in the verifier's container layout: no reference module on any path or disk."""
    folder = _folder(tmp_path, candidate_files())
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    job, arrays = jobs.make_job([jobs.Task("t", SUITE[0], "mapping", "memory", False)])
    executors.stage_inputs(inputs, job, arrays)
    probe = (
        "import importlib.util, os, sys\n"
        "assert importlib.util.find_spec('reference_sim') is None\n"
        "assert importlib.util.find_spec('agents') is None\n"
        "found = []\n"
        "for root, dirs, files in os.walk('/'):\n"
        "    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ('/proc', '/sys', '/dev')]\n"
        "    if root.startswith('/sandbox/candidate'):\n"
        "        continue\n"
        "    found += [os.path.join(root, f) for f in files if f in ('memory_literal.py', 'engine.py', 'mapping.py',\n"
        "              'network.py', 'memory.py', 'table2.json') or 'reference_sim' in root]\n"
        "print('found', found)\n"
        "assert not found, found\n")
    result = docker.run(folder, inputs, out, ["python3", "-c", probe])
    assert result.outcome is Outcome.PASSED, (result.message, result.stdout[-1500:], result.stderr[-1500:])
    assert "found []" in result.stdout
