"""The LLM factory: configuration precedence, keys that never leak, transient errors, one call's answer."""

from __future__ import annotations

import email.utils
import gzip
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.types import RetryPolicy
from pydantic import SecretStr

from agents import llm
from agents.answer_cache import CACHE_FILE, AnswerCache
from agents.llm import (
    MAX_ANSWER_CHARS,
    Answer,
    DeadlineTransport,
    ModelAnswerTooLarge,
    ModelCallError,
    ModelConfig,
    ModelConfigError,
    ModelDeadlineError,
    WallCapReached,
    api_key,
    ask,
    call_deadline,
    is_transient,
    make_chat_model,
    redact,
    resolve_model_config,
)
from agents.spec import ModelSettings
from reference_sim.errors import SimCoderError
from tests import fakes

KEY = "sk-unit-test-0123456789abcdef"
REMOTE = "https://llm.example.com/v1"


def _config(**changes: Any) -> ModelConfig:
    fields: dict[str, Any] = {"model": "m", "base_url": REMOTE, "api_key_env": "OPENAI_API_KEY", "temperature": 0.0,
                              "timeout_s": 30.0, "max_retries": 3, "seed": None}
    return ModelConfig(**{**fields, **changes})


# --- configuration -------------------------------------------------------------------------------------------


def test_template_mode_when_nothing_is_configured() -> None:
    assert resolve_model_config(None, env={}) is None
    assert resolve_model_config(ModelSettings(), env={}) is None
    assert resolve_model_config(ModelSettings(temperature=0.5), env={"OPENAI_API_KEY": KEY}) is None


def test_spec_alone() -> None:
    settings = ModelSettings(model="spec-model", base_url=REMOTE, temperature=0.25, timeout_s=45)
    config = resolve_model_config(settings, env={"OPENAI_API_KEY": KEY})
    assert config == ModelConfig(model="spec-model", base_url=REMOTE, api_key_env="OPENAI_API_KEY",
                                 temperature=0.25, timeout_s=45.0, max_retries=3, seed=None, deadline_s=45.0,
                                 max_answer_bytes=llm.DEFAULT_MAX_ANSWER_BYTES)


def test_deadline_defaults_to_the_spec_timeout() -> None:
    config = resolve_model_config(None, model="gpt-x", env={"OPENAI_API_KEY": KEY})
    assert config is not None
    assert config.deadline_s == llm.DEFAULT_TIMEOUT_S == 120.0
    assert config.max_answer_bytes == 1024 * 1024
    assert "deadline_s=120.0" in repr(config)


@pytest.mark.parametrize("changes", [{"deadline_s": 0.0}, {"deadline_s": float("inf")}, {"deadline_s": -1.0},
                                     {"max_answer_bytes": 0}])
def test_bad_limits_are_config_errors(changes: dict[str, Any]) -> None:
    with pytest.raises(ModelConfigError, match=next(iter(changes))):
        _config(**changes)


def test_environment_beats_spec_and_cli_beats_environment() -> None:
    settings = ModelSettings(model="spec-model", base_url="https://spec.example.com/v1")
    env = {"OPENAI_API_KEY": KEY, "OPENAI_MODEL": "env-model", "OPENAI_BASE_URL": "https://env.example.com/v1"}
    from_env = resolve_model_config(settings, env=env)
    assert from_env is not None
    assert (from_env.model, from_env.base_url_host) == ("env-model", "env.example.com")
    from_cli = resolve_model_config(settings, model="cli-model", base_url="https://cli.example.com/v1", seed=5,
                                    env=env)
    assert from_cli is not None
    assert (from_cli.model, from_cli.base_url_host, from_cli.seed) == ("cli-model", "cli.example.com", 5)


def test_seed_from_cli_else_spec() -> None:
    env = {"OPENAI_API_KEY": KEY}
    settings = ModelSettings(model="m", seed=3)
    assert getattr(resolve_model_config(settings, env=env), "seed", None) == 3
    assert getattr(resolve_model_config(settings, seed=9, env=env), "seed", None) == 9
    assert getattr(resolve_model_config(settings, seed=0, env=env), "seed", None) == 0
    assert getattr(resolve_model_config(ModelSettings(model="m"), env=env), "seed", "unset") is None


