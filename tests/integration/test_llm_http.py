"""The chat model over real HTTP against the scripted fake OpenAI server (127.0.0.1 only)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents import llm
from agents.llm import (
    MAX_ANSWER_CHARS,
    ModelAnswerTooLarge,
    ModelCallError,
    ModelConfig,
    ModelDeadlineError,
    WallCapReached,
    ask,
    is_transient,
    make_chat_model,
    resolve_model_config,
)
from agents.spec import ModelSettings
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


# --- deadlines and answer size ---------------------------------------------------------------------------------

MARGIN_S = 5.0
"""How late past its deadline a cut-off call may still end: the bound under test, not a measurement."""


def _host(server: FakeOpenAIServer) -> str:
    return f"127.0.0.1:{server.port}"


def _outcome(server: FakeOpenAIServer, mode: str, wait_s: float = 15.0) -> dict[str, Any]:
    """The server's record of how its hang, drip or huge answer ended (it writes it when the client has gone)."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        found = [o for o in server.outcomes() if o["mode"] == mode]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"the fake server recorded no {mode} outcome within {wait_s} s")


def test_hanging_endpoint_is_cut_at_its_deadline(tmp_path: Path) -> None:
    with FakeOpenAIServer([{"hang_s": 60}] * 4, tmp_path) as server:
        config = _config(server, timeout_s=30, deadline_s=3, max_retries=3)
        start = time.monotonic()
        with pytest.raises(ModelDeadlineError) as caught:
            ask(make_chat_model(config, ENV), MESSAGES)
        elapsed = time.monotonic() - start
        assert _outcome(server, "hang")["client_closed"] is True
        requests = server.requests()
    assert config.timeout_s > config.deadline_s + MARGIN_S  # the per-operation timeout alone would not cut it yet
    assert elapsed < config.deadline_s + MARGIN_S
    assert len(requests) == 1
    message = str(caught.value)
    assert message == (f"model call to fake-coder at {_host(server)} took longer than its deadline of 3 s "
                       "(cut off; a slow model needs a longer model.timeout_s in the spec, or --model-timeout-s)")
    assert not is_transient(caught.value)


def test_dripping_endpoint_is_cut_at_its_deadline(tmp_path: Path) -> None:
    drip_s = 1.0
    with FakeOpenAIServer([{"drip_s": drip_s, "drip_max_s": 60}] * 4, tmp_path) as server:
        config = _config(server, timeout_s=2, deadline_s=3, max_retries=3)
        assert drip_s < config.timeout_s  # every read gets a byte within the read timeout: it never fires
        start = time.monotonic()
        with pytest.raises(ModelDeadlineError, match="deadline of 3 s"):
            ask(make_chat_model(config, ENV), MESSAGES)
        elapsed = time.monotonic() - start
        outcome = _outcome(server, "drip")
        requests = server.requests()
    assert elapsed < config.deadline_s + MARGIN_S
    assert len(requests) == 1
    assert outcome["client_closed"] is True
    assert outcome["bytes"] < 60 / drip_s


def test_client_retries_stay_inside_the_deadline(tmp_path: Path) -> None:
    with FakeOpenAIServer([{"delay_s": 20, "content": "late"}] * 5, tmp_path) as server:
        config = _config(server, timeout_s=1, deadline_s=2.5, max_retries=3)
        start = time.monotonic()
        with pytest.raises(ModelDeadlineError):
            ask(make_chat_model(config, ENV), MESSAGES)
        elapsed = time.monotonic() - start
        requests = server.requests()
    assert elapsed < config.deadline_s + MARGIN_S
    assert 2 <= len(requests) <= config.max_retries + 1  # the first timeout was retried, inside the deadline


def test_the_run_wall_cap_cuts_the_call(tmp_path: Path) -> None:
    with FakeOpenAIServer([{"hang_s": 60}] * 4, tmp_path) as server:
        model = make_chat_model(_config(server, timeout_s=30, deadline_s=60), ENV)
        start = time.monotonic()
        with pytest.raises(WallCapReached) as caught:
            ask(model, MESSAGES, deadline=time.time() + 2)
        elapsed = time.monotonic() - start
        with pytest.raises(WallCapReached, match="call not made"):
            ask(model, MESSAGES, deadline=time.time() - 1)
        requests = server.requests()
    assert elapsed < 2 + MARGIN_S
    assert len(requests) == 1
    message = str(caught.value)
    assert message.startswith(f"the run's wall-time cap was reached while fake-coder at {_host(server)} was "
                              "answering (call cancelled after ")
    assert not is_transient(caught.value)


class _CountingStream(llm.httpx_lib.SyncByteStream):
    def __init__(self, inner: Iterable[bytes], counts: list[int]) -> None:
        self.inner = inner
        self.counts = counts

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.counts.append(len(chunk))
            yield chunk

    def close(self) -> None:
        getattr(self.inner, "close", lambda: None)()


