"""The LLM factory: configuration precedence, keys that never leak, transient errors, one call's answer."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.types import RetryPolicy
from pydantic import SecretStr

from agents import llm
from agents.llm import (
    Answer,
    ModelCallError,
    ModelConfig,
    ModelConfigError,
    api_key,
    ask,
    is_transient,
    make_chat_model,
    redact,
    resolve_model_config,
)
from reference_sim.errors import SimCoderError
from reference_sim.spec import ModelSettings

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
                                 temperature=0.25, timeout_s=45.0, max_retries=3, seed=None)


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