def test_a_model_name_alone_means_openai_default_endpoint() -> None:
    config = resolve_model_config(None, model="gpt-x", env={"OPENAI_API_KEY": KEY})
    assert config is not None
    assert config.base_url is None and config.base_url_host is None
    assert config.timeout_s == llm.DEFAULT_TIMEOUT_S and config.max_retries == 3


def test_base_url_without_model_asks_for_model() -> None:
    with pytest.raises(ModelConfigError, match="--model"):
        resolve_model_config(None, base_url=REMOTE, env={"OPENAI_API_KEY": KEY})
    with pytest.raises(ModelConfigError, match="--model"):
        resolve_model_config(ModelSettings(base_url=REMOTE), env={"OPENAI_API_KEY": KEY})


def test_bad_base_url() -> None:
    with pytest.raises(ModelConfigError, match="http"):
        resolve_model_config(None, model="m", base_url="llm.example.com/v1", env={"OPENAI_API_KEY": KEY})


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(ModelConfigError, match="OPENAI_API_KEY") as caught:
        resolve_model_config(None, model="m", base_url=REMOTE, env={})
    assert isinstance(caught.value, SimCoderError)
    settings = ModelSettings(model="m", base_url=REMOTE, api_key_env="MY_LLM_KEY")
    with pytest.raises(ModelConfigError, match="MY_LLM_KEY"):
        resolve_model_config(settings, env={})
    with pytest.raises(ModelConfigError, match="OPENAI_API_KEY"):
        resolve_model_config(None, model="gpt-x", env={"OPENAI_API_KEY": "  "})


def test_key_from_the_spec_variable_else_openai_api_key() -> None:
    settings = ModelSettings(model="m", base_url=REMOTE, api_key_env="MY_LLM_KEY")
    own = resolve_model_config(settings, env={"MY_LLM_KEY": KEY, "OPENAI_API_KEY": "other"})
    assert own is not None and own.api_key_env == "MY_LLM_KEY"
    assert api_key(own, {"MY_LLM_KEY": KEY}) == KEY
    fallback = resolve_model_config(settings, env={"OPENAI_API_KEY": KEY})
    assert fallback is not None and fallback.api_key_env == "OPENAI_API_KEY"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:11434/v1", "http://[::1]:1234/v1",
                                 "http://LOCALHOST/v1"])
def test_local_endpoint_gets_a_placeholder_key(url: str) -> None:
    config = resolve_model_config(None, model="qwen", base_url=url, env={})
    assert config is not None and config.is_local
    assert api_key(config, {}) == llm.LOCAL_PLACEHOLDER_KEY
    assert api_key(config, {"OPENAI_API_KEY": KEY}) == KEY


def test_api_key_is_read_at_call_time() -> None:
    config = _config()
    assert api_key(config, {"OPENAI_API_KEY": "first"}) == "first"
    assert api_key(config, {"OPENAI_API_KEY": "second"}) == "second"
    with pytest.raises(ModelConfigError, match="OPENAI_API_KEY"):
        api_key(config, {})


@pytest.mark.parametrize(("url", "host"), [
    ("https://user:pa55word@llm.example.com:8443/v1/x?api_key=abc#frag", "llm.example.com:8443"),
    ("http://127.0.0.1:8000/v1", "127.0.0.1:8000"),
    ("https://llm.example.com/v1", "llm.example.com"),
    ("http://[::1]:1234/v1", "[::1]:1234"),
])
def test_base_url_host_is_host_and_port_only(url: str, host: str) -> None:
    assert _config(base_url=url).base_url_host == host


def test_config_never_shows_key_or_url_credentials() -> None:
    env = {"OPENAI_API_KEY": KEY}
    config = resolve_model_config(None, model="m", base_url="https://bob:hunter22@llm.example.com/v1?key=zzz", env=env)
    assert config is not None
    for shown in (repr(config), str(config), f"{config}"):
        assert KEY not in shown and "hunter22" not in shown and "zzz" not in shown
        assert "llm.example.com" in shown
    assert KEY not in repr(vars(config))


def test_make_chat_model() -> None:
    config = _config(temperature=0.3, timeout_s=12.0, max_retries=4, seed=11)
    model = make_chat_model(config, {"OPENAI_API_KEY": KEY})
    assert model.model_name == "m"
    assert model.openai_api_base == REMOTE
    assert isinstance(model.openai_api_key, SecretStr) and model.openai_api_key.get_secret_value() == KEY
    assert (model.temperature, model.request_timeout, model.max_retries, model.seed) == (0.3, 12.0, 4, 11)
    assert model.root_client.max_retries == 4
    assert KEY not in repr(model)


