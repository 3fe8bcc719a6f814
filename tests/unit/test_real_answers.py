"""Answers a real local model gave (tests/data/real_model), replayed through extraction and the hidden tests:
the product must reach the verdict recorded when the model was asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskbench import hidden, passk
from taskbench.suite import load_suite

DATA = Path(__file__).resolve().parents[1] / "data" / "real_model"
TRANSCRIPTS = sorted(DATA.glob("*.json"))
SUITE = load_suite()


def test_there_are_real_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 2


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_a_real_answer_gets_the_verdict_it_got(path: Path) -> None:
    kept: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    task = SUITE.task(kept["task"])
    found = passk.extract(task, kept["calls"][-1]["answer"])
    verdict = found if isinstance(found, hidden.Judgement) else hidden.judge(SUITE, task, found, hidden.Runner())
    assert (verdict.passed, verdict.failure) == (kept["passed"], kept["failure"])
    assert verdict.detail[:120] == kept["detail"][:120]
