"""The model's context window: asked of the server, else configured; a prompt that does not fit is one line."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents import window

BASE = "http://127.0.0.1:9/v1"


def _server(routes: dict[str, object]) -> tuple[httpx.MockTransport, list[str]]:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        body = routes.get(request.url.path)
        if body is None:
            return httpx.Response(404, text="not found")
        return httpx.Response(200, content=body if isinstance(body, bytes) else json.dumps(body).encode())
    return httpx.MockTransport(answer), asked


def test_llama_cpp_props_say_the_window() -> None:
    transport, asked = _server({"/props": {"default_generation_settings": {"n_ctx": 32768}}})
    assert window.resolve(BASE, "m", 4096, transport=transport) == window.Window(32768, "the server's /props")
    assert asked == ["/props"]


def test_a_model_list_with_max_model_len_says_the_window() -> None:
    transport, asked = _server({"/v1/models": {"data": [{"id": "other", "max_model_len": 9},
                                                        {"id": "m", "max_model_len": 8192}]}})
    assert window.resolve(BASE, "m", None, transport=transport) == window.Window(8192, "the server's model list")
    assert asked == ["/props", "/v1/models"]


@pytest.mark.parametrize("routes", [
    {},
    {"/props": {"default_generation_settings": {"n_ctx": True}}, "/v1/models": {"data": [{"id": "m"}]}},
    {"/props": b"<html>not json</html>", "/v1/models": b"[1, 2]"},
    {"/props": b"{" + b" " * (window.MAX_BODY_BYTES + 10) + b"}"},
])
def test_a_server_that_does_not_say_leaves_the_configured_window(routes: dict[str, object]) -> None:
    transport, _ = _server(routes)
    assert window.resolve(BASE, "m", 4096, transport=transport) == window.Window(
        4096, "model.context_tokens / --context-tokens")
    assert window.resolve(BASE, "m", None, transport=transport) is None


def test_an_unreachable_server_leaves_the_configured_window() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert window.resolve(BASE, "m", 2048, transport=httpx.MockTransport(refuse)) == window.configured(2048)


def test_openais_api_is_not_asked() -> None:
    never: Callable[[httpx.Request], httpx.Response] = lambda request: pytest.fail("asked")  # noqa: E731
    assert window.resolve(None, "gpt", None, transport=httpx.MockTransport(never)) is None


def test_a_prompt_that_does_not_fit_is_one_line_naming_both_sizes() -> None:
    messages = [SystemMessage(content="s" * 3000), HumanMessage(content="h" * 3000)]
    assert window.estimate_tokens(messages) == 2000
    small = window.Window(4096, "the server's /props")
    assert small.problem(messages, 2096) is None
    problem = small.problem(messages, 2097)
    assert problem is not None and "\n" not in problem
    assert "about 2000 tokens" in problem and "(2097 tokens)" in problem and "window of 4096 tokens" in problem
