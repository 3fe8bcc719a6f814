"""A user's own reference run in the real Docker sandbox: its expected results come from the container.

Needs the image from ``bash .ci/provision-docker.sh``; fails instead of skipping when ``SIMCODER_CI=1``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from judge import compare, executors, reference_runs, suites, user_reference, verifier
from judge.mutants import MUTANTS, build, candidate_files
from reference_sim import engine
from sandbox import Outcome, Sandbox
from tests.helpers import docker_sandbox, write_folder

pytestmark = pytest.mark.integration

PREFIX = f"simcoder-sbx-uref-{uuid.uuid4().hex[:6]}-"
SUITE = tuple(suites.Workload(w.id, w.hardware, w.layers[:3]) for w in suites.load_suite()[:2])
FINAL = tuple(suites.Workload(w.id, w.hardware, w.layers[:2]) for w in suites.load_final_check()[:1])
MUTANT = next(m for m in MUTANTS if m.id == "mem-total-plus1")


@pytest.fixture(scope="module")
def docker() -> Iterator[Sandbox]:
    yield docker_sandbox(PREFIX, timeout_s=120)
    from sandbox.docker_sandbox import connect

    left = connect().containers.list(all=True, filters={"name": PREFIX})
    assert not left, f"containers left behind: {[c.name for c in left]}"


def test_a_users_reference_gives_its_expected_results_from_docker(docker: Sandbox, tmp_path: Path) -> None:
    own = write_folder(tmp_path / "own_reference", candidate_files(MUTANT))
    work = tmp_path / "work"
    work.mkdir()
    pool = executors.Sandboxes(lambda: docker, 2, timeout_s=120, workdir=work)
    suite, final = user_reference.expected_suites(own, pool.executor, SUITE, FINAL)
    assert list(work.iterdir()) == [], "the reference's run folders were removed"
    host = engine.Modules(**build(MUTANT))
    for workload, traced in [*((w, True) for w in suite), *((w, False) for w in (*suite, *final))]:
        want = reference_runs.reference_run(dataclasses.replace(workload, reference=host, expected=None,
                                                                expected_untraced=None), traced)
        for w, h in zip(want, reference_runs.reference_run(workload, traced), strict=True):
            assert w.figures == h.figures
            assert compare.first_field_difference(w.memory, h.memory, "MemoryResult") is None
    builtin = verifier.verify(pool.executor(write_folder(tmp_path / "builtin", candidate_files())), suite,
                              final_check=final)
    assert builtin.outcome is Outcome.WRONG_RESULT and builtin.blamed == ("memory",), builtin.diagnosis
    same = verifier.verify(pool.executor(write_folder(tmp_path / "same", candidate_files(MUTANT))), suite,
                           final_check=final)
    assert same.passed, same.diagnosis


def test_a_crashing_users_reference_in_docker_is_named(docker: Sandbox, tmp_path: Path) -> None:
    files = candidate_files()
    files["memory.py"] += "\n\ndef simulate(mapping, network, hardware, *, traces=False):\n    raise ValueError('no')\n"
    own = write_folder(tmp_path / "own_reference", files).resolve()
    executor_for = executors.Sandboxes(lambda: docker, 1, timeout_s=120).executor
    with pytest.raises(user_reference.UserReferenceError,
                       match=rf"^the user's reference in {own} crashed on workload {SUITE[0].id} \(traces on\): "
                             r"the memory module raised: ValueError: no"):
        user_reference.expected_suites(own, executor_for, SUITE[:1])