def test_make_chat_model_without_seed_and_without_key() -> None:
    assert make_chat_model(_config(), {"OPENAI_API_KEY": KEY}).seed is None
    with pytest.raises(ModelConfigError, match="OPENAI_API_KEY"):
        make_chat_model(_config(), {})


# --- errors --------------------------------------------------------------------------------------------------


def _status_error(cls: type[openai.APIStatusError], status: int, message: str) -> openai.APIStatusError:
    request = httpx.Request("POST", "https://llm.example.com/v1/chat/completions")
    response = httpx.Response(status, request=request, json={"error": {"message": message}})
    return cls(message, response=response, body={"error": {"message": message}})  # type: ignore[arg-type]


def _request() -> httpx.Request:
    return httpx.Request("POST", "https://llm.example.com/v1/chat/completions")


TRANSIENT = [
    _status_error(openai.RateLimitError, 429, "slow down"),
    _status_error(openai.InternalServerError, 503, "overloaded"),
    _status_error(openai.APIStatusError, 502, "bad gateway"),
    _status_error(openai.APIStatusError, 408, "request timeout"),
    openai.APITimeoutError(_request()),  # type: ignore[arg-type]
    openai.APIConnectionError(request=_request()),  # type: ignore[arg-type]
    httpx.ReadTimeout("read timed out"),
    httpx.ConnectError("refused"),
    TimeoutError("timed out"),
    ConnectionResetError("reset"),
]
PERMANENT = [
    ModelDeadlineError("model call to m at llm.example.com took longer than its deadline of 3 s (cut off)"),
    WallCapReached("the run's wall-time cap was reached"),
    ModelAnswerTooLarge("the answer of m at llm.example.com is over 10 bytes (cut off)"),
    _status_error(openai.AuthenticationError, 401, "bad key"),
    _status_error(openai.NotFoundError, 404, "no such model"),
    _status_error(openai.BadRequestError, 400, "bad request"),
    _status_error(openai.PermissionDeniedError, 403, "forbidden"),
    ValueError("a bug"),
    KeyError("x"),
    ModelConfigError("no key"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_retry_policy_accepts_is_transient() -> None:
    policy = RetryPolicy(retry_on=is_transient, max_attempts=3)
    assert policy.retry_on is is_transient


def test_redact() -> None:
    assert redact(f"key {KEY} and {KEY}!", [KEY, ""]) == "key *** and ***!"
    assert redact("nothing", []) == "nothing"
    assert redact("abcd abc", ["abc", "abcd"]) == "*** ***"


class _Failing(GenericFakeChatModel):
    """A fake chat model that raises ``error`` and carries a key like an OpenAI model does."""

    error: Exception
    openai_api_key: SecretStr = SecretStr(KEY)

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> AIMessage:
        raise self.error


def _failing(error: Exception) -> _Failing:
    return _Failing(messages=iter([]), error=error)


@pytest.mark.parametrize(("status", "cls"), [(401, openai.AuthenticationError), (404, openai.NotFoundError),
                                             (400, openai.BadRequestError)])
def test_permanent_api_error_is_a_model_call_error_without_the_key(status: int, cls: type[
        openai.APIStatusError]) -> None:
    error = _status_error(cls, status, f"Incorrect API key provided: {KEY}.\nSee the docs. Bearer {KEY[:10]}")
    with pytest.raises(ModelCallError) as caught:
        ask(_failing(error), [HumanMessage("hi")])
    message = str(caught.value)
    assert KEY not in message and KEY[:10] not in message
    assert "\n" not in message
    assert f"HTTP {status}" in message
    assert caught.value.__cause__ is None
    assert isinstance(caught.value, SimCoderError)


def test_transient_errors_propagate_unchanged() -> None:
    error = _status_error(openai.RateLimitError, 429, "slow down")
    with pytest.raises(openai.RateLimitError) as caught:
        ask(_failing(error), [HumanMessage("hi")])
    assert caught.value is error


def test_other_errors_propagate_unchanged() -> None:
    with pytest.raises(KeyError):
        ask(_failing(KeyError("bug")), [HumanMessage("hi")])


# --- ask -----------------------------------------------------------------------------------------------------


def _messages() -> list[BaseMessage]:
    return [SystemMessage("You write Python."), HumanMessage("Write map_layer, please.")]


def test_ask_with_a_fake_model_estimates_tokens() -> None:
    text = "```python\ndef map_layer():\n    return 1\n```"
    answer = ask(GenericFakeChatModel(messages=iter([AIMessage(text)])), _messages())
    assert answer.text == text
    assert answer.estimated
    assert answer.output_tokens == len(text) // 4
    assert answer.input_tokens == (len("You write Python.") + len("Write map_layer, please.")) // 4
    assert answer.seconds >= 0


def test_ask_takes_usage_metadata_when_present() -> None:
    reply = AIMessage("done", usage_metadata={"input_tokens": 120, "output_tokens": 34, "total_tokens": 154})
    answer = ask(FakeMessagesListChatModel(responses=[reply]), _messages())
    assert answer == Answer("done", 120, 34, answer.seconds, estimated=False)


def test_ask_joins_text_blocks_and_ignores_reasoning() -> None:
    reply = AIMessage(content=[
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "THINKING"}]},
        {"type": "thinking", "thinking": "MORE THINKING"},
        {"type": "reasoning", "text": "THINKING AS TEXT"},
        {"type": "text", "text": "first "},
        "second",
    ], additional_kwargs={"reasoning_content": "HIDDEN"})
    answer = ask(FakeMessagesListChatModel(responses=[reply]), _messages())
    assert answer.text == "first second"
    assert "THINKING" not in answer.text and "HIDDEN" not in answer.text


