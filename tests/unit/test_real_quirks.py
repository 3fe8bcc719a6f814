"""Quirks of a real local model's answers (tests/data/real_model/quirks, kept as the benchmark saved them), each
handled by the extractor or answered with a message that says exactly what was wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from agents import coder, llm, loops, skeleton
from agents.extract import ExtractionError, extract_code, top_level_names
from taskbench import hidden, passk
from taskbench.suite import load_suite
from tests import fakes

REPO = Path(__file__).resolve().parents[2]
QUIRKS = REPO / "tests" / "data" / "real_model" / "quirks"
SUITE = load_suite()


def _answer(name: str) -> tuple[Any, str]:
    kept: dict[str, Any] = json.loads((QUIRKS / f"{name}.json").read_text(encoding="utf-8"))
    return SUITE.task(kept["task"]), kept["calls"][-1]["answer"]


def _streamed(answer: str, reason: str) -> tuple[llm.Answer, str]:
    """``answer`` streamed by an OpenAI-style endpoint: the answer as stopped for ``reason`` (a start of the real
    one) and the benchmark's `truncated` message for it."""
    stopped = llm.ask(fakes.OpenAIEndpoint(lambda r: answer).model, [HumanMessage("write the unit")])
    assert stopped.finish_reason == reason and answer.startswith(stopped.text)
    found = passk.truncated(stopped)
    assert found.failure == "truncated"
    return stopped, found.detail


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


def test_copied_contract_aliases_are_imported_from_the_contract() -> None:
    """The same model copied the whole contract excerpt above `map_layer`, type aliases included
    (`Dataflow = Literal[...]` with `Literal` never imported): the module failed to import.  Now the copies of
    names the header imports are dropped, the other contract names are imported from the contract, and
    `map_layer` is judged on what it computes."""
    task, answer = _answer("mapping.map_layer.os-rect.s0")
    found = passk.extract(task, answer)
    assert isinstance(found, str)
    assert top_level_names(found) == {"map_layer"}
    assert found.startswith("from __future__ import annotations\n\nfrom .contract import BandwidthMode, Dataflow, "
                            "OperandMatrix\n")
    assert "Output, weight or input stationary" not in found
    verdict = hidden.judge(SUITE, task, found, hidden.Runner())
    assert "import failed" not in verdict.detail and verdict.failure == "wrong"


def test_an_answer_cut_off_while_looping_is_told_it_was_looping() -> None:
    """The model wrote the same ten lines of `prefetch_order` 17 times until the length limit cut it off
    (2,048 tokens, 403 s): the sample is `truncated`, and the message says it looped and where."""
    _, answer = _answer("mapping.prefetch_order.os-rect.s0")
    found = passk.truncated(llm.Answer(answer, 3252, 2048, 403.0, finish_reason="length"))
    assert found.failure == "truncated"
    assert found.detail.startswith("your answer was cut off after 2048 tokens: it kept writing "
                                   "the same 10 lines over and over (17 times in a row at its end, from `# Calculate "
                                   "the number of blocks in the current block`)")
    assert coder.truncated_review(2048, "def f():\n    return 1\n\nprint(").problem.startswith(
        "your answer was cut off at the length limit after 2048 tokens, before it ended.")
    assert coder.truncated_review(0, answer).problem.startswith("your answer was cut off: it kept writing the same "
                                                                "10 lines")


def test_a_real_looping_answer_is_stopped_while_it_streams() -> None:
    """Streamed as the server sent it, the same answer is stopped at its fifth time through the ten lines, 41 %
    of the way to the limit it reached in 403 s; the sample is `truncated` and told it looped."""
    _, answer = _answer("mapping.prefetch_order.os-rect.s0")
    stopped, detail = _streamed(answer, "loop")
    assert len(stopped.text) < len(answer) / 2
    assert detail.startswith(f"your answer was cut off after {stopped.output_tokens} tokens: it kept writing "
                             "the same 10 lines over and over (5 times in a row at its end")


