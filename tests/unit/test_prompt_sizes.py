"""Every opening prompt fits a small model's window, and the prompts of a run share their leading text.

The sizes are estimated (``taskbench.prompt_sizes.CHARS_PER_TOKEN``, below the real tokenizer's ratio on
every prompt), so a prompt under its budget here is under it for Qwen2.5-Coder's tokenizer too.
"""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents import prompts as pr
from taskbench import prompt_sizes as ps


@pytest.fixture(scope="module")
def found() -> list[ps.Prompt]:
    return list(ps.every_prompt())


def test_every_prompt_is_within_its_budget(found: list[ps.Prompt]) -> None:
    rows = ps.measure(found)
    assert {r.prompt.role for r in rows} == {"coder", "repairer", "bench"}
    assert {r.prompt.granularity for r in rows} == {"module", "function", "probe", "feature"}
    assert {r.prompt.strategy for r in rows} == set(pr.STRATEGIES)
    over = [(r.prompt.role, r.prompt.strategy, r.prompt.granularity, r.prompt.target, r.budgeted)
            for r in ps.over_limit(rows)]
    assert over == []


def test_a_feature_task_is_measured_once_as_the_feature_coders_prompt(found: list[ps.Prompt]) -> None:
    features = {p.target for p in found if p.granularity == "feature"}
    assert features and all(p.role == "coder" for p in found if p.granularity == "feature")
    assert not [p.target for p in found if p.role == "bench" and p.target.startswith("feature.")]


def test_a_prompt_over_its_budget_is_found() -> None:
    budget = ps.LIMITS["function"]
    big = "x" * int(budget * ps.CHARS_PER_TOKEN)
    over = ps.Prompt("coder", "cot", "function", "memory/simulate", [SystemMessage("s"), HumanMessage(big)])
    code = "y" * int(budget * ps.CHARS_PER_TOKEN)
    repair = ps.Prompt("repairer", "cot", "function", "memory/simulate",
                       [SystemMessage("s"), HumanMessage("fix this:\n" + code)], payload=(code,))
    rows = ps.measure([over, repair])
    assert rows[0].tokens >= budget and rows[1].tokens >= budget
    assert [r.prompt.role for r in ps.over_limit(rows)] == ["coder"], "a repair's code is not counted"


def test_one_system_message_everywhere(found: list[ps.Prompt]) -> None:
    assert all(isinstance(p.messages[0], SystemMessage) and len(p.messages) == 2 for p in found)
    systems = {p.texts[0] for p in found}
    optimiser = pr.optimiser_messages(role="memory", description="d", architecture="a", code="c", profile="p")
    systems.add(str(optimiser[0].content))
    assert len(systems) == 1


MODULE_BLOCKS = ("## The module: ", "### The contract (", "## Domain notes: ", "### Required interface")
UNIT_BLOCKS = ("## The module: ", "### The module's header", "## The unit to ", "### The contract pieces it uses",
               "## Domain notes: ")


def _common_start(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    n = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))
    return first[:n]


def _in_order(text: str, marks: tuple[str, ...]) -> bool:
    places = [text.find(mark) for mark in marks]
    return -1 not in places and places == sorted(places)


@pytest.mark.parametrize("strategy", pr.STRATEGIES)
def test_shared_blocks_come_first_in_the_same_order(found: list[ps.Prompt], strategy: str) -> None:
    for prompt in (p for p in found if p.strategy == strategy and p.role != "bench" and p.granularity != "feature"):
        text = prompt.texts[1]
        marks = UNIT_BLOCKS if prompt.granularity == "function" else MODULE_BLOCKS
        assert _in_order(text, marks), (prompt.role, prompt.target)
        if strategy in ("icl", "icl_cot"):
            assert text.find("### Worked example") < text.find("## The module: "), prompt.target
    for mode in ("coder", "repairer"):
        for role in pr.ROLES:
            units = [p.texts[1] for p in found if p.role == mode and p.strategy == strategy
                     and p.granularity == "function" and p.target.startswith(f"{role}/")]
            if len(units) < 2:
                continue
            shared = _common_start(units)
            header = pr.unit_focus(role, units[0].split("## The unit to ", 1)[1].split("`")[1]).header
            assert f"## The module: `{role}.py`" in shared and header in shared, (mode, role)
            before = {len(text.split("## The unit to ", 1)[0]) for text in units}
            assert before == {len(shared.split("## The unit to ", 1)[0])}, \
                "everything before the unit's own part is the same in every unit's prompt"


def test_the_report_and_the_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    small = ps.Prompt("coder", "icl", "module", "mapping", [SystemMessage("s" * 35), HumanMessage("h" * 350)])
    big = ps.Prompt("bench", "cot", "probe", "spec.Hardware", [SystemMessage("s"), HumanMessage("h" * 20_000)])
    monkeypatch.setattr(ps, "every_prompt", lambda spec: iter([small, big]))
    assert ps.main(["--summary"]) == 0
    out = capsys.readouterr().out
    assert "| coder | icl | module | 1 | 120 | 120 | 385 | 120 | 8,000 |" in out
    assert "over budget: bench cot probe spec.Hardware" in out and "| mapping |" not in out
    assert ps.main(["--check"]) == 1
    assert "| coder | icl | module | mapping | 385 | 120 |" in capsys.readouterr().out


def test_server_tokenizer_asks_once_per_text(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, Any]] = []

    def urlopen(request: Any, timeout: float) -> io.BytesIO:
        body = json.loads(request.data)
        asked.append(body)
        assert request.full_url == "http://127.0.0.1:9/tokenize"
        return io.BytesIO(json.dumps({"tokens": list(range(len(body["content"].split())))}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    count = ps.server_tokenizer("http://127.0.0.1:9/tokenize")
    assert count(["a b c", "d e"]) == 5 + 2 * ps.TEMPLATE_TOKENS_PER_MESSAGE
    assert count(["a b c"]) == 3 + ps.TEMPLATE_TOKENS_PER_MESSAGE
    assert asked == [{"content": "a b c"}, {"content": "d e"}]
