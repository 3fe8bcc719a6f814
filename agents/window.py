"""The model's context window, known before a prompt is sent.

A local server's window is small (llama.cpp serves what ``-c`` says, Ollama 2,048 or 4,096 tokens
unless told otherwise), and a prompt that overflows it is cut or refused by the server after minutes
of reading.  :func:`resolve` asks the server where it says (llama.cpp's ``GET /props``, a vLLM-style
model list's ``max_model_len``), else takes the configured ``model.context_tokens`` /
``--context-tokens``; :meth:`Window.problem` says, before the call, when a prompt and the room for
its answer do not fit.  Prompt sizes are estimated at :data:`CHARS_PER_TOKEN` characters a token, on
the safe side for code and English.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from langchain_core.messages import BaseMessage

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3.0
"""Characters per token of the estimate (Qwen2.5-Coder's tokenizer: about 3.5 on our prompts)."""
ASK_TIMEOUT_S = 5.0
MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class Window:
    """A context window in tokens and where it was learnt (for messages and the report)."""

    tokens: int
    source: str

    def problem(self, messages: Sequence[BaseMessage], answer_tokens: int) -> str | None:
        """Why ``messages`` with room for ``answer_tokens`` do not fit (one line), or ``None``."""
        prompt = estimate_tokens(messages)
        if prompt + answer_tokens <= self.tokens:
            return None
        return (f"the prompt (about {prompt} tokens) and room for the answer ({answer_tokens} tokens) do not fit the "
                f"model's context window of {self.tokens} tokens ({self.source}); use a model or server with a larger "
                "window, a smaller model.max_answer_tokens, or a strategy without examples (zero_shot, cot)")


def estimate_tokens(messages: Sequence[BaseMessage]) -> int:
    """The prompt's size in tokens, estimated on the safe side."""
    return math.ceil(sum(len(str(m.content)) for m in messages) / CHARS_PER_TOKEN)


def _server_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root[:-3] if root.endswith("/v1") else root


def _get_json(client: httpx.Client, url: str) -> object:
    with client.stream("GET", url) as response:
        if response.status_code != 200:
            return None
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def ask_server(base_url: str, model: str, *, transport: httpx.BaseTransport | None = None) -> Window | None:
    """The window the server at ``base_url`` says it serves ``model`` with, or ``None`` when it does not say
    (or does not answer within :data:`ASK_TIMEOUT_S`)."""
    try:
        with httpx.Client(timeout=ASK_TIMEOUT_S, follow_redirects=False, transport=transport) as client:
            props = _get_json(client, f"{_server_root(base_url)}/props")
            if isinstance(props, dict):
                settings = props.get("default_generation_settings")
                found = _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None
                found = found or _positive(props.get("n_ctx"))
                if found:
                    return Window(found, "the server's /props")
            listing = _get_json(client, f"{base_url.rstrip('/')}/models")
    except httpx.HTTPError as exc:
        logger.info("the server at %s did not say its context window: %s", base_url, type(exc).__name__)
        return None
    entries = listing.get("data") if isinstance(listing, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            found = _positive(entry.get("max_model_len")) or _positive(entry.get("context_length"))
            if found:
                return Window(found, "the server's model list")
    return None


def configured(tokens: int | None) -> Window | None:
    """The window the spec (``model.context_tokens``) or the operator (``--context-tokens``) gives."""
    return Window(tokens, "model.context_tokens / --context-tokens") if tokens else None


def resolve(base_url: str | None, model: str, tokens: int | None, *,
            transport: httpx.BaseTransport | None = None) -> Window | None:
    """The server's window where it says (not asked of OpenAI's API), else the configured one, else ``None``."""
    if base_url is not None:
        found = ask_server(base_url, model, transport=transport)
        if found is not None:
            return found
    return configured(tokens)
