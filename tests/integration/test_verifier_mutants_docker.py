"""The verifier's power test through the real Docker sandbox: every mutant, as a candidate folder.

Each mutant of :mod:`judge.mutants` is written as a folder (the reference's modules with the seeded
edit, and a copy of the contract) and verified with :class:`judge.executors.SandboxExecutor`:
rejected, blame exactly the mutated modules, each with per-stage evidence.  The table is printed.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from judge import executors, verifier
from judge.mutants import MUTANTS, candidate_files
from sandbox import SandboxConfig, SandboxUnavailable, make_sandbox
from tests.conftest import require
from tests.helpers import mutant_table, show, write_folder

pytestmark = pytest.mark.integration


def test_every_mutant_is_rejected_and_blamed_through_docker(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    try:
        sandbox = make_sandbox(SandboxConfig(name_prefix=f"simcoder-sbx-mut-{uuid.uuid4().hex[:6]}-", cpus=2.0,
                                             timeout_s=120), kind="docker")
    except SandboxUnavailable as exc:
        require(False, f"no Docker sandbox: {exc}")
        raise
    results = []
    for mutant in MUTANTS:
        folder = write_folder(tmp_path / mutant.id, candidate_files(mutant))
        start = time.perf_counter()
        result = verifier.verify(executors.SandboxExecutor(sandbox, folder, workdir=tmp_path))
        results.append((mutant, result, time.perf_counter() - start))
    lines, wrong = mutant_table(results)
    show(request, lines)
    assert len(results) >= 55
    assert not [m.id for m, r, _ in results if r.passed], "mutants not rejected"
    assert not wrong, f"mutants without exact blame and stage evidence: {wrong}"
