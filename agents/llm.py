"""The LLM back-end: which OpenAI-compatible endpoint to call, the chat model, and one call to it.

:func:`resolve_model_config` settles the configuration (command line > environment > spec) without
ever holding the API key: a :class:`ModelConfig` names the environment variable, and :func:`api_key`
reads it when the chat model is made.  ``None`` means template mode (no model configured at all).
:func:`make_chat_model` builds a ``ChatOpenAI`` whose openai client retries rate limits, server errors
and timeouts itself (``max_retries``); what still fails with a transient error propagates unchanged
from :func:`ask` so that a LangGraph ``RetryPolicy(retry_on=is_transient)`` can retry the node.
Non-transient API errors (401, 403, 404, 400) become :class:`ModelCallError`, whose one-line
message never contains the key.

Every call has a total deadline (``ModelConfig.deadline_s``, the client's retries included, or the run's
wall cap given to :func:`ask`, whichever comes first) and a bounded answer (``max_answer_bytes`` of HTTP
body, :data:`MAX_ANSWER_CHARS` of text), enforced on the HTTP path by :class:`DeadlineTransport`: a
silent, dripping or endless endpoint ends in :class:`ModelDeadlineError`, :class:`WallCapReached` or
:class:`ModelAnswerTooLarge`, none of them transient.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import importlib
import ipaddress
import logging
import math
import os
import re
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import openai
from langchain_core.caches import BaseCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import SecretStr

from agents import cancel, loops
from agents.spec import ModelSettings
from reference_sim.errors import SimCoderError

log = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
"""The variable read for the key when the spec names none (or the one it names is unset)."""
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_MODEL = "OPENAI_MODEL"
DEFAULT_MAX_RETRIES = 3
"""Retries of the openai client itself (exponential backoff on 408/409/429/5xx, connection errors, timeouts)."""
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024
DEFAULT_MAX_ANSWER_TOKENS = 4096
"""Tokens one answer may have (sent as ``max_tokens``); an answer cut there ends with ``finish_reason: length``."""
"""The most HTTP body one answer may have (the JSON around the text included)."""
MAX_ANSWER_CHARS = 256 * 1024
"""The most characters an answer's text may have."""
LOCAL_PLACEHOLDER_KEY = "not-needed"
"""Key sent to a local endpoint (vLLM, Ollama, LM Studio accept any key) when no key is set."""
OPENAI_HOST = "api.openai.com"
_LOCAL_HOSTS = frozenset({"localhost"})


class ModelConfigError(SimCoderError, ValueError):
    """The model configuration is incomplete or wrong; the message says what to set."""


class ModelCallError(SimCoderError, RuntimeError):
    """A model call failed for a reason retrying will not fix (bad key, unknown model, bad request)."""


class ModelDeadlineError(ModelCallError):
    """The call (all of the client's retries included) outlasted ``ModelConfig.deadline_s`` and was cut off."""


class WallCapReached(ModelCallError):  # noqa: N818 (names fixed by the interface)
    """The run's wall-time cap (the ``deadline`` given to :func:`ask`) came while the model was answering."""


class ModelAnswerError(ModelCallError):
    """The endpoint answered, more than once, with something that is not a chat completion."""


class ModelAnswerTooLarge(ModelCallError):  # noqa: N818 (names fixed by the interface)
    """The answer exceeded ``ModelConfig.max_answer_bytes`` of HTTP body or :data:`MAX_ANSWER_CHARS` of text."""


