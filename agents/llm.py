"""The LLM back-end: which OpenAI-compatible endpoint to call, the chat model, and one call to it.

:func:`resolve_model_config` settles the configuration (command line > environment > spec) without
ever holding the API key: a :class:`ModelConfig` names the environment variable, and :func:`api_key`
reads it when the chat model is made.  ``None`` means template mode (no model configured at all).
:func:`make_chat_model` builds a ``ChatOpenAI`` whose openai client retries rate limits, server errors
and timeouts itself (``max_retries``); what still fails with a transient error propagates unchanged
from :func:`ask` so that a LangGraph ``RetryPolicy(retry_on=is_transient)`` can retry the node.
Non-transient API errors (401, 403, 404, 400) become :class:`ModelCallError`, whose one-line
message never contains the key.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai
from langchain_core.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import SecretStr

from reference_sim.errors import SimCoderError
from reference_sim.spec import ModelSettings

log = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
"""The variable read for the key when the spec names none (or the one it names is unset)."""
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_MODEL = "OPENAI_MODEL"
DEFAULT_MAX_RETRIES = 3
"""Retries of the openai client itself (exponential backoff on 408/409/429/5xx, connection errors, timeouts)."""
DEFAULT_TIMEOUT_S = 120.0
LOCAL_PLACEHOLDER_KEY = "not-needed"
"""Key sent to a local endpoint (vLLM, Ollama, LM Studio accept any key) when no key is set."""
_LOCAL_HOSTS = frozenset({"localhost"})


class ModelConfigError(SimCoderError, ValueError):
    """The model configuration is incomplete or wrong; the message says what to set."""


class ModelCallError(SimCoderError, RuntimeError):
    """A model call failed for a reason retrying will not fix (bad key, unknown model, bad request)."""


@dataclass(frozen=True, repr=False)
class ModelConfig:
    """Everything needed to reach a model except the key, which stays in the environment variable ``api_key_env``."""

    model: str
    base_url: str | None
    api_key_env: str
    temperature: float
    timeout_s: float
    max_retries: int
    seed: int | None

    @property
    def base_url_host(self) -> str | None:
        """``host[:port]`` of the base URL (no scheme, path, query or credentials); ``None`` for OpenAI's default."""
        if self.base_url is None:
            return None
        return _host_port(self.base_url)

    @property
    def is_local(self) -> bool:
        """True when the endpoint is on this machine (loopback address or ``localhost``)."""
        return self.base_url is not None and _is_local(self.base_url)

    def __repr__(self) -> str:
        return (f"ModelConfig(model={self.model!r}, base_url_host={self.base_url_host!r}, "
                f"api_key_env={self.api_key_env!r}, temperature={self.temperature!r}, timeout_s={self.timeout_s!r}, "
                f"max_retries={self.max_retries!r}, seed={self.seed!r})")

    __str__ = __repr__


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelConfigError(f"base URL {_host_port(url) or 'given'!s} is not an http(s) URL with a host "
                               "(example: http://127.0.0.1:8000/v1)")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ModelConfigError(f"base URL for host {parts.hostname} has a bad port: {exc}") from None
    return url


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def resolve_model_config(settings: ModelSettings | None, *, model: str | None = None, base_url: str | None = None,
                         seed: int | None = None, env: Mapping[str, str] | None = None,
                         max_retries: int = DEFAULT_MAX_RETRIES) -> ModelConfig | None:
    """The model configuration: command-line arguments > environment (``OPENAI_BASE_URL``, ``OPENAI_MODEL``) > spec.

    The seed comes from the command line, else from the spec's ``model.seed``.

    Returns ``None`` (template mode) when neither a model name nor a base URL is configured anywhere.
    The key is looked up in the variable the spec's ``api_key_env`` names, else in ``OPENAI_API_KEY``;
    the config records which variable, never the key.  Raises :class:`ModelConfigError` when a base URL
    is set without a model name, or when no key is set for a non-local endpoint (a local one gets the
    placeholder key ``not-needed``).
    """
    env = os.environ if env is None else env
    name = model or _get(env, ENV_MODEL) or (settings.model if settings else None)
    url = base_url or _get(env, ENV_BASE_URL) or (settings.base_url if settings else None)
    if not name and not url:
        return None
    if url is not None:
        url = _check_base_url(url.strip())
    if not name:
        raise ModelConfigError(f"a base URL is configured ({_host_port(url or '')}) but no model name: "
                               f"pass --model NAME, set {ENV_MODEL}, or set model.model in the spec")
    key_env = settings.api_key_env if settings else DEFAULT_API_KEY_ENV
    if _get(env, key_env) is None and _get(env, DEFAULT_API_KEY_ENV) is not None:
        key_env = DEFAULT_API_KEY_ENV
    config = ModelConfig(
        model=name,
        base_url=url,
        api_key_env=key_env,
        temperature=settings.temperature if settings else 0.0,
        timeout_s=settings.timeout_s if settings else DEFAULT_TIMEOUT_S,
        max_retries=max_retries,
        seed=seed if seed is not None else (settings.seed if settings else None),
    )
    api_key(config, env)  # fail now, not at the first call, when no key is set for a remote endpoint
    return config