def test_ask_timeout_is_ignored_by_models_without_one() -> None:
    answer = ask(FakeMessagesListChatModel(responses=[AIMessage("ok")]), _messages(), timeout_s=1.0)
    assert answer.text == "ok"


def test_ask_refuses_a_call_past_the_wall_cap() -> None:
    with pytest.raises(WallCapReached, match="call not made"):
        ask(_failing(KeyError("the model was called")), _messages(), deadline=0.0)


def test_ask_with_a_wall_cap_to_come() -> None:
    assert ask(FakeMessagesListChatModel(responses=[AIMessage("ok")]), _messages(), deadline=4e9).text == "ok"


def test_ask_refuses_a_text_over_the_character_cap() -> None:
    fits = ask(FakeMessagesListChatModel(responses=[AIMessage("y" * MAX_ANSWER_CHARS)]), _messages())
    assert len(fits.text) == MAX_ANSWER_CHARS
    with pytest.raises(ModelAnswerTooLarge, match=f"over {MAX_ANSWER_CHARS} characters"):
        ask(FakeMessagesListChatModel(responses=[AIMessage("y" * (MAX_ANSWER_CHARS + 1))]), _messages())


# --- the deadline transport ----------------------------------------------------------------------------------

HTTP = llm.httpx_lib
URL = "https://llm.example.com/v1/chat/completions"


class _Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _Chunks(HTTP.SyncByteStream):
    """A response body served chunk by chunk; each chunk moves the clock on by ``step`` seconds."""

    def __init__(self, chunks: list[bytes], clock: _Clock | None = None, step: float = 0.0,
                 fail: Exception | None = None) -> None:
        self.chunks = chunks
        self.clock = clock
        self.step = step
        self.fail = fail
        self.served = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if self.clock is not None:
                self.clock.now += self.step
            self.served += 1
            yield chunk
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        self.closed = True


class _Inner(HTTP.BaseTransport):
    """A fake inner transport: records each request and answers with ``respond(request)``."""

    def __init__(self, respond: Callable[[Any], Any]) -> None:
        self.respond = respond
        self.requests: list[Any] = []

    def handle_request(self, request: Any) -> Any:
        self.requests.append(request)
        return self.respond(request)


def _answer(body: bytes = b"{}", *chunks: bytes, status: int = 200, headers: dict[str, str] | None = None,
            clock: _Clock | None = None, step: float = 0.0) -> tuple[_Chunks, Callable[[Any], Any]]:
    stream = _Chunks([body, *chunks], clock, step)
    return stream, lambda request: HTTP.Response(status, headers=headers or {}, stream=stream)