@pytest.mark.parametrize("source", sorted((REPO / "reference_sim").glob("*.py")) + sorted(
    (REPO / "agents").glob("*.py")), ids=lambda p: p.name)
def test_code_that_does_not_loop_is_never_called_looping(source: Path) -> None:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    assert [cut for cut in range(10, len(lines), 3) if loops.repeated_tail("".join(lines[:cut]))] == []


def test_a_real_outline_copy_is_stopped_while_it_streams() -> None:
    """With icl, 7 of the first 16 answers copied the prompt's outline of the module (header, contract, every stub
    with `...` for a body) until the 2,048-token limit cut them, 300 to 570 s each.  Streamed, this one is stopped
    at its sixth stub, under a quarter of the way, and told what it was doing."""
    _, answer = _answer("icl.network.fold_demand.ws-calc.s0")
    assert coder.truncated_review(2048, answer).problem.startswith(
        "your answer was cut off after 2048 tokens: it was copying the module's outline from the prompt (21 functions")
    stopped, detail = _streamed(answer, "outline")
    assert len(stopped.text) < len(answer) / 4
    assert detail.startswith(f"your answer was cut off after {stopped.output_tokens} tokens: it was copying "
                             "the module's outline from the prompt (6 functions with `...` for a body)")


@pytest.mark.parametrize("path", sorted((REPO / "tests" / "data" / "real_model").rglob("*.json")), ids=lambda p: p.name)
def test_no_other_real_answer_is_stopped_while_it_streams(path: Path) -> None:
    """Every prefix of every other real answer (each line as it ends) runs on unstopped."""
    answer = json.loads(path.read_text(encoding="utf-8"))["calls"][-1]["answer"]
    expected = {"mapping.prefetch_order.os-rect.s0.json": "loop", "icl.network.fold_demand.ws-calc.s0.json": "outline"}
    ends = [i + 1 for i, char in enumerate(answer) if char == "\n"]
    reasons = {loops.stop_reason(answer[:end]) for end in ends} - {None}
    assert reasons == ({expected[path.name]} if path.name in expected else set())


def test_a_fence_opened_at_the_end_of_a_heading_is_a_fence() -> None:
    """With cot, the model echoed the prompt's last step as a heading and opened the block on the same line
    (`### Complete definition of `_tilings` (same name and signature) in one ```python`): the code was taken
    for prose (`no_code`, 1,394 tokens thrown away); now it is judged on what it computes."""
    task, answer = _answer("cot.mapping._tilings.os-square.s0")
    found = passk.extract(task, answer)
    assert isinstance(found, str) and found.startswith("import numpy as np\n\ndef _tilings(")
    verdict = hidden.judge(SUITE, task, found, hidden.Runner())
    assert (verdict.failure, verdict.stage) == ("wrong", "mapping")
    assert "lane_axis: expected 'col', got 'row'" in verdict.detail


@pytest.mark.parametrize("prose", ["Use a ```python block for the code, please.", "A line with ```python` in it",
                                   "ends with a fence of another language ```yaml"])
def test_a_fence_inside_or_after_prose_of_another_kind_opens_nothing(prose: str) -> None:
    answer = f"{prose}\nx = (\n```python\ndef f():\n    return 1\n```\n"
    assert extract_code(answer, required=["f"]) == "def f():\n    return 1\n"


def test_an_import_copied_from_the_icl_example_is_named_in_the_crash() -> None:
    """With icl, the model copied the toy example's `from .contract import PassPlan` above `_tilings`; the
    real contract has no `PassPlan`, and the crash names the import and the line, so a retry can drop it."""
    task, answer = _answer("icl.mapping._tilings.is-thin.s0")
    found = passk.extract(task, answer)
    assert isinstance(found, str) and "from .contract import PassPlan" in found
    verdict = hidden.judge(SUITE, task, found, hidden.Runner())
    assert (verdict.failure, verdict.stage) == ("crash", "mapping")
    assert "import failed: ImportError: cannot import name 'PassPlan'" in verdict.detail
    assert re.search(r'mapping\.py", line \d+, in <module>', verdict.detail)