def api_key(config: ModelConfig, env: Mapping[str, str] | None = None) -> str:
    """The key, read now from ``config.api_key_env``; the placeholder for a local endpoint without one."""
    env = os.environ if env is None else env
    key = _get(env, config.api_key_env)
    if key is not None:
        return key
    if config.is_local:
        return LOCAL_PLACEHOLDER_KEY
    where = config.base_url_host or "api.openai.com"
    wanted = config.api_key_env if config.api_key_env == DEFAULT_API_KEY_ENV else (
        f"{config.api_key_env} (or {DEFAULT_API_KEY_ENV})")
    raise ModelConfigError(f"no API key for model {config.model!r} at {where}: set the environment variable {wanted}")


def make_chat_model(config: ModelConfig, env: Mapping[str, str] | None = None) -> ChatOpenAI:
    """A ``ChatOpenAI`` for ``config``; its openai client retries 408/409/429/5xx and timeouts ``max_retries`` times."""
    kwargs: dict[str, Any] = {
        "model": config.model,
        "base_url": config.base_url,
        "api_key": SecretStr(api_key(config, env)),
        "temperature": config.temperature,
        "timeout": config.timeout_s,
        "max_retries": config.max_retries,
    }
    if config.seed is not None:
        kwargs["seed"] = config.seed
    log.debug("chat model %s", config)
    return ChatOpenAI(**kwargs)


def _httpx_transient() -> tuple[type[BaseException], ...]:
    """Timeouts and dropped connections of ``httpx`` and of ``httpx2`` (the transport of ``openai>=3``)."""
    found: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found += [module.TimeoutException, module.NetworkError, module.RemoteProtocolError]
    return tuple(found)


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
    openai.ConflictError,
    ModelRateLimitError,
    ModelTimeoutError,
    ModelConnectionError,
    ModelAPIError,
    *_httpx_transient(),
    TimeoutError,
    ConnectionError,
)
"""Errors worth retrying later: rate limits, server errors, timeouts and dropped connections."""

_TRANSIENT_STATUS = frozenset({408, 409, 429})


def is_transient(exc: BaseException) -> bool:
    """True for errors a LangGraph ``RetryPolicy(retry_on=is_transient)`` should retry."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.APIStatusError) and isinstance(status, int):
        return status in _TRANSIENT_STATUS or status >= 500
    return False


@dataclass(frozen=True)
class Answer:
    """One model answer: its text, the tokens it cost and the wall-clock seconds it took.

    ``estimated`` is true when the model reported no usage and the token counts are estimates.
    """

    text: str
    input_tokens: int
    output_tokens: int
    seconds: float
    estimated: bool = False


def content_text(content: str | list[str | dict[str, Any]]) -> str:
    """The text of a message's content: a string, or the ``text`` blocks of a list (reasoning blocks ignored)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


_KEYLIKE = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}|(?i:bearer)\s+\S+")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every (non-empty) secret replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _model_secrets(model: BaseChatModel) -> list[str]:
    secrets: list[str] = []
    for attr in ("openai_api_key", "api_key"):
        value = getattr(model, attr, None)
        if isinstance(value, SecretStr):
            secrets.append(value.get_secret_value())
        elif isinstance(value, str):
            secrets.append(value)
    return [s for s in secrets if s and s != LOCAL_PLACEHOLDER_KEY]


def _call_error(exc: BaseException, model: BaseChatModel) -> ModelCallError:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    line = " ".join(str(message).split())
    line = _KEYLIKE.sub("***", redact(line, _model_secrets(model)))
    if len(line) > 300:
        line = line[:297] + "..."
    name = getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__
    what = f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
    return ModelCallError(f"model call to {name!s} failed ({what}, not retried): {line}")


def _estimate_tokens(text: str) -> int:
    return len(text) // 4


def ask(model: BaseChatModel, messages: Sequence[BaseMessage], *, timeout_s: float | None = None) -> Answer:
    """Send ``messages`` to ``model`` once and return its :class:`Answer`.

    The text is the answer's string content, or the ``text`` blocks of list content; reasoning that a
    model returns in other blocks or in ``additional_kwargs`` is ignored.  Token counts come from the
    message's ``usage_metadata``; when a model reports none (langchain's fake chat models, some local
    servers) they are *estimated* as ``len(text) // 4`` of the prompt and of the answer, and
    ``Answer.estimated`` is set.  ``timeout_s`` overrides the HTTP timeout of an OpenAI chat model for
    this call (other chat models take no timeout; it is ignored for them).

    Transient errors (:func:`is_transient`) propagate unchanged so the node's retry policy can retry;
    other API errors raise :class:`ModelCallError` with a one-line message that never holds the key.
    """
    kwargs: dict[str, Any] = {}
    if timeout_s is not None and isinstance(model, BaseChatOpenAI):
        kwargs["timeout"] = timeout_s
    start = time.perf_counter()
    try:
        reply = model.invoke(list(messages), **kwargs)
    except Exception as exc:
        if is_transient(exc) or not isinstance(exc, (openai.APIError, ModelError)):
            raise
        raise _call_error(exc, model) from None
    seconds = time.perf_counter() - start
    text = content_text(reply.content)
    usage = getattr(reply, "usage_metadata", None)
    if usage:
        return Answer(text, int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)), seconds)
    prompt = sum(len(content_text(m.content)) for m in messages)
    return Answer(text, prompt // 4, _estimate_tokens(text), seconds, estimated=True)
