"""The in-context examples are verified code of a different simulator, never the reference's.

The toy vector-unit simulator in ``prompts/examples/toy`` (its mapping, network and memory modules,
the code the models are shown) is run against the toy's literal, cycle-by-cycle reference on
randomised inputs.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import random
import re
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from agents import prompts as pr

TOY_PACKAGE = "simcoder_toy_example"
REFERENCE_NAMES = ("map_layer", "schedule", "simulate")
CASES = 200


@pytest.fixture(scope="module")
def toy() -> Iterator[dict[str, ModuleType]]:
    """The toy package's modules, imported without writing bytecode into prompts/."""
    spec = importlib.util.spec_from_file_location(TOY_PACKAGE, pr.TOY_DIR / "__init__.py",
                                                  submodule_search_locations=[str(pr.TOY_DIR)])
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    sys.modules[TOY_PACKAGE] = package
    try:
        spec.loader.exec_module(package)
        yield {name: importlib.import_module(f"{TOY_PACKAGE}.{name}")
               for name in ("contract", "mapping", "network", "memory", "literal")}
    finally:
        sys.dont_write_bytecode = before
        for name in [n for n in sys.modules if n == TOY_PACKAGE or n.startswith(TOY_PACKAGE + ".")]:
            del sys.modules[name]


def _run(toy: dict[str, ModuleType], job: object, unit: object) -> dict[str, Any]:
    plan = toy["mapping"].plan_passes(job, unit)
    timing = toy["network"].time_passes(plan, unit)
    outcome = toy["memory"].run_passes(plan, timing, unit, record=True)
    quiet = toy["memory"].run_passes(plan, timing, unit)
    assert quiet == outcome and quiet.trace is None
    return {
        "utilisation": plan.utilisation,
        "pass_cycles": timing.pass_cycles.tolist(),
        "total_cycles": outcome.total_cycles,
        "stall_cycles": outcome.stall_cycles,
        "dram_words": outcome.dram_words,
        "trace": outcome.trace.tolist(),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toy_modules_match_the_literal_toy_reference(toy: dict[str, ModuleType], seed: int) -> None:
    rng = random.Random(seed)
    contract = toy["contract"]
    waited = 0
    for case in range(CASES):
        job = contract.VectorJob(f"case{case}", rng.randint(1, 400), rng.randint(0, 5000))
        unit = contract.VectorUnit(lanes=rng.randint(1, 17), issue_width=rng.randint(1, 9),
                                   pipeline_depth=rng.randint(0, 6), buffer_words=rng.randint(2, 80),
                                   dram_words_per_cycle=rng.randint(1, 12))
        got = _run(toy, job, unit)
        expected = toy["literal"].literal_run(job, unit, record=True)
        assert got == expected, f"seed {seed} case {case}: {job} {unit}"
        waited += got["stall_cycles"] > got["trace"][0][0]
    assert waited, "no case where a later pass waits: the check is too weak"


def test_memory_reasoning_hand_check_is_right(toy: dict[str, ModuleType]) -> None:
    contract = toy["contract"]
    got = _run(toy, contract.VectorJob("hand", 5, 0), contract.VectorUnit(2, 2, 0, 4, 1))
    assert [row[0] for row in got["trace"]] == [2, 4, 6]
    assert got["stall_cycles"] == 4 and got["dram_words"] == 6
    assert "stall `[2, 3, 4]`, start `[2, 4, 6]`, DRAM words 6" in pr.examples("memory", reasoning=True)


def _example_texts() -> dict[str, str]:
    texts = {p.name: p.read_text() for p in pr.TOY_DIR.glob("*.py")}
    texts.update({p.name: p.read_text() for p in (pr.PROMPTS_DIR / "examples").glob("*.md")})
    for role in pr.ROLES:
        texts[f"examples({role})"] = pr.examples(role, reasoning=True)
    texts["unit_example()"] = pr.unit_example(reasoning=True)
    return texts


def test_unit_example_shows_one_toy_unit_with_its_imports(toy: dict[str, ModuleType]) -> None:
    text = pr.unit_example(reasoning=True)
    code = text.split("```python\n", 1)[1].rsplit("\n```", 1)[0]
    defined = [node.name for node in ast.parse(code).body if isinstance(node, ast.FunctionDef)]
    assert defined == ["_ready_cycles"]
    assert code.startswith("import numpy as np\nfrom .contract import PassPlan\n") and "__future__" not in code
    assert "#### Example reasoning" in text and "#### Example reasoning" not in pr.unit_example()
    unit = toy["contract"].VectorUnit(lanes=2, issue_width=2, pipeline_depth=0, buffer_words=4, dram_words_per_cycle=1)
    plan = toy["mapping"].plan_passes(toy["contract"].VectorJob("hand", 5, 0), unit)
    assert toy["memory"]._ready_cycles(plan, 2, 2, 1).tolist() == [2, 4, 6]
    assert "words `[2, 4, 6]`, ready `[2, 4, 6]`" in text


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_examples_never_name_the_reference_functions(name: str) -> None:
    for source, text in _example_texts().items():
        assert not re.search(rf"\b{name}", text), f"{source} mentions {name}"


def test_examples_never_import_the_reference() -> None:
    for source, text in _example_texts().items():
        assert "reference_sim" not in text, source
    for path in pr.TOY_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 1 or node.module in ("__future__", "dataclasses", "math"), path
            elif isinstance(node, ast.Import):
                assert all(a.name in ("numpy", "math") for a in node.names), path


@pytest.mark.parametrize("role", pr.ROLES)
def test_examples_show_task_then_code(role: str) -> None:
    text = pr.examples(role)
    task, answer = text.split("#### Example answer", 1)
    assert "#### Example task" in task and "Required interface" in task and "class VectorUnit" in task
    code = answer.split("```python\n", 1)[1].rsplit("\n```", 1)[0]
    assert code == (pr.TOY_DIR / f"{role}.py").read_text().strip()
    ast.parse(code)
    assert "#### Example reasoning" not in text and "#### Example reasoning" in pr.examples(role, reasoning=True)
