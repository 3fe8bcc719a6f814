"""Any mix of module implementations runs: the literal memory module in place of the fast one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference_sim import memory_literal, read_config, read_topology, simulate
from reference_sim.engine import REFERENCE, Modules
from tests.conftest import SCALESIM_DATA
from tests.helpers import first_report_difference, first_result_difference, load_variant

LITERAL = REFERENCE.with_module("memory", memory_literal)
BROKEN = REFERENCE.with_module(
    "memory",
    load_variant(memory_literal, [("elif self.free < self.active_words:", "elif self.free <= self.active_words:")],
                 "drain_threshold_off_by_one"),
)
QUICK_CASES = sorted(
    p.name for p in (SCALESIM_DATA / "golden").glob("case*")
    if json.loads((p / "case.json").read_text())["scalesim_seconds"] < 0.5
)


def _run(folder: Path, modules: Modules) -> list:  # type: ignore[type-arg]
    meta = json.loads((folder / "case.json").read_text())
    config = read_config(folder / "scale.cfg")
    return simulate(read_topology(folder / "topology.csv", meta["layer"]["kind"]), config.hardware, modules,
                    traces=True)


def test_literal_memory_matches_scalesim_and_fast_memory_on_golden_cases(scalesim_data: Path) -> None:
    assert len(QUICK_CASES) > 50
    for case in QUICK_CASES:
        folder = scalesim_data / "golden" / case
        literal = _run(folder, LITERAL)
        difference = first_report_difference(case, literal, folder)
        assert difference is None, difference
        assert first_result_difference(case, _run(folder, REFERENCE), literal) is None


def test_broken_literal_memory_changes_results(scalesim_data: Path) -> None:
    changed = [case for case in QUICK_CASES
               if first_report_difference(case, _run(scalesim_data / "golden" / case, BROKEN),
                                          scalesim_data / "golden" / case)]
    assert len(changed) >= 10, f"a wrong drain threshold changed only {changed}"


def test_modules_mix_by_role() -> None:
    mixed = REFERENCE.with_module("memory", memory_literal)
    assert mixed.mapping is REFERENCE.mapping and mixed.network is REFERENCE.network
    assert mixed.memory is memory_literal
    with pytest.raises(TypeError):
        REFERENCE.with_module("planner", memory_literal)
