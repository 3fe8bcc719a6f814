"""Test doubles for the agent graph: a scripted chat model and a small, fast spec."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

from agents import llm, skeleton
from judge import executors, mutants, reference_runs
from judge.mutants import MUTANTS

REPO = Path(__file__).resolve().parents[1]
_MODULE = re.compile(r"## The module: `(\w+)\.py`")
_FEATURE = re.compile(r"## The feature: `(\w+)`")
_UNIT = re.compile(r"(?:## The unit to write: |the unit )`(\w+)`")


def fenced(code: str, before: str = "Here is the module.") -> str:
    """An answer the way a model writes one: prose, then one python block."""
    return f"{before}\n\n```python\n{code}\n```\n"


def reference_answer(role: str) -> str:
    return fenced(reference_runs.reference_code(role))


def mutant_answer(mutant_id: str, role: str) -> str:
    mutant = next(m for m in MUTANTS if m.id == mutant_id)
    return fenced(mutants.candidate_files(mutant)[f"{role}.py"])


def unit_answer(role: str, unit: str) -> str:
    return fenced(skeleton.skeleton(role).unit(unit).reference, before=f"The unit {unit}:")


class Request:
    """What one call asked for, read from the rendered prompt."""

    def __init__(self, messages: Sequence[BaseMessage]) -> None:
        self.messages = list(messages)
        self.text = "\n".join(str(m.content) for m in messages)
        self.first = str(messages[1].content) if len(messages) > 1 else self.text
        self.last = str(messages[-1].content)
        found = _MODULE.search(self.first)
        feature = _FEATURE.search(self.first)
        self.feature = feature.group(1) if feature else None
        self.module = found.group(1) if found else f"feature_{self.feature}" if self.feature else ""
        unit = _UNIT.search(self.first)
        self.unit = unit.group(1) if unit else None
        opening = self.first[:400]
        self.kind = "optimise" if "is too slow" in opening else "repair" if "and rejected" in opening else "write"
        self.retry = len(messages) > 2


Responder = Callable[[Request], "str | BaseException"]


class ScriptedChatModel(BaseChatModel):
    """A chat model whose answers a test function picks from each request (thread-safe, records every call)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    respond: Any
    _calls: list[Request] = PrivateAttr(default_factory=list)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    @property
    def calls(self) -> list[Request]:
        return list(self._calls)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request = Request(messages)
        with self._lock:
            self._calls.append(request)
        answer = self.respond(request)
        if isinstance(answer, BaseException):
            raise answer
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


def sse_events(text: str, finish_reason: str = "stop", prompt_tokens: int = 10,
               completion_tokens: int | None = None, chunk_chars: int = 16) -> Iterator[bytes]:
    """An OpenAI chat completion as server-sent events, one at a time: the text in chunks, the finish reason,
    the usage."""
    head = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text[i:i + chunk_chars]},
                                    "finish_reason": None}]} for i in range(0, len(text), chunk_chars)]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
    out = len(text) // 4 if completion_tokens is None else completion_tokens
    events.append({**head, "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out,
                                                    "total_tokens": prompt_tokens + out}})
    for event in events:
        yield b"data: " + json.dumps(event).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def sse_completion(text: str, finish_reason: str = "stop", prompt_tokens: int = 10,
                   completion_tokens: int | None = None, chunk_chars: int = 16) -> bytes:
    """An OpenAI chat completion as server-sent events (:func:`sse_events`), in one body."""
    return b"".join(sse_events(text, finish_reason, prompt_tokens, completion_tokens, chunk_chars))


class OpenAIEndpoint:
    """A real ``ChatOpenAI`` whose HTTP requests a test function answers in this process (no socket).

    ``respond`` gets the :class:`Request` and returns the answer's text, or ``(text, finish_reason)``;
    every request's JSON body is kept in ``bodies``.  A streamed answer is sent one event at a time as the
    client reads it; ``events_sent`` counts them.
    """

    def __init__(self, respond: Callable[[Request], str | tuple[str, str]], *, cache: Any = None,
                 **config: Any) -> None:
        self.respond = respond
        self.bodies: list[dict[str, Any]] = []
        self.calls: list[Request] = []
        self.events_sent = 0
        self._lock = threading.Lock()
        settings: dict[str, Any] = {"model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "OPENAI_API_KEY",
                                    "temperature": 0.0, "timeout_s": 30.0, "max_retries": 0, "seed": None,
                                    "deadline_s": 60.0, **config}
        self.model = llm.make_chat_model(llm.ModelConfig(**settings), {},
                                         transport=llm.HTTPX.MockTransport(self._answer), cache=cache)

    def _counted(self, events: Iterator[bytes]) -> Iterator[bytes]:
        for event in events:
            with self._lock:
                self.events_sent += 1
            yield event

    def _answer(self, http: Any) -> Any:
        body = json.loads(http.content)
        request = Request(convert_to_messages(body["messages"]))
        with self._lock:
            self.bodies.append(body)
            self.calls.append(request)
        found = self.respond(request)
        text, finish = (found, "stop") if isinstance(found, str) else found
        if body.get("stream"):
            return llm.HTTPX.Response(200, headers={"Content-Type": "text/event-stream"},
                                      content=self._counted(sse_events(text, finish)))
        return llm.HTTPX.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(text) // 4,
                      "total_tokens": 10 + len(text) // 4}})


def small_spec(tmp_path: Path, *, variants: int = 4, final_check: str = "small_net", **extra: Any) -> Path:
    """scale_sim.yaml with fewer variants and a small final check (fast graph tests)."""
    data = yaml.safe_load((REPO / "scale_sim.yaml").read_text(encoding="utf-8"))
    data["verification"]["variants"] = data["verification"]["variants"][:variants]
    data["workloads"].append({"name": "small_net", "layers": [
        {"name": "c1", "ifmap_h": 20, "ifmap_w": 20, "filter_h": 3, "filter_w": 3, "channels": 8,
         "num_filters": 24, "stride_h": 1},
        {"name": "g1", "m": 60, "n": 50, "k": 40}]})
    data["verification"]["final_check"] = [final_check]
    data.update(extra)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def in_process(folder: Path) -> executors.Executor:
    """The unit tests' sandbox: trusted code run in this process."""
    return executors.InProcessExecutor(folder)


def local_host(model: Any = None, **operator: Any) -> Any:
    """A graph host for unit tests: the operator on their own machine, candidates run in this process."""
    from agents.run_config import NO_MAXIMA, OperatorSettings
    from graph.host import Host

    operator.setdefault("maxima", NO_MAXIMA)
    return Host(OperatorSettings(remote=False, **operator), chat_model=model, executor_factory=in_process)


def agent_spec(path: Path) -> Any:
    """The agents' view of a spec file."""
    from agents.spec import load_agent_spec

    return load_agent_spec(path).spec