def _limited(inner: _Inner, clock: _Clock, **changes: Any) -> Any:
    options: dict[str, Any] = {"model": "m", "host": "llm.example.com", "deadline_s": 10.0,
                               "max_answer_bytes": 1000, "max_backoff_s": 2.0, "clock": clock, **changes}
    return HTTP.Client(transport=DeadlineTransport(inner, **options))


def test_transport_refuses_a_request_past_the_deadline() -> None:
    clock, inner = _Clock(), _Inner(_answer()[1])
    with call_deadline(started=clock.now - 10.0), pytest.raises(ModelDeadlineError) as caught:
        _limited(inner, clock).post(URL)
    assert inner.requests == []
    assert str(caught.value) == ("model call to m at llm.example.com took longer than its deadline of 10 s (cut off; "
                                 "a slow model needs a longer model.timeout_s in the spec, or --model-timeout-s)")
    with call_deadline(started=clock.now - 9.0):
        assert _limited(inner, clock).post(URL).status_code == 200


def test_transport_refuses_a_request_past_the_wall_cap() -> None:
    clock, inner = _Clock(), _Inner(_answer()[1])
    with call_deadline(clock.now, started=clock.now - 4.0), pytest.raises(WallCapReached) as caught:
        _limited(inner, clock).post(URL)
    assert inner.requests == []
    assert str(caught.value) == ("the run's wall-time cap was reached while m at llm.example.com was answering "
                                 "(call cancelled after 4.0 s)")


def test_outside_a_call_each_request_has_its_own_deadline() -> None:
    clock, inner = _Clock(), _Inner(_answer()[1])
    client = _limited(inner, clock, deadline_s=5.0)
    clock.now += 1_000.0
    assert client.post(URL, timeout=60.0).status_code == 200
    assert inner.requests[0].extensions["timeout"] == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


def test_transport_caps_the_timeouts_to_the_time_left() -> None:
    clock, inner = _Clock(), _Inner(_answer()[1])
    client = _limited(inner, clock)
    with call_deadline(started=clock.now - 7.0):
        client.post(URL, timeout=HTTP.Timeout(120.0, read=2.0, pool=None))
    assert inner.requests[0].extensions["timeout"] == {"connect": 3.0, "read": 2.0, "write": 3.0, "pool": 3.0}
    assert inner.requests[0].headers["Accept-Encoding"] == "identity"


def test_wall_cap_before_the_call_deadline_caps_the_timeouts() -> None:
    clock, inner = _Clock(), _Inner(_answer()[1])
    with call_deadline(clock.now + 1.5, started=clock.now):
        _limited(inner, clock).post(URL, timeout=30.0)
    assert inner.requests[0].extensions["timeout"]["read"] == 1.5


def test_every_chunk_checks_the_deadline() -> None:
    clock = _Clock()
    stream, respond = _answer(*[b" "] * 100, clock=clock, step=1.0)
    with call_deadline(started=clock.now), pytest.raises(ModelDeadlineError, match=re.escape("deadline of 3.5 s")):
        _limited(_Inner(respond), clock, deadline_s=3.5).post(URL)
    assert stream.served == 4
    assert stream.closed


def test_every_chunk_checks_the_wall_cap() -> None:
    clock = _Clock()
    stream, respond = _answer(*[b" "] * 100, clock=clock, step=1.0)
    cancelled = re.escape("call cancelled after 3.0 s")
    with call_deadline(clock.now + 2.5, started=clock.now), pytest.raises(WallCapReached, match=cancelled):
        _limited(_Inner(respond), clock).post(URL)
    assert stream.served == 3


def test_byte_cap() -> None:
    clock = _Clock()
    stream, respond = _answer(*[b"a" * 400] * 10)
    with call_deadline(started=clock.now), pytest.raises(ModelAnswerTooLarge) as caught:
        _limited(_Inner(respond), clock).post(URL)
    assert str(caught.value) == "the answer of m at llm.example.com is over 1000 bytes (cut off)"
    assert stream.served == 3
    assert stream.closed
    _, exactly = _answer(b"a" * 400, b"b" * 600)
    with call_deadline(started=clock.now):
        assert len(_limited(_Inner(exactly), clock).post(URL).content) == 1000


