"""The chat model over real HTTP against the scripted fake OpenAI server (127.0.0.1 only)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents.llm import ModelCallError, ModelConfig, ask, is_transient, make_chat_model, resolve_model_config
from reference_sim.spec import ModelSettings
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.integration

KEY = "sk-integration-secret-9f8e7d6c5b4a"
ENV = {"OPENAI_API_KEY": KEY}
MESSAGES = [SystemMessage("You write Python modules."), HumanMessage("Write mapping.py with map_layer.")]


def _config(server: FakeOpenAIServer, **changes: object) -> ModelConfig:
    settings = ModelSettings(base_url=server.base_url, model="fake-coder", temperature=0.2, timeout_s=10)
    config = resolve_model_config(settings, seed=42, env=ENV)
    assert config is not None
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def test_scripted_answer_with_usage(tmp_path: Path) -> None:
    script = [{"content": "```python\ndef map_layer():\n    pass\n```", "match": "map_layer",
               "usage": {"prompt_tokens": 321, "completion_tokens": 54}}]
    with FakeOpenAIServer(script, tmp_path) as server:
        answer = ask(make_chat_model(_config(server), ENV), MESSAGES)
        requests = server.requests()
    assert answer.text == "```python\ndef map_layer():\n    pass\n```"
    assert (answer.input_tokens, answer.output_tokens, answer.estimated) == (321, 54, False)
    assert len(requests) == 1
    sent = requests[0]
    assert sent["model"] == "fake-coder"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][1]["content"] == "Write mapping.py with map_layer."
    assert (sent["temperature"], sent["seed"]) == (0.2, 42)
    assert sent["authorization"] is True
    assert KEY not in server.log_path.read_text()


def test_rate_limit_then_success_is_retried_by_the_client(tmp_path: Path) -> None:
    script: list[dict[str, Any]] = [{"status": 429, "headers": {"retry-after-ms": "50"},
               "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}}},
              {"status": 503, "headers": {"retry-after-ms": "50"}},
              {"content": "finally"}]
    with FakeOpenAIServer(script, tmp_path) as server:
        answer = ask(make_chat_model(_config(server, max_retries=3), ENV), MESSAGES)
        assert answer.text == "finally"
        assert [r["step"] for r in server.requests()] == [0, 1, 2]


def test_rate_limit_beyond_max_retries_propagates_as_transient(tmp_path: Path) -> None:
    script = [{"status": 429, "headers": {"retry-after-ms": "20"}}] * 2 + [{"content": "too late"}]
    with FakeOpenAIServer(script, tmp_path) as server:
        with pytest.raises(openai.RateLimitError) as caught:
            ask(make_chat_model(_config(server, max_retries=1), ENV), MESSAGES)
        assert is_transient(caught.value)
        assert len(server.requests()) == 2


def test_unauthorized_is_a_model_call_error_without_the_key(tmp_path: Path) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}. Find your key at ...",
                      "type": "invalid_request_error", "code": "invalid_api_key"}}
    with FakeOpenAIServer([{"status": 401, "body": body}], tmp_path) as server:
        with pytest.raises(ModelCallError) as caught:
            ask(make_chat_model(_config(server), ENV), MESSAGES)
        assert len(server.requests()) == 1  # not retried
    message = str(caught.value)
    assert "401" in message and "Incorrect API key" in message
    assert KEY not in message and KEY[:12] not in message


def test_unknown_model_is_a_model_call_error(tmp_path: Path) -> None:
    body = {"error": {"message": "The model `fake-coder` does not exist", "type": "invalid_request_error"}}
    with FakeOpenAIServer([{"status": 404, "body": body}], tmp_path) as server, pytest.raises(
            ModelCallError, match=r"404.*does not exist"):
        ask(make_chat_model(_config(server), ENV), MESSAGES)


def test_delay_beyond_timeout_is_a_transient_timeout(tmp_path: Path) -> None:
    script = [{"delay_s": 3, "content": "late"}]
    with FakeOpenAIServer(script, tmp_path) as server:
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError) as caught:
            ask(make_chat_model(_config(server, timeout_s=0.5, max_retries=0), ENV), MESSAGES)
        assert time.monotonic() - start < 2.5
    assert is_transient(caught.value)


def test_per_call_timeout_overrides_the_config(tmp_path: Path) -> None:
    script: list[dict[str, Any]] = [{"delay_s": 3, "content": "late"}, {"content": "second"}]
    with FakeOpenAIServer(script, tmp_path) as server:
        model = make_chat_model(_config(server, timeout_s=30, max_retries=0), ENV)
        with pytest.raises(openai.APITimeoutError):
            ask(model, MESSAGES, timeout_s=0.5)
        assert ask(model, MESSAGES).text == "second"


def test_local_endpoint_without_a_key_works(tmp_path: Path) -> None:
    with FakeOpenAIServer([{"content": "hello"}], tmp_path) as server:
        config = resolve_model_config(None, model="local-model", base_url=server.base_url, env={})
        assert config is not None
        assert ask(make_chat_model(config, {}), MESSAGES).text == "hello"
        assert server.requests()[0]["authorization"] is True


def test_script_mistakes_show(tmp_path: Path) -> None:
    with FakeOpenAIServer([{"content": "x", "match": "memory.py"}], tmp_path) as server:
        model = make_chat_model(_config(server), ENV)
        with pytest.raises(openai.InternalServerError, match="expects the last user message"):
            ask(model, MESSAGES)
        assert len(server.requests()) == 1  # the fake server's own 500s are not retried
    with FakeOpenAIServer([], tmp_path) as server, pytest.raises(openai.InternalServerError,
                                                                  match="script exhausted"):
        ask(make_chat_model(_config(server), ENV), MESSAGES)


def test_server_stops_when_idle(tmp_path: Path) -> None:
    server = FakeOpenAIServer([], tmp_path, idle_timeout_s=0.5).start()
    try:
        assert server.process is not None
        assert server.process.wait(timeout=10) == 0
    finally:
        server.stop()
