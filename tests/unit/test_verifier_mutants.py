"""The verifier's power test: every seeded mutant is rejected and blamed on the module it breaks.

Runs in-process on scale_sim.yaml's verification suite (edge_cases x 6 variants).  The table of
verdicts is printed (``pytest -s`` or ``-rA``) and written to the terminal.
"""

from __future__ import annotations

import time

import pytest

from agents import verifier
from agents.mutants import DOUBLE_MUTANTS, MUTANTS, ROLES, SINGLE_MUTANTS, Mutant, build


def test_mutant_table_is_big_enough() -> None:
    assert len(SINGLE_MUTANTS) >= 30
    for role in ROLES:
        assert sum(m.modules == (role,) for m in SINGLE_MUTANTS) >= 8, role
    assert len(DOUBLE_MUTANTS) >= 6
    assert all(len(m.modules) == 2 for m in DOUBLE_MUTANTS)
    assert len({m.id for m in MUTANTS}) == len(MUTANTS)


def _row(mutant: Mutant, result: verifier.Verification, seconds: float) -> str:
    div = result.divergence
    where = "-"
    if div is not None:
        where = f"{div.workload.split('@')[1]} L{div.layer} " + (
            f"{div.trace} r{div.row} c{div.column}" if div.kind == "trace" else
            div.figure or div.kind)
    blame = "+".join(result.blamed) or "-"
    return (f"{mutant.id:28} {'+'.join(mutant.modules):15} {result.outcome.value:12} {blame:22} "
            f"{'ok' if set(result.blamed) == set(mutant.modules) else 'WRONG':5} {seconds:5.2f}s  {where}")


def test_every_mutant_is_rejected_and_blamed(request: pytest.FixtureRequest) -> None:
    suite = verifier.default_suite()
    lines = [f"{'mutant':28} {'module':15} {'verdict':12} {'blame':22} {'':5} {'time':6}  first divergence"]
    survivors: list[str] = []
    right_single = 0
    wrong_double: list[str] = []
    start = time.perf_counter()
    for mutant in MUTANTS:
        t = time.perf_counter()
        result = verifier.verify(verifier.InProcessExecutor(build(mutant)), suite)
        lines.append(_row(mutant, result, time.perf_counter() - t))
        if result.passed:
            survivors.append(mutant.id)
        elif len(mutant.modules) == 1:
            right_single += result.blamed == mutant.modules
        elif not set(mutant.modules) <= set(result.blamed):
            wrong_double.append(mutant.id)
    total = time.perf_counter() - start
    lines.append(f"{len(MUTANTS)} mutants in {total:.1f} s: {len(MUTANTS) - len(survivors)} rejected; exact blame "
                 f"{right_single}/{len(SINGLE_MUTANTS)} single-module, "
                 f"{len(DOUBLE_MUTANTS) - len(wrong_double)}/{len(DOUBLE_MUTANTS)} two-module with both named")
    for line in lines:
        print(line)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and request.config.get_verbosity() >= 0:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)
    assert not survivors, f"mutants not rejected: {survivors}"
    assert right_single >= 0.9 * len(SINGLE_MUTANTS)
    assert not wrong_double, f"two-module mutants without both modules blamed: {wrong_double}"
