"""The answer cache: a repeated prompt with the same parameters is answered from disk, nothing else is."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents import llm
from agents.answer_cache import CACHE_FILE, AnswerCache
from tests import fakes

MESSAGES = [SystemMessage(content="You write simulators."), HumanMessage(content="Write map_layer.")]


def _endpoint(tmp_path: Path, **config: object) -> tuple[fakes.OpenAIEndpoint, AnswerCache]:
    cache = AnswerCache(tmp_path / CACHE_FILE)
    endpoint = fakes.OpenAIEndpoint(lambda r: f"answer {len(r.messages)}", **config)
    endpoint.model.cache = cache
    return endpoint, cache


def test_the_same_prompt_and_parameters_are_asked_once(tmp_path: Path) -> None:
    endpoint, _ = _endpoint(tmp_path, seed=3)
    first = llm.ask(endpoint.model, MESSAGES)
    again = llm.ask(endpoint.model, MESSAGES)
    assert len(endpoint.bodies) == 1
    assert (first.cached, first.output_tokens > 0) == (False, True)
    assert (again.text, again.cached, again.input_tokens, again.output_tokens) == (first.text, True, 0, 0)
    assert again.finish_reason == "stop"


def test_another_seed_temperature_or_prompt_is_asked_again(tmp_path: Path) -> None:
    endpoint, _ = _endpoint(tmp_path, seed=3)
    llm.ask(endpoint.model, MESSAGES)
    llm.ask(endpoint.model, MESSAGES, seed=4)
    llm.ask(endpoint.model, MESSAGES, temperature=0.7)
    llm.ask(endpoint.model, [*MESSAGES, HumanMessage(content="Shorter.")])
    assert len(endpoint.bodies) == 4


def test_a_new_process_reads_the_answers_kept_on_disk(tmp_path: Path) -> None:
    endpoint, cache = _endpoint(tmp_path)
    llm.ask(endpoint.model, MESSAGES)
    cache.close()
    later, _ = _endpoint(tmp_path)
    assert llm.ask(later.model, MESSAGES).cached and later.bodies == []


@pytest.mark.parametrize("stored", [
    "not json", json.dumps([1]),
    json.dumps({"format": "other", "text": "x", "finish_reason": "stop", "input_tokens": 1, "output_tokens": 1}),
    json.dumps({"format": "simcoder-answer/1", "text": 5, "finish_reason": "stop", "input_tokens": 1,
                "output_tokens": 1}),
    json.dumps({"format": "simcoder-answer/1", "text": "x", "finish_reason": "stop", "input_tokens": -1,
                "output_tokens": 1}),
    json.dumps({"format": "simcoder-answer/1", "text": "x" * (300 * 1024), "finish_reason": None, "input_tokens": 1,
                "output_tokens": 1}),
    json.dumps({"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "AIMessage"],
                "kwargs": {"content": "x"}}),
])
def test_an_entry_that_is_not_a_kept_answer_is_ignored_and_the_model_asked(tmp_path: Path, stored: str) -> None:
    endpoint, cache = _endpoint(tmp_path)
    llm.ask(endpoint.model, MESSAGES)
    cache.close()
    with sqlite3.connect(tmp_path / CACHE_FILE) as db:
        db.execute("UPDATE answers SET answer = ?", (stored,))
    later, _ = _endpoint(tmp_path)
    answer = llm.ask(later.model, MESSAGES)
    assert not answer.cached and len(later.bodies) == 1