def test_compressed_body_is_counted_decoded() -> None:
    clock = _Clock()
    small = json.dumps({"ok": True}).encode()
    _, respond = _answer(gzip.compress(small), headers={"Content-Encoding": "gzip"})
    with call_deadline(started=clock.now):
        assert _limited(_Inner(respond), clock).post(URL).content == small
    bomb = gzip.compress(b"x" * 100_000)
    assert len(bomb) < 1000
    _, respond = _answer(bomb, headers={"Content-Encoding": "gzip"})
    with call_deadline(started=clock.now), pytest.raises(ModelAnswerTooLarge):
        _limited(_Inner(respond), clock).post(URL)
    _, respond = _answer(b"?", headers={"Content-Encoding": "br"})
    with call_deadline(started=clock.now), pytest.raises(ModelCallError, match="content encoding 'br'"):
        _limited(_Inner(respond), clock).post(URL)


def test_a_timeout_at_the_deadline_is_the_deadline() -> None:
    clock = _Clock()

    def silent_until_the_deadline(request: Any) -> Any:
        clock.now += request.extensions["timeout"]["read"]
        raise HTTP.ReadTimeout("timed out", request=request)

    with call_deadline(started=clock.now), pytest.raises(ModelDeadlineError):
        _limited(_Inner(silent_until_the_deadline), clock, deadline_s=3.0).post(URL, timeout=30.0)
    with call_deadline(started=clock.now), pytest.raises(HTTP.ReadTimeout):
        _limited(_Inner(silent_until_the_deadline), clock, deadline_s=30.0).post(URL, timeout=3.0)


def test_a_timeout_while_reading_at_the_deadline_is_the_deadline() -> None:
    clock = _Clock()
    stream = _Chunks([b"{"], clock, 3.0, fail=HTTP.ReadTimeout("timed out"))
    inner = _Inner(lambda request: HTTP.Response(200, stream=stream))
    with call_deadline(started=clock.now), pytest.raises(ModelDeadlineError):
        _limited(inner, clock, deadline_s=3.2).post(URL)
    stream = _Chunks([b"{"], clock, 1.0, fail=HTTP.ReadTimeout("timed out"))
    inner = _Inner(lambda request: HTTP.Response(200, stream=stream))
    with call_deadline(started=clock.now), pytest.raises(HTTP.ReadTimeout):
        _limited(inner, clock, deadline_s=30.0).post(URL)


@pytest.mark.parametrize(("status", "headers", "left", "retried"), [
    (429, {"retry-after": "30"}, 10.0, False),
    (429, {"retry-after": "1"}, 10.0, True),
    (429, {"retry-after-ms": "9500"}, 10.0, True),
    (503, {}, 1.5, False),
    (503, {}, 10.0, True),
    (503, {"x-should-retry": "true"}, 1.5, False),
    (429, {"retry-after": "IN 60 S"}, 10.0, False),
    (400, {}, 0.5, True),
])
def test_no_client_retry_whose_wait_ends_past_the_deadline(status: int, headers: dict[str, str], left: float,
                                                           retried: bool) -> None:
    clock = _Clock()
    if headers.get("retry-after") == "IN 60 S":
        headers = {"retry-after": email.utils.formatdate(time.time() + 60, usegmt=True)}
    _, respond = _answer(status=status, headers=headers)
    with call_deadline(started=clock.now - 10.0 + left):
        response = _limited(_Inner(respond), clock).post(URL)
    assert (response.headers.get("x-should-retry") != "false") is retried


def test_client_backoff_bound() -> None:
    assert llm.client_backoff_s(0) == 0.5
    assert llm.client_backoff_s(3) == 2.0
    assert llm.client_backoff_s(10) == 8.0


def test_chat_model_calls_through_the_deadline_transport() -> None:
    inner = _Inner(lambda request: HTTP.Response(200, headers={"Content-Type": "text/event-stream"},
                                                 stream=_Chunks([fakes.sse_completion("hello", completion_tokens=2,
                                                                                      prompt_tokens=5)])))
    model = make_chat_model(_config(timeout_s=30.0, deadline_s=60.0), {"OPENAI_API_KEY": KEY}, transport=inner)
    answer = ask(model, _messages(), deadline=time.time() + 5.0)
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("hello", 5, 2)
    sent = inner.requests[0]
    assert sent.headers["Accept-Encoding"] == "identity"
    assert sent.extensions["timeout"]["read"] <= 5.0


