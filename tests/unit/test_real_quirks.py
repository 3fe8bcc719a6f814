"""Quirks of a real local model's answers (tests/data/real_model/quirks, kept as the benchmark saved them), each
handled by the extractor or answered with a message that says exactly what was wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents import coder, skeleton
from agents.extract import ExtractionError, extract_code, top_level_names
from taskbench import hidden, passk
from taskbench.suite import load_suite

QUIRKS = Path(__file__).resolve().parents[1] / "data" / "real_model" / "quirks"
SUITE = load_suite()


def _answer(name: str) -> tuple[Any, str]:
    kept: dict[str, Any] = json.loads((QUIRKS / f"{name}.json").read_text(encoding="utf-8"))
    return SUITE.task(kept["task"]), kept["calls"][-1]["answer"]


def test_copied_contract_classes_in_an_earlier_block_are_left_out() -> None:
    """Qwen2.5-Coder-1.5B copied `Hardware` and `OperandTiling` from the prompt into a first block (cut short
    with `...`, without importing `dataclass`), then wrote `_tilings` in a second.  The copies once went into
    the module, which failed to import (NameError: dataclass); now the unit runs and is judged on its own."""
    task, answer = _answer("mapping._tilings.os-square.s0")
    found = passk.extract(task, answer)
    assert isinstance(found, str)
    assert "_tilings" in top_level_names(found)
    assert not top_level_names(found) & {"Hardware", "OperandTiling"}
    verdict = hidden.judge(SUITE, task, found, hidden.Runner())
    assert "import failed" not in verdict.detail


def test_an_answer_that_only_copies_the_contract_is_told_so() -> None:
    task, answer = _answer("mapping._tilings.is-thin.s0")
    found = passk.extract(task, answer)
    assert isinstance(found, hidden.Judgement) and found.failure == "interface"
    assert "`Hardware`, `OperandTiling` are already imported in the module" in found.detail
    assert "do not copy their definitions" in found.detail


def test_a_unit_answer_keeps_its_helpers_and_imports_but_not_its_copies_of_imported_names() -> None:
    answer = ("import math\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Hardware:\n    rows: int\n\n\n"
              "OperandName = str\n\n\ndef _half(n):\n    return math.ceil(n / 2)\n\n\n"
              "def _tilings(hardware):\n    return _half(hardware.array_rows)\n")
    assert {"Hardware", "OperandName", "math", "np"} <= skeleton.skeleton("mapping").imported
    kept = coder.unit_answer("mapping", "_tilings", answer)
    assert top_level_names(kept) == {"_half", "_tilings"}
    assert kept.startswith("import math\n")
    assert coder.unit_answer("mapping", "_tilings", kept) == kept


def test_provided_names_neither_pull_an_earlier_block_nor_count_as_missing_help() -> None:
    answer = ("```python\nclass Hardware:\n    ...\n```\n\n```python\ndef _tilings(hardware: Hardware):\n"
              "    return {}\n```\n")
    assert "class Hardware" in extract_code(answer, required=["_tilings"])
    assert "class Hardware" not in extract_code(answer, required=["_tilings"], provided={"Hardware"})
    with pytest.raises(ExtractionError) as raised:
        extract_code("```python\nclass Hardware:\n    ...\n```\n", required=["_tilings"], provided={"Hardware"})
    assert "`Hardware` is already imported in the module: use it as given, do not copy its definition" in str(
        raised.value)