def test_a_placeholder_answer_is_told_it_is_a_placeholder() -> None:
    """The model handed back the signature of `fold_demand` with two comments for a body
    (`# Implementation of fold_demand goes here`, `# ...`): once told only `expected an indented block`."""
    task, answer = _answer("network.fold_demand.ws-calc.s0")
    found = passk.extract(task, answer)
    assert isinstance(found, hidden.Judgement) and found.failure == "syntax"
    assert found.detail.startswith("The Python code in your answer does not parse: function `fold_demand` (line 3) "
                                   "has no body, only comments (`# ...`): a placeholder is not an answer.")
    stub = ('```python\ndef fold_demand(mapping, network, name, row_fold, col_fold):\n    """The demand."""\n'
            '    ...\n```')
    with pytest.raises(ExtractionError, match="leaves `fold_demand` as a placeholder"):
        extract_code(stub, required=["fold_demand"])
    assert "return 1" in extract_code(stub.replace("    ...", "    return 1"), required=["fold_demand"])


def test_an_answer_that_only_copies_the_contract_is_told_so() -> None:
    task, answer = _answer("mapping._tilings.is-thin.s0")
    found = passk.extract(task, answer)
    assert isinstance(found, hidden.Judgement) and found.failure == "interface"
    assert "`Hardware`, `OperandTiling` are given to your code (the module's imports, the contract)" in found.detail
    assert "do not copy their definitions" in found.detail


def test_a_unit_answer_keeps_its_helpers_and_imports_but_not_its_copies_of_imported_names() -> None:
    answer = ("import math\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Hardware:\n    rows: int\n\n\n"
              "OperandName = str\n\n\ndef _half(n):\n    return math.ceil(n / 2)\n\n\n"
              "def _tilings(hardware):\n    return _half(hardware.array_rows)\n")
    assert {"Hardware", "OperandName", "math", "np"} <= skeleton.skeleton("mapping").imported
    kept = coder.unit_answer("mapping", "_tilings", answer)
    assert kept == ("import math\n\nfrom dataclasses import dataclass\n\n\ndef _half(n):\n    return math.ceil(n / 2)"
                    "\n\n\ndef _tilings(hardware):\n    return _half(hardware.array_rows)\n")
    assert coder.unit_answer("mapping", "_tilings", kept) == kept
    aliased = "Dataflow = str\n\"\"\"Its doc.\"\"\"\n\n\ndef _tilings(hardware):\n    return {}\n"
    assert coder.unit_answer("mapping", "_tilings", aliased) == ("from .contract import Dataflow\n\n"
                                                                 "def _tilings(hardware):\n    return {}\n")
    assert "Dataflow" not in skeleton.skeleton("mapping").imported
    assert {"Dataflow", "OperandMatrix", "dense_block"} <= skeleton.contract_names()
    assert "np" not in skeleton.contract_names()


def test_provided_names_neither_pull_an_earlier_block_nor_count_as_missing_help() -> None:
    answer = ("```python\nclass Hardware:\n    ...\n```\n\n```python\ndef _tilings(hardware: Hardware):\n"
              "    return {}\n```\n")
    assert "class Hardware" in extract_code(answer, required=["_tilings"])
    assert "class Hardware" not in extract_code(answer, required=["_tilings"], provided={"Hardware"})
    with pytest.raises(ExtractionError) as raised:
        extract_code("```python\nclass Hardware:\n    ...\n```\n", required=["_tilings"], provided={"Hardware"})
    assert "`Hardware` is given to your code (the module's imports, the contract): use it as given, do not copy its " \
           "definition" in str(raised.value)
