"""A scripted, local OpenAI-compatible HTTP server for tests (standard library only).

Run as ``python tests/fake_openai_server.py --script SCRIPT.json --port-file PORTFILE [--log LOG.jsonl]``.
It binds 127.0.0.1 on a free port, writes the port to PORTFILE and serves ``POST /v1/chat/completions``
(as one JSON body, or as server-sent events when the request says ``"stream": true``) and ``GET /v1/models``.
The script is a JSON list of steps, consumed one per chat request:

* ``{"content": "..."}`` -- answer with this text (optional ``"usage": {"prompt_tokens": n, "completion_tokens": m}``,
  else both are estimated as characters // 4; optional ``"finish_reason"``, default ``stop``); streamed, the text
  comes in chunks of :data:`STREAM_CHUNK_CHARS` characters, then the finish reason, then (when the request's
  ``stream_options.include_usage`` is set) the usage;
* ``{"status": 429, "body": {...}}`` -- answer with this HTTP status and JSON body (optional ``"headers"``);
* ``{"raw": "...", "content_type": "text/html"}`` -- answer 200 with these bytes as they are (``raw_hex``: bytes
  given in hex), e.g. an HTML page, garbage or an empty body;
* ``{"delay_s": x, ...}`` -- wait ``x`` seconds before answering;
* ``"match": "substring"`` (any step) -- the last user message must contain it, else the server answers 500
  with an explanation and does not consume the step;
* ``{"hang_s": x}`` -- never answer: hold the connection open, sending nothing, until the client closes it or
  ``x`` seconds have passed;
* ``{"drip_s": x}`` -- send a 200's headers, then one byte (a JSON space) every ``x`` seconds, for at most
  ``"drip_max_s"`` seconds (default :data:`MAX_HOLD_S`), then close the connection;
* ``{"huge_bytes": n}`` -- answer with a text of ``n`` bytes, generated and sent 64 KiB at a time (never held
  in memory), with its ``Content-Length``.

Holds and drips last at most :data:`MAX_HOLD_S` seconds and end when the server stops; a huge answer is at most
:data:`MAX_HUGE_BYTES`.  How each of these three ended (``bytes`` of body sent, ``client_closed``,
``seconds``) is appended to the outcome log (``--outcome-log``, JSON lines).

When the script runs out the server answers 500 "script exhausted".  Its own 500s carry
``x-should-retry: false`` so the openai client shows them at once instead of retrying.  Each request is
appended to the log (JSON lines: path, model, messages, temperature, seed, other parameters, the step
index, the client's port, the Accept-Encoding header, and whether an Authorization header was sent -- never
its value).
The server stops after ``--idle-timeout-s`` seconds without requests (default 300) and on SIGTERM.

:class:`FakeOpenAIServer` starts it as a subprocess for a test and stops it by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

FORBIDDEN_PORT = 2024
MAX_HOLD_S = 120.0
"""The longest a hang or a drip lasts."""
STREAM_CHUNK_CHARS = 40
"""Characters per streamed chunk."""
MAX_HUGE_BYTES = 1 << 30
"""The largest huge answer."""
HUGE_CHUNK = 64 * 1024
MIN_DRIP_S = 0.05


class _State:
    def __init__(self, script: list[dict[str, Any]], log: Path | None, model: str,
                 outcome_log: Path | None = None) -> None:
        self.script = script
        self.next = 0
        self.log = log
        self.outcome_log = outcome_log
        self.model = model
        self.lock = threading.Lock()
        self.last_activity = time.monotonic()
        self.served = 0
        self.stop = threading.Event()

    def record(self, entry: dict[str, Any]) -> None:
        self._append(self.log, entry)

    def outcome(self, entry: dict[str, Any]) -> None:
        self._append(self.outcome_log, entry)

    def _append(self, path: Path | None, entry: dict[str, Any]) -> None:
        if path is None:
            return
        with self.lock, path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return ""


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeOpenAI/1"
    state: _State

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log file is the record."""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            self.wfile.write(data)

    def _send_events(self, events: list[dict[str, Any]]) -> None:
        data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def _send_raw(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def _fail(self, message: str, status: int = 500) -> None:
        self._send(status, {"error": {"message": message, "type": "fake_server_error", "code": None}},
                   {"x-should-retry": "false"})

    def _client_closed(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (less if the server stops); True as soon as the client closes the connection."""
        end = time.monotonic() + min(seconds, MAX_HOLD_S)
        while not self.state.stop.is_set() and (left := end - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.1))
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except OSError:
                    return True
                self.state.stop.wait(min(left, 0.1))
        return False

    def _hang(self, index: int, seconds: float) -> None:
        start = time.monotonic()
        closed = self._client_closed(seconds)
        self.close_connection = True
        self.state.outcome({"step": index, "mode": "hang", "bytes": 0, "client_closed": closed,
                            "seconds": round(time.monotonic() - start, 3)})

    def _drip(self, index: int, interval: float, most_s: float) -> None:
        start = time.monotonic()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.close_connection = True
        sent, closed = 0, False
        interval = max(interval, MIN_DRIP_S)
        for _ in range(int(min(most_s, MAX_HOLD_S) / interval)):
            if self.state.stop.wait(interval):
                break
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sent += 1
        self.state.outcome({"step": index, "mode": "drip", "bytes": sent, "client_closed": closed,
                            "seconds": round(time.monotonic() - start, 3)})

    def _huge(self, index: int, size: int, model: str, stream: bool) -> None:
        start = time.monotonic()
        size = max(0, min(size, MAX_HUGE_BYTES))
        if stream:
            self._huge_events(index, size, model, start)
            return
        head = json.dumps({"id": f"chatcmpl-fake-{index}", "object": "chat.completion", "created": int(time.time()),
                           "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                                                        "finish_reason": "stop", "logprobs": None}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": size // 4,
                                     "total_tokens": 1 + size // 4}}).encode()
        cut = head.index(b'"content": ""') + len(b'"content": "')
        prefix, suffix = head[:cut], head[cut:]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(prefix) + size + len(suffix)))
        self.end_headers()
        self.close_connection = True
        sent, closed, chunk = 0, False, b"x" * HUGE_CHUNK
        try:
            self.wfile.write(prefix)
            sent += len(prefix)
            for offset in range(0, size, HUGE_CHUNK):
                if self.state.stop.is_set():
                    break
                piece = chunk[:min(HUGE_CHUNK, size - offset)]
                self.wfile.write(piece)
                sent += len(piece)
            else:
                self.wfile.write(suffix)
                sent += len(suffix)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        self.state.outcome({"step": index, "mode": "huge", "bytes": sent, "client_closed": closed,
                            "seconds": round(time.monotonic() - start, 3)})

    def _huge_events(self, index: int, size: int, model: str, start: float) -> None:
        """A huge answer as server-sent events of :data:`HUGE_CHUNK` characters each."""
        base = {"id": f"chatcmpl-fake-{index}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        head = json.dumps({**base, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": None}]})
        cut = head.index('"content": ""') + len('"content": "')
        prefix, suffix = b"data: " + head[:cut].encode(), head[cut:].encode() + b"\n\n"
        tail = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": size // 4,
                                              "total_tokens": 1 + size // 4}})) + b"data: [DONE]\n\n"
        events = (size + HUGE_CHUNK - 1) // HUGE_CHUNK
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(events * (len(prefix) + len(suffix)) + size + len(tail)))
        self.end_headers()
        self.close_connection = True
        sent, closed, chunk = 0, False, b"x" * HUGE_CHUNK
        try:
            for offset in range(0, size, HUGE_CHUNK):
                if self.state.stop.is_set():
                    break
                event = prefix + chunk[:min(HUGE_CHUNK, size - offset)] + suffix
                self.wfile.write(event)
                sent += len(event)
            else:
                self.wfile.write(tail)
                sent += len(tail)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        self.state.outcome({"step": index, "mode": "huge", "bytes": sent, "client_closed": closed,
                            "seconds": round(time.monotonic() - start, 3)})

    def do_GET(self) -> None:
        self.state.last_activity = time.monotonic()
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [
                {"id": self.state.model, "object": "model", "created": 0, "owned_by": "fake"}]})
        else:
            self._fail(f"no such path {self.path}", 404)

    def do_POST(self) -> None:
        state = self.state
        state.last_activity = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._fail(f"no such path {self.path}", 404)
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._fail(f"request body is not JSON: {exc}", 400)
            return
        messages = body.get("messages") or []
        with state.lock:
            index = state.next
            step = state.script[index] if index < len(state.script) else None
            matched = step is None or "match" not in step or str(step["match"]) in _last_user(messages)
            if step is not None and matched:
                state.next += 1
        extra = {k: v for k, v in body.items() if k not in ("messages", "model", "temperature", "seed")}
        state.record({"path": self.path, "model": body.get("model"), "messages": messages,
                      "temperature": body.get("temperature"), "seed": body.get("seed"), "params": extra,
                      "authorization": bool(self.headers.get("Authorization")),
                      "accept_encoding": self.headers.get("Accept-Encoding"), "step": index,
                      "matched": matched, "time": time.time(), "client_port": self.client_address[1]})
        if step is None:
            self._fail(f"script exhausted: {len(state.script)} step(s) served, request {index + 1} has none")
            return
        if not matched:
            self._fail(f"script step {index} expects the last user message to contain {step['match']!r}; "
                       f"it was {_last_user(messages)[:200]!r}")
            return
        if "hang_s" in step:
            self._hang(index, float(step["hang_s"]))
            return
        if "drip_s" in step:
            self._drip(index, float(step["drip_s"]), float(step.get("drip_max_s", MAX_HOLD_S)))
            return
        if "huge_bytes" in step:
            self._huge(index, int(step["huge_bytes"]), body.get("model") or state.model, bool(body.get("stream")))
            return
        if step.get("delay_s"):
            time.sleep(float(step["delay_s"]))
        if "raw" in step or "raw_hex" in step:
            self._send_raw(bytes.fromhex(step["raw_hex"]) if "raw_hex" in step else str(step["raw"]).encode(),
                           str(step.get("content_type", "text/html")))
            return
        if "status" in step:
            status = int(step["status"])
            default = {"error": {"message": f"scripted status {status}", "type": "scripted", "code": status}}
            self._send(status, step.get("body", default), step.get("headers"))
            return
        content = str(step.get("content", ""))
        prompt = sum(len(_text(m.get("content"))) for m in messages) // 4
        usage = {"prompt_tokens": prompt, "completion_tokens": len(content) // 4, **step.get("usage", {})}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        finish = str(step.get("finish_reason", "stop"))
        head = {"id": f"chatcmpl-fake-{index}", "created": int(time.time()), "model": body.get("model") or state.model}
        if body.get("stream"):
            pieces = [content[i:i + STREAM_CHUNK_CHARS] for i in range(0, len(content), STREAM_CHUNK_CHARS)]
            events = [{**head, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                                    "finish_reason": None}]} for piece in pieces]
            events.append({**head, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
            self._send_events(events)
            return
        self._send(200, {
            **head, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        }, step.get("headers"))


def serve(script: list[dict[str, Any]], port_file: Path, log: Path | None, idle_timeout_s: float,
          model: str = "fake-model", outcome_log: Path | None = None) -> None:
    """Serve ``script`` until idle for ``idle_timeout_s`` seconds or SIGTERM; the port goes to ``port_file``."""
    state = _State(script, log, model, outcome_log)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if port == FORBIDDEN_PORT:  # never serve on 2024, even by chance
        server.server_close()
        serve(script, port_file, log, idle_timeout_s, model, outcome_log)
        return
    stop = state.stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    partial = port_file.with_name(port_file.name + ".partial")
    partial.write_text(str(port))
    os.replace(partial, port_file)
    while not stop.wait(0.2):
        if time.monotonic() - state.last_activity > idle_timeout_s:
            break
    server.shutdown()
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--script", type=Path, required=True, help="JSON list of steps")
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the port")
    parser.add_argument("--log", type=Path, default=None, help="JSON-lines request log")
    parser.add_argument("--idle-timeout-s", type=float, default=300.0)
    parser.add_argument("--model", default="fake-model", help="model id listed by GET /v1/models")
    parser.add_argument("--outcome-log", type=Path, default=None,
                        help="JSON-lines log of how hangs, drips and huge answers ended")
    args = parser.parse_args(argv)
    script = json.loads(args.script.read_text(encoding="utf-8"))
    if not isinstance(script, list) or not all(isinstance(step, dict) for step in script):
        parser.error("the script must be a JSON list of objects")
    serve(script, args.port_file, args.log, args.idle_timeout_s, args.model, args.outcome_log)
    return 0


class FakeOpenAIServer:
    """The fake server as a subprocess for one test: ``with FakeOpenAIServer(script, tmp_path) as server: ...``.

    ``base_url`` is ``http://127.0.0.1:<port>/v1``; ``requests()`` is the parsed request log, ``outcomes()``
    the log of how hangs, drips and huge answers ended.  On exit the
    process is terminated by its PID (killed if it does not stop within 5 s).
    """

    def __init__(self, script: list[dict[str, Any]], tmp_path: Path, *, idle_timeout_s: float = 120.0,
                 start_timeout_s: float = 15.0) -> None:
        self.folder = Path(tmp_path) / f"fake_openai_{os.getpid()}_{id(self):x}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.script_path = self.folder / "script.json"
        self.port_file = self.folder / "port"
        self.log_path = self.folder / "requests.jsonl"
        self.outcome_path = self.folder / "outcomes.jsonl"
        self.stderr_path = self.folder / "stderr.txt"
        self.script_path.write_text(json.dumps(script), encoding="utf-8")
        self.idle_timeout_s = idle_timeout_s
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of the server."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        """Start the subprocess and wait for its port."""
        command = [sys.executable, str(Path(__file__).resolve()), "--script", str(self.script_path),
                   "--port-file", str(self.port_file), "--log", str(self.log_path),
                   "--idle-timeout-s", str(self.idle_timeout_s), "--outcome-log", str(self.outcome_path)]
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=stderr)
        deadline = time.monotonic() + self.start_timeout_s
        while not self.port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"fake OpenAI server exited with {self.process.returncode}: "
                                   f"{self.stderr_path.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake OpenAI server wrote no port within {self.start_timeout_s} s")
            time.sleep(0.02)
        self.port = int(self.port_file.read_text())
        return self

    def requests(self) -> list[dict[str, Any]]:
        """The requests served so far, in order."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line]

    def outcomes(self) -> list[dict[str, Any]]:
        """How the hangs, drips and huge answers served so far ended, in order."""
        if not self.outcome_path.exists():
            return []
        return [json.loads(line) for line in self.outcome_path.read_text(encoding="utf-8").splitlines() if line]

    def stop(self) -> None:
        """Terminate the subprocess (by PID) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