@dataclass(frozen=True, repr=False)
class ModelConfig:
    """Everything needed to reach a model except the key, which stays in the environment variable ``api_key_env``.

    ``timeout_s`` bounds each HTTP operation (connect, each read, write); ``deadline_s`` bounds the whole
    call, the client's retries and their waits included; ``max_answer_bytes`` bounds the answer's HTTP body.
    """

    model: str
    base_url: str | None
    api_key_env: str
    temperature: float
    timeout_s: float
    max_retries: int
    seed: int | None
    deadline_s: float = DEFAULT_TIMEOUT_S
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.deadline_s) and self.deadline_s > 0):
            raise ModelConfigError(f"model deadline_s must be a positive number of seconds, got {self.deadline_s!r}")
        if self.max_answer_bytes <= 0:
            raise ModelConfigError(f"model max_answer_bytes must be positive, got {self.max_answer_bytes!r}")
        if self.max_answer_tokens <= 0:
            raise ModelConfigError(f"model max_answer_tokens must be positive, got {self.max_answer_tokens!r}")

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
                f"max_retries={self.max_retries!r}, seed={self.seed!r}, deadline_s={self.deadline_s!r}, "
                f"max_answer_bytes={self.max_answer_bytes!r}, max_answer_tokens={self.max_answer_tokens!r})")

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

    The seed comes from the command line, else from the spec's ``model.seed``.  The call's total
    deadline (``deadline_s``) is the spec's ``timeout_s``; the answer's limit is :data:`DEFAULT_MAX_ANSWER_BYTES`
    (change either with ``dataclasses.replace``).

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
    timeout_s = float(settings.timeout_s) if settings else DEFAULT_TIMEOUT_S
    config = ModelConfig(
        model=name,
        base_url=url,
        api_key_env=key_env,
        temperature=settings.temperature if settings else 0.0,
        timeout_s=timeout_s,
        max_retries=max_retries,
        seed=seed if seed is not None else (settings.seed if settings else None),
        deadline_s=timeout_s,
        max_answer_tokens=settings.max_answer_tokens if settings else DEFAULT_MAX_ANSWER_TOKENS,
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


def _http_module() -> Any:
    """The ``httpx`` library the installed openai client is built on: ``httpx2`` for ``openai>=3``, else ``httpx``."""
    major = re.match(r"\D*(\d+)", str(getattr(openai, "__version__", "")))
    return importlib.import_module("httpx2" if major is not None and int(major.group(1)) >= 3 else "httpx")


if TYPE_CHECKING:
    import httpx as httpx_lib
else:
    httpx_lib = _http_module()
HTTPX = httpx_lib
"""The httpx library the openai client uses: a fake transport must answer with its types."""

_CLIENT_BACKOFF_FIRST_S = 0.5
_CLIENT_BACKOFF_MAX_S = 8.0
_CLIENT_RETRY_AFTER_MAX_S = 120.0
"""The openai client's waits between retries: 0.5 s doubling up to 8 s, or a ``Retry-After`` of up to 120 s."""
_CUT_SLACK_S = 0.5
"""A timeout that fires with less than this left before the deadline is the deadline."""


def client_backoff_s(max_retries: int) -> float:
    """The longest wait of the openai client between two of its ``max_retries`` attempts (no ``Retry-After``)."""
    return min(_CLIENT_BACKOFF_FIRST_S * 2.0 ** max(max_retries - 1, 0), _CLIENT_BACKOFF_MAX_S)


@dataclass(frozen=True)
class _Call:
    started: float
    wall_deadline: float | None


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("simcoder_model_call", default=None)


@contextlib.contextmanager
def call_deadline(deadline: float | None = None, *, started: float | None = None) -> Iterator[None]:
    """Within the block, one model call: a :class:`DeadlineTransport` cuts it ``deadline_s`` after ``started``
    (``time.time()`` now by default) or at ``deadline`` (absolute ``time.time()``, the run's wall cap), the earlier."""
    token = _CALL.set(_Call(time.time() if started is None else started, deadline))
    try:
        yield
    finally:
        _CALL.reset(token)


@dataclass(frozen=True)
class _Cut:
    at: float
    by_wall: bool
    started: float


class _Inflater:
    """Decodes a gzip or deflate body chunk by chunk, never more than asked for at a time."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding != "deflate"
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)
        self._started = False

    def decode(self, data: bytes, room: int) -> bytes:
        """``data`` decoded, stopping after ``room + 1`` bytes (an answer that long is too large anyway)."""
        try:
            out = self._zlib.decompress(data, max(room, 0) + 1)
        except zlib.error as exc:
            if self._gzip or self._started:
                raise httpx_lib.DecodingError(f"the answer's compressed body is corrupt: {exc}") from None
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, max(room, 0) + 1)
        self._started = True
        return out

    def flush(self) -> bytes:
        return self._zlib.flush()


def _capped_timeouts(timeouts: object, left: float) -> dict[str, float]:
    given = timeouts if isinstance(timeouts, dict) else {}
    capped: dict[str, float] = {}
    for key in ("connect", "read", "write", "pool"):
        value = given.get(key)
        capped[key] = left if value is None else min(float(value), left)
    return capped


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            continue
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, IndexError):
        return None


class _LimitedStream(httpx_lib.SyncByteStream):
    """The answer's body, checked against the deadline and the byte cap at every chunk received."""

    def __init__(self, owner: DeadlineTransport, inner: Iterable[bytes], cut: _Cut, inflater: _Inflater | None):
        self._owner = owner
        self._inner = inner
        self._cut = cut
        self._inflater = inflater

    def __iter__(self) -> Iterator[bytes]:
        owner, limit, received = self._owner, self._owner.max_answer_bytes, 0
        try:
            for chunk in self._inner:
                data = self._inflater.decode(chunk, limit - received) if self._inflater else chunk
                received += len(data)
                owner.check(self._cut, received)
                if data:
                    yield data
            if self._inflater is not None:
                tail = self._inflater.flush()
                owner.check(self._cut, received + len(tail))
                if tail:
                    yield tail
        except httpx_lib.TimeoutException as exc:
            if owner.reached(self._cut):
                raise owner.cut_off(self._cut) from exc
            raise

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


class DeadlineTransport(httpx_lib.BaseTransport):
    """An httpx transport that bounds each model call in time and answer size.

    The call's deadline is ``deadline_s`` after the start of the :func:`call_deadline` block around it (set
    by :func:`ask`), or the block's ``deadline`` (the run's wall cap) when earlier; outside such a block,
    each request gets ``deadline_s`` of its own.  The transport refuses a request past the deadline, caps
    its connect/read/write/pool timeouts to the time left, checks the deadline and counts the body's bytes
    at every chunk received (a drip is cut within one chunk's interval of the deadline), turns a timeout
    that fires at the deadline into the deadline's error, and tells the openai client not to retry a
    429/5xx whose wait would end past the deadline (``x-should-retry: false``; the status error then
    propagates, transient).  The client's waits after a timeout or a dropped connection are short
    (:func:`client_backoff_s`); the attempt after one is refused when the deadline has passed.  It asks for
    an uncompressed body and decodes a gzip/deflate one itself, so the cap counts the answer's own bytes.
    Errors: :class:`ModelDeadlineError`, :class:`WallCapReached`, :class:`ModelAnswerTooLarge`.
    """

    def __init__(self, inner: httpx_lib.BaseTransport | None = None, *, model: str, host: str, deadline_s: float,
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
                 max_backoff_s: float = _CLIENT_BACKOFF_MAX_S, clock: Callable[[], float] = time.time) -> None:
        self.inner = inner if inner is not None else httpx_lib.HTTPTransport()
        self.model = model
        self.host = host
        self.deadline_s = deadline_s
        self.max_answer_bytes = max_answer_bytes
        self.max_backoff_s = max_backoff_s
        self.clock = clock

    def handle_request(self, request: httpx_lib.Request) -> httpx_lib.Response:
        cut = self._cut()
        left = cut.at - self.clock()
        if left <= 0:
            raise self.cut_off(cut)
        request.extensions["timeout"] = _capped_timeouts(request.extensions.get("timeout"), left)
        request.headers["Accept-Encoding"] = "identity"
        try:
            response = self.inner.handle_request(request)
        except httpx_lib.TimeoutException as exc:
            if self.reached(cut):
                raise self.cut_off(cut) from exc
            raise
        self._no_retry_past(response, cut)
        encoding = response.headers.get("content-encoding", "").strip().lower()
        inflater = None
        if encoding not in ("", "identity"):
            if encoding not in ("gzip", "x-gzip", "deflate"):
                response.close()
                raise ModelCallError(f"the answer of {self.model} at {self.host} came with the content encoding "
                                     f"{encoding[:40]!r}, not the plain body asked for")
            inflater = _Inflater(encoding)
            del response.headers["content-encoding"]
            if "content-length" in response.headers:
                del response.headers["content-length"]
        response.stream = _LimitedStream(self, cast(Iterable[bytes], response.stream), cut, inflater)
        return response

    def close(self) -> None:
        self.inner.close()

    def check(self, cut: _Cut, received: int) -> None:
        """Raise when ``received`` bytes are over the cap or the deadline has passed."""
        if received > self.max_answer_bytes:
            raise ModelAnswerTooLarge(f"the answer of {self.model} at {self.host} is over "
                                      f"{self.max_answer_bytes} bytes (cut off)")
        if self.clock() >= cut.at:
            raise self.cut_off(cut)

    def reached(self, cut: _Cut) -> bool:
        """True when (all but :data:`_CUT_SLACK_S` of) the time to ``cut`` is spent."""
        return cut.at - self.clock() <= _CUT_SLACK_S

    def cut_off(self, cut: _Cut) -> ModelCallError:
        """The error of a call cut at ``cut``: the run's wall cap, or the call's own deadline."""
        if cut.by_wall:
            elapsed = max(self.clock() - cut.started, 0.0)
            return WallCapReached(f"the run's wall-time cap was reached while {self.model} at {self.host} was "
                                  f"answering (call cancelled after {elapsed:.1f} s)")
        return ModelDeadlineError(f"model call to {self.model} at {self.host} took longer than its deadline of "
                                  f"{self.deadline_s:g} s (cut off; a slow model needs a longer model.timeout_s "
                                  "in the spec, or --model-timeout-s)")

    def _cut(self) -> _Cut:
        call = _CALL.get()
        started = call.started if call is not None else self.clock()
        own = started + self.deadline_s
        wall = call.wall_deadline if call is not None else None
        if wall is not None and wall < own:
            return _Cut(wall, True, started)
        return _Cut(own, False, started)

    def _no_retry_past(self, response: httpx_lib.Response, cut: _Cut) -> None:
        status = response.status_code
        if status not in _TRANSIENT_STATUS and status < 500:
            return
        wait = _retry_after_s(response.headers)
        if wait is None or not 0 < wait <= _CLIENT_RETRY_AFTER_MAX_S:
            wait = self.max_backoff_s
        if self.clock() + wait >= cut.at:
            response.headers["x-should-retry"] = "false"


def _env_proxy(base_url: str | None) -> str | None:
    """The proxy the environment sets for ``base_url`` (httpx ignores the environment once given a transport)."""
    parts = urlsplit(base_url or f"https://{OPENAI_HOST}/v1")
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def make_chat_model(config: ModelConfig, env: Mapping[str, str] | None = None, *,
                    transport: httpx_lib.BaseTransport | None = None, cache: BaseCache | None = None) -> ChatOpenAI:
    """A ``ChatOpenAI`` for ``config``; its openai client retries 408/409/429/5xx and timeouts ``max_retries`` times.

    Its HTTP client sends through a :class:`DeadlineTransport` around ``transport`` (by default an
    ``HTTPTransport``, through the environment's proxy if one applies).  Only the sync path (``invoke``,
    ``stream``) is bounded; the async client is langchain's default.  With ``cache`` (e.g. an
    :class:`agents.answer_cache.AnswerCache`) an answer already given to the same prompt and parameters
    is taken from it.
    """
    inner = transport if transport is not None else httpx_lib.HTTPTransport(proxy=_env_proxy(config.base_url))
    limited = DeadlineTransport(inner, model=config.model, host=config.base_url_host or OPENAI_HOST,
                                deadline_s=config.deadline_s, max_answer_bytes=config.max_answer_bytes,
                                max_backoff_s=client_backoff_s(config.max_retries))
    kwargs: dict[str, Any] = {
        "model": config.model,
        "base_url": config.base_url,
        "api_key": SecretStr(api_key(config, env)),
        "temperature": config.temperature,
        "timeout": config.timeout_s,
        "max_retries": config.max_retries,
        "http_client": httpx_lib.Client(transport=limited, timeout=config.timeout_s, follow_redirects=True),
    }
    if config.seed is not None:
        kwargs["seed"] = config.seed
    if cache is not None:
        kwargs["cache"] = cache
    if config.base_url is None or config.base_url_host == OPENAI_HOST:
        kwargs["max_tokens"] = config.max_answer_tokens
    else:
        kwargs["extra_body"] = {"max_tokens": config.max_answer_tokens}
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
    """True for errors a LangGraph ``RetryPolicy(retry_on=is_transient)`` should retry.

    Never for a :class:`ModelCallError`: a call cut at its deadline already had the client's retries.
    """
    if isinstance(exc, ModelCallError):
        return False
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
    cached: bool = False
    """Taken from the answer cache: no call was made and the tokens are 0."""
    finish_reason: str | None = None
    """Why the model stopped, as it said (``stop``; ``length`` when cut at ``max_tokens``); ``None``: not said."""

    @property
    def truncated(self) -> bool:
        """The answer was cut off before the model ended it: at the length limit, or stopped (:data:`STOPPED`)."""
        return self.finish_reason in ("length", *STOPPED)


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


def _model_name(model: BaseChatModel) -> str:
    return str(getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__)


def _model_where(model: BaseChatModel) -> str:
    """``MODEL at HOST`` for an OpenAI chat model, ``MODEL`` for others."""
    if not isinstance(model, BaseChatOpenAI):
        return _model_name(model)
    base = getattr(model, "openai_api_base", None)
    return f"{_model_name(model)} at {_host_port(base) if base else OPENAI_HOST}"


def _call_error(exc: BaseException, model: BaseChatModel) -> ModelCallError:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    line = " ".join(str(message).split())
    line = _KEYLIKE.sub("***", redact(line, _model_secrets(model)))
    if len(line) > 300:
        line = line[:297] + "..."
    what = f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
    return ModelCallError(f"model call to {_model_name(model)} failed ({what}, not retried): {line}")


def _estimate_tokens(text: str) -> int:
    return len(text) // 4


ANSWER_TRIES = 3
"""How often an answer that is not a chat completion is asked for, in all, before it is a :class:`ModelAnswerError`."""
ANSWER_RETRY_S = 1.0


def _not_a_completion(exc: BaseException, model: BaseChatModel) -> bool:
    """True for what an OpenAI chat model raises when a 200 answer is not a chat completion (HTML, garbage, an
    empty body, JSON without ``choices``): a plain ``ValueError``/``TypeError``/``IndexError``/``KeyError``.
    Other chat models' errors are theirs and propagate unchanged."""
    return isinstance(model, BaseChatOpenAI) and isinstance(exc, (ValueError, TypeError, IndexError, KeyError)) \
        and not isinstance(exc, (openai.APIError, ModelError, SimCoderError))


PROGRESS_EVERY_S = 5.0
"""How often a streamed answer reports its progress, seconds."""


class _Progress(BaseCallbackHandler):
    """Counts a streamed answer's tokens and reports them every :data:`PROGRESS_EVERY_S` seconds, with the
    seconds since its first token (the writing time: the minutes a local server spends reading the prompt
    before it would make the rate look ten times slower)."""

    def __init__(self, report: Callable[[int, float], None]) -> None:
        self.report = report
        self.tokens = 0
        self.last = time.monotonic()
        self.first: float | None = None

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
        self.tokens += 1
        now = time.monotonic()
        if self.first is None:
            self.first = now
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.report(self.tokens, now - self.first)


STOPPED: tuple[loops.StopReason, ...] = ("loop", "outline")
"""``Answer.finish_reason`` of a streamed answer stopped while written (:func:`agents.loops.stop_reason`)."""


_STOP_WHY: dict[loops.StopReason, str] = {"loop": "kept writing the same lines",
                                           "outline": "was copying the module's outline"}


class _StoppedError(Exception):
    """Raised from a streamed answer's callback to stop it (:func:`agents.loops.stop_reason`); holds why, what
    was written and the tokens counted.  Leaving the stream closes the connection, so the server stops too."""

    def __init__(self, reason: loops.StopReason, text: str, tokens: int) -> None:
        super().__init__(f"the answer was stopped ({reason})")
        self.reason = reason
        self.text = text
        self.tokens = tokens


class _RunOnGuard(BaseCallbackHandler):
    """Stops a streamed answer that runs on: small models repeat a block of lines, or copy the prompt's outline
    of the module, until the length limit, minutes of tokens that are thrown away."""

    raise_error = True

    def __init__(self) -> None:
        self.text = ""
        self.tokens = 0

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
        piece = content_text(token)
        self.text += piece
        self.tokens += 1
        if "\n" in piece:
            reason = loops.stop_reason(self.text)
            if reason is not None:
                raise _StoppedError(reason, self.text, self.tokens)


class _QuietPlannedStops(logging.Filter):
    """LangChain logs every exception a callback raises as a warning, the guard's planned stop included; that
    one is reported by :func:`ask` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.args, tuple) and record.args[:1] == (_RunOnGuard.__name__,))


logging.getLogger("langchain_core.callbacks.manager").addFilter(_QuietPlannedStops())


def _remember_stopped(model: BaseChatModel, messages: Sequence[BaseMessage], kwargs: Mapping[str, Any],
                      stopped: _StoppedError) -> None:
    """Keep a stopped answer in the model's answer cache under the key LangChain looks it up by (it writes the
    cache only when a call returns), so a resumed run pays for it once."""
    if not isinstance(model.cache, BaseCache):
        return
    call = {key: value for key, value in kwargs.items() if key != "config"}
    message = AIMessage(content=stopped.text, response_metadata={"finish_reason": stopped.reason},
                        usage_metadata={"input_tokens": 0, "output_tokens": stopped.tokens,
                                        "total_tokens": stopped.tokens})
    model.cache.update(dumps(list(messages)), model._get_llm_string(stop=None, **call),
                       [ChatGeneration(message=message)])


def _stream_handlers(on_progress: Callable[[int, float], None] | None) -> list[BaseCallbackHandler]:
    """Fresh handlers for one streamed call: the run-on guard, and the progress reports when asked for."""
    handlers: list[BaseCallbackHandler] = [_RunOnGuard()]
    if on_progress is not None:
        handlers.append(_Progress(on_progress))
    return handlers


def ask(model: BaseChatModel, messages: Sequence[BaseMessage], *, timeout_s: float | None = None,
        deadline: float | None = None, temperature: float | None = None, seed: int | None = None,
        on_progress: Callable[[int, float], None] | None = None) -> Answer:
    """Send ``messages`` to ``model`` once and return its :class:`Answer`.

    The text is the answer's string content, or the ``text`` blocks of list content; reasoning that a
    model returns in other blocks or in ``additional_kwargs`` is ignored.  Token counts come from the
    message's ``usage_metadata``; when a model reports none (langchain's fake chat models, some local
    servers) they are *estimated* as ``len(text) // 4`` of the prompt and of the answer, and
    ``Answer.estimated`` is set.  ``timeout_s`` overrides the HTTP timeout of an OpenAI chat model for
    this call (other chat models take no timeout; it is ignored for them); so do ``temperature`` and ``seed``
    (a retry asks with another temperature or seed so that it can answer differently).  An OpenAI chat
    model's answer is streamed (usage included), so an answer that takes minutes shows its progress:
    ``on_progress(tokens_so_far, seconds_since_the_first_token)`` every :data:`PROGRESS_EVERY_S` seconds; one
    that runs on (:func:`agents.loops.stop_reason`) is stopped there and returned as written, with that reason
    as ``finish_reason`` and estimated tokens (the usage comes only at the stream's end).

    ``deadline`` is the run's wall cap (absolute ``time.time()``).  The call runs inside
    :func:`call_deadline`, so a model from :func:`make_chat_model` is cut at ``ModelConfig.deadline_s``
    from now or at ``deadline``, the earlier (:class:`ModelDeadlineError`, :class:`WallCapReached`), and
    its answer at ``max_answer_bytes`` (:class:`ModelAnswerTooLarge`).  Other chat models (tests' fakes)
    are not cut by time; for every model a ``deadline`` already past raises :class:`WallCapReached`
    before the call, and a text over :data:`MAX_ANSWER_CHARS` raises :class:`ModelAnswerTooLarge`.

    Transient errors (:func:`is_transient`) propagate unchanged so the node's retry policy can retry;
    other API errors raise :class:`ModelCallError` with a one-line message that never holds the key.
    """
    kwargs: dict[str, Any] = {}
    if isinstance(model, BaseChatOpenAI):
        given = {"timeout": timeout_s, "temperature": temperature, "seed": seed}
        kwargs.update({k: v for k, v in given.items() if v is not None})
        kwargs.update(stream=True, stream_usage=True)
    if deadline is not None and deadline <= time.time():
        raise WallCapReached(f"the run's wall-time cap was reached before {_model_where(model)} was asked "
                             "(call not made)")
    start = time.perf_counter()
    with call_deadline(deadline):
        for attempt in range(ANSWER_TRIES):
            if kwargs.get("stream"):
                kwargs["config"] = {"callbacks": _stream_handlers(on_progress)}
            try:
                reply = cancel.interruptible(lambda: model.invoke(list(messages), **kwargs),
                                             f"the answer of {_model_where(model)}")
                break
            except _StoppedError as stopped:
                log.info("%s %s: stopped after %d tokens", _model_where(model), _STOP_WHY[stopped.reason],
                         stopped.tokens)
                prompt = sum(len(content_text(m.content)) for m in messages)
                _remember_stopped(model, messages, kwargs, stopped)
                return Answer(stopped.text, prompt // 4, stopped.tokens, time.perf_counter() - start,
                              estimated=True, finish_reason=stopped.reason)
            except Exception as exc:
                if _not_a_completion(exc, model):
                    if attempt + 1 < ANSWER_TRIES:
                        log.warning("%s answered with something that is not a chat completion (%s); asking again",
                                    _model_where(model), type(exc).__name__)
                        time.sleep(ANSWER_RETRY_S * (attempt + 1))
                        continue
                    raise ModelAnswerError(
                        f"{_model_where(model)} answered {ANSWER_TRIES} times with something that is not a chat "
                        f"completion (an HTML page, garbage, an empty body or JSON without choices: "
                        f"{type(exc).__name__})") from None
                if is_transient(exc) or not isinstance(exc, (openai.APIError, ModelError)):
                    raise
                raise _call_error(exc, model) from None
    seconds = time.perf_counter() - start
    text = content_text(reply.content)
    if len(text) > MAX_ANSWER_CHARS:
        raise ModelAnswerTooLarge(f"the answer of {_model_where(model)} is over {MAX_ANSWER_CHARS} characters "
                                  "(cut off)")
    metadata = getattr(reply, "response_metadata", None) or {}
    finish = metadata.get("finish_reason")
    finish_reason = str(finish) if finish else None
    if metadata.get("cache_hit") is True:
        return Answer(text, 0, 0, seconds, cached=True, finish_reason=finish_reason)
    usage = getattr(reply, "usage_metadata", None)
    if usage:
        return Answer(text, int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)), seconds,
                      finish_reason=finish_reason)
    prompt = sum(len(content_text(m.content)) for m in messages)
    return Answer(text, prompt // 4, _estimate_tokens(text), seconds, estimated=True, finish_reason=finish_reason)