class _CountingTransport(llm.httpx_lib.BaseTransport):
    """The real HTTP transport, counting the body bytes read from the socket."""

    def __init__(self) -> None:
        self.inner = llm.httpx_lib.HTTPTransport()
        self.counts: list[int] = []

    def handle_request(self, request: Any) -> Any:
        response = self.inner.handle_request(request)
        response.stream = _CountingStream(response.stream, self.counts)
        return response

    def close(self) -> None:
        self.inner.close()


def test_huge_answer_is_cut_at_the_byte_cap(tmp_path: Path) -> None:
    huge = 200 * 1024 * 1024
    counting = _CountingTransport()
    with FakeOpenAIServer([{"huge_bytes": huge}] * 4, tmp_path) as server:
        config = _config(server, deadline_s=60)
        with pytest.raises(ModelAnswerTooLarge) as caught:
            ask(make_chat_model(config, ENV, transport=counting), MESSAGES)
        outcome = _outcome(server, "huge")
        requests = server.requests()
    assert str(caught.value) == (f"the answer of fake-coder at {_host(server)} is over {config.max_answer_bytes} "
                                 "bytes (cut off)")
    assert config.max_answer_bytes < sum(counting.counts) <= config.max_answer_bytes + max(counting.counts)
    assert len(requests) == 1
    assert outcome["client_closed"] is True
    assert outcome["bytes"] < 20 * 1024 * 1024, outcome  # what was read, plus the two sockets' buffers
    assert requests[0]["accept_encoding"] == "identity"
    assert not is_transient(caught.value)


def test_answer_text_over_the_character_cap(tmp_path: Path) -> None:
    with FakeOpenAIServer([{"huge_bytes": MAX_ANSWER_CHARS + 1}, {"huge_bytes": MAX_ANSWER_CHARS}], tmp_path) as server:
        model = make_chat_model(_config(server), ENV)
        with pytest.raises(ModelAnswerTooLarge, match=f"over {MAX_ANSWER_CHARS} characters"):
            ask(model, MESSAGES)
        assert ask(model, MESSAGES).text == "x" * MAX_ANSWER_CHARS


def test_rate_limit_whose_wait_ends_past_the_deadline_is_not_waited_for(tmp_path: Path) -> None:
    script: list[dict[str, Any]] = [{"status": 429, "headers": {"retry-after": "30"}}, {"content": "too late"}]
    with FakeOpenAIServer(script, tmp_path) as server:
        config = _config(server, deadline_s=3, max_retries=3)
        start = time.monotonic()
        with pytest.raises(openai.RateLimitError) as caught:
            ask(make_chat_model(config, ENV), MESSAGES)
        elapsed = time.monotonic() - start
        requests = server.requests()
    assert elapsed < config.deadline_s + MARGIN_S
    assert len(requests) == 1
    assert is_transient(caught.value)


def test_normal_answer_within_deadline_and_wall_cap(tmp_path: Path) -> None:
    with FakeOpenAIServer([{"content": "fine", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}],
                          tmp_path) as server:
        config = _config(server, deadline_s=30, max_answer_bytes=4096)
        answer = ask(make_chat_model(config, ENV), MESSAGES, deadline=time.time() + 60)
        requests = server.requests()
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("fine", 3, 1)
    assert len(requests) == 1 and requests[0]["accept_encoding"] == "identity"


NOT_A_COMPLETION = {
    "html": {"raw": "<html><body><h1>502 Bad Gateway</h1></body></html>"},
    "garbage": {"raw_hex": "00ff13a7c4e9", "content_type": "application/octet-stream"},
    "empty": {"raw": "", "content_type": "application/json"},
    "no choices": {"raw": '{"id": "x", "object": "chat.completion"}', "content_type": "application/json"},
    "empty choices": {"raw": '{"id": "x", "choices": []}', "content_type": "application/json"},
}


@pytest.mark.parametrize("kind", sorted(NOT_A_COMPLETION))
def test_an_answer_that_is_not_a_chat_completion_is_asked_again_then_a_model_error(tmp_path: Path,
                                                                                    kind: str) -> None:
    step = NOT_A_COMPLETION[kind]
    with FakeOpenAIServer([step] * llm.ANSWER_TRIES, tmp_path) as server:
        with pytest.raises(llm.ModelAnswerError, match="not a chat completion") as info:
            ask(make_chat_model(_config(server, max_retries=0), ENV), MESSAGES)
        requests = server.requests()
    assert len(requests) == llm.ANSWER_TRIES
    assert len(str(info.value).splitlines()) == 1 and "<html>" not in str(info.value)
    assert not is_transient(info.value), "reported, not retried by the node once its tries are spent"


def test_one_bad_answer_then_a_good_one_is_an_answer(tmp_path: Path) -> None:
    script = [NOT_A_COMPLETION["html"], {"content": "fine"}]
    with FakeOpenAIServer(script, tmp_path) as server:
        answer = ask(make_chat_model(_config(server, max_retries=0), ENV), MESSAGES)
        assert len(server.requests()) == 2
    assert answer.text == "fine"
