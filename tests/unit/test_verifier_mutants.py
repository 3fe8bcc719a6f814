"""The verifier's power test, in-process: every seeded mutant is rejected and blamed, with stage evidence.

Runs :func:`judge.verifier.verify` (traces on, off, and the final check) on scale_sim.yaml's suite
for every mutant of :mod:`judge.mutants`; blame must name exactly the mutated modules, each with
its per-stage evidence.  The table is printed; the same test through Docker is
``tests/integration/test_verifier_mutants_docker.py``.
"""

from __future__ import annotations

import time

import pytest

from judge import executors, verifier
from judge.mutants import DOUBLE_MUTANTS, MUTANTS, ROLES, SINGLE_MUTANTS, build
from tests.helpers import mutant_table, show


def test_mutant_table_is_big_enough() -> None:
    assert len(MUTANTS) >= 55
    for role in ROLES:
        assert sum(m.modules == (role,) for m in SINGLE_MUTANTS) >= 8, role
    assert sum(m.only == "traces_off" for m in MUTANTS) >= 8
    assert sum(m.only == "npot" for m in MUTANTS) >= 5
    assert len(DOUBLE_MUTANTS) >= 6
    assert all(len(m.modules) == 2 for m in DOUBLE_MUTANTS)
    assert len({m.id for m in MUTANTS}) == len(MUTANTS)


def test_every_mutant_is_rejected_and_blamed_exactly(request: pytest.FixtureRequest) -> None:
    results = []
    for mutant in MUTANTS:
        start = time.perf_counter()
        result = verifier.verify(executors.InProcessExecutor(build(mutant)))
        results.append((mutant, result, time.perf_counter() - start))
    lines, wrong = mutant_table(results)
    show(request, lines)
    assert not [m.id for m, r, _ in results if r.passed], "mutants not rejected"
    assert not wrong, f"mutants without exact blame and stage evidence: {wrong}"