def test_chat_model_answer_over_the_byte_cap() -> None:
    inner = _Inner(lambda request: HTTP.Response(200, headers={"Content-Type": "text/event-stream"},
                                                 stream=_Chunks([fakes.sse_completion("z" * 5000)])))
    model = make_chat_model(_config(max_answer_bytes=4096), {"OPENAI_API_KEY": KEY}, transport=inner)
    with pytest.raises(ModelAnswerTooLarge, match=re.escape("the answer of m at llm.example.com is over 4096 bytes")):
        ask(model, _messages())
    assert len(inner.requests) == 1


def test_environment_proxy_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert llm._env_proxy(REMOTE) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert llm._env_proxy(REMOTE) == "http://127.0.0.1:3128"
    assert llm._env_proxy(None) == "http://127.0.0.1:3128"
    assert llm._env_proxy("http://127.0.0.1:8000/v1") is None
    monkeypatch.setenv("NO_PROXY", "llm.example.com")
    assert llm._env_proxy(REMOTE) is None


def test_an_openai_answer_is_streamed_with_its_usage_and_its_progress_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm, "PROGRESS_EVERY_S", 0.0)
    endpoint = fakes.OpenAIEndpoint(lambda r: "def map_layer(layer, hardware):\n    return None\n")
    seen: list[tuple[int, float]] = []
    answer = ask(endpoint.model, _messages(), on_progress=lambda tokens, seconds: seen.append((tokens, seconds)))
    assert answer.text == "def map_layer(layer, hardware):\n    return None\n"
    assert (answer.input_tokens, answer.output_tokens, answer.estimated) == (10, 12, False)
    body = endpoint.bodies[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert [tokens for tokens, _ in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 3
    assert seen[0][1] == 0.0, "the rate is counted from the first token, not from the call's start"


def test_a_streamed_answer_that_loops_is_stopped_there_and_returned_as_written(
        caplog: pytest.LogCaptureFixture) -> None:
    """A small model writes the same lines until the length limit (minutes of tokens); the stream is left as
    soon as one block has been written :data:`loops.STOP_MIN_TIMES` times over :data:`loops.STOP_MIN_LINES`
    lines, and the answer is cut (``truncated``) with what was written."""
    block = "    total = total + 1\n    count = count + 1\n    index = index + 1\n    value = value + 1\n"
    looping = "def f(total, count, index, value):\n" + block * 60
    caplog.set_level(logging.INFO)
    endpoint = fakes.OpenAIEndpoint(lambda r: looping)
    answer = ask(endpoint.model, _messages())
    assert (answer.finish_reason, answer.truncated, answer.estimated) == ("loop", True, True)
    assert looping.startswith(answer.text)
    assert answer.text.count(block) == 10, "stopped at the first 10 times 4 lines (40 lines, at least 5 times)"
    assert answer.output_tokens == -(-len(answer.text) // 16), "each streamed chunk counted"
    assert endpoint.events_sent < len(looping) // 16 / 2, "the stream was left, not read to its end"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "kept writing the same lines: stopped after 58 tokens" in caplog.text

    tidy = "def f(a):\n" + "".join(f"    a{i} = a + {i}\n" for i in range(80)) + "    return a\n"
    whole = ask(fakes.OpenAIEndpoint(lambda r: tidy).model, _messages())
    assert (whole.text, whole.finish_reason, whole.truncated) == (tidy, "stop", False)


def test_a_stopped_answer_is_kept_in_the_answer_cache(tmp_path: Path) -> None:
    """A resumed run pays for a stopped answer once: LangChain writes its cache only when a call returns."""
    block = "    a = a + 1\n    b = b + 1\n    c = c + 1\n    d = d + 1\n"
    endpoint = fakes.OpenAIEndpoint(lambda r: "def f(a, b, c, d):\n" + block * 60,
                                    cache=AnswerCache(tmp_path / CACHE_FILE))
    first = ask(endpoint.model, _messages(), temperature=0.8, seed=3)
    again = ask(endpoint.model, _messages(), temperature=0.8, seed=3)
    assert len(endpoint.bodies) == 1
    assert (again.text, again.finish_reason, again.truncated, again.cached) == (first.text, "loop", True, True)
    ask(endpoint.model, _messages(), temperature=0.8, seed=4)
    assert len(endpoint.bodies) == 2, "another seed is another answer"
