"""The served graphs as a trust boundary: each attack of issue 24 against the real ``langgraph dev``.

One server for the module (127.0.0.1, a free port, never 2024, no phone-home, four jobs at once,
stopped by PID), bound like a production operator would bind it: the Docker sandbox, a token
(``SIMCODER_API_TOKEN``), a run root and path roots in the test's folder, a key in ``OPENAI_API_KEY``,
a model endpoint that hangs, and two more listed endpoints (one drips a byte a second, one sends
200 MB), with a total deadline of 20 s per model call.  Every request carries the token unless the
test is about the token.  Each attack asserts what it must not do: no marker file outside the
sandbox, no request (so no key) at an endpoint the operator did not list, nothing created, changed
or deleted outside the run root, no file content echoed, and a one-line error naming the field.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from langgraph_sdk import get_sync_client

from judge import reference_runs
from tests import fakes
from tests.conftest import require
from tests.fake_openai_server import FakeOpenAIServer
from tests.langgraph_server import LANGGRAPH_CLI, LangGraphDevServer
from tests.ports import FORBIDDEN_PORT, free_port

pytestmark = pytest.mark.integration

TOKEN = "hostile-test-token-7f3a"
KEY = "sk-hostile-test-key-0123456789abcdef"
DEADLINE_S = 20.0
RUN_TIMEOUT_S = 240
STUDIO = "https://smith.langchain.com"
EVIL = "https://evil.example"
MARKER_PAYLOAD = """

import atexit, pathlib
atexit.register(lambda: pathlib.Path({marker!r}).write_text("pwned"))
"""


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection and the bytes it was sent (for 10 s at most)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[bytes] = []
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", self.port))
        self._socket.listen(8)
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < 600:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


def tree(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` and the hash of its bytes (what was created, changed or deleted), but the
    test's own servers' folders (their logs)."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        part = path.relative_to(folder).parts[0]
        if path.is_file() and part != "server" and not part.startswith("model-"):
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def endpoints(workdir: Path) -> Iterator[dict[str, FakeOpenAIServer]]:
    """The operator's model (hangs), and two listed ones (drips, 200 MB)."""
    scripts = {"hang": [{"hang_s": 60}] * 4, "drip": [{"drip_s": 1.0, "drip_max_s": 60}] * 4,
               "huge": [{"huge_bytes": 200_000_000}] * 4}
    servers = {name: FakeOpenAIServer(script, workdir / f"model-{name}", idle_timeout_s=1800).start()
               for name, script in scripts.items()}
    try:
        yield servers
    finally:
        for running in servers.values():
            running.stop()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    """An endpoint the operator did not configure (the caller's)."""
    made = Listener()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def server(workdir: Path, endpoints: dict[str, FakeOpenAIServer], docker: None) -> Iterator[LangGraphDevServer]:
    require(LANGGRAPH_CLI.is_file(), f"no {LANGGRAPH_CLI}: langgraph dev needs Python 3.11+ and the dev extra "
                                     "(make setup)")
    root = workdir / "root"
    root.mkdir()
    env = {"SIMCODER_RUN_ROOT": str(root), "SIMCODER_PATH_ROOTS": str(root), "SIMCODER_API_TOKEN": TOKEN,
           "OPENAI_API_KEY": KEY, "OPENAI_MODEL": "operator-model", "OPENAI_BASE_URL": endpoints["hang"].base_url,
           "SIMCODER_ALLOWED_BASE_URLS": f"{endpoints['drip'].base_url},{endpoints['huge'].base_url}",
           "SIMCODER_MODEL_DEADLINE_S": str(DEADLINE_S), "SIMCODER_SANDBOX_TIMEOUT_S": "60"}
    with LangGraphDevServer(workdir / "server", env=env, jobs=4) as running:
        assert running.port != FORBIDDEN_PORT
        yield running


@pytest.fixture(scope="module")
def root(server: LangGraphDevServer, workdir: Path) -> Path:
    return workdir / "root"


@pytest.fixture(scope="module")
def spec(root: Path) -> Path:
    return fakes.small_spec(root)


def client(server: LangGraphDevServer, token: str | None = TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return get_sync_client(url=server.url, timeout=RUN_TIMEOUT_S, headers=headers)


def run(server: LangGraphDevServer, graph: str, payload: dict[str, Any],
        context: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run to its end; its output, or ``{"error": ...}`` with the run's error message."""
    sdk = client(server)
    thread = sdk.threads.create()["thread_id"]
    out = sdk.runs.wait(thread, graph, input=payload, context=context, raise_error=False)
    if isinstance(out, dict) and "__error__" in out:
        return {"error": str(out["__error__"].get("message", ""))}
    return dict(out or {})


def refused(out: dict[str, Any], field: str) -> str:
    message = out.get("error", "")
    assert f"{field}: " in message and len(message.splitlines()) == 1, out
    return message


def candidate_with_payload(folder: Path, marker: Path) -> dict[str, str]:
    modules = {role: reference_runs.reference_code(role) for role in ("mapping", "network", "memory")}
    modules["mapping"] += MARKER_PAYLOAD.format(marker=str(marker))
    folder.mkdir(parents=True, exist_ok=True)
    for role, text in modules.items():
        (folder / f"{role}.py").write_text(text)
    return modules


def test_no_token_no_answer(server: LangGraphDevServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"x-auth-scheme": "langsmith"}):
        request = urllib.request.Request(f"{server.url}/assistants/search", data=b"{}", method="POST",
                                         headers={"content-type": "application/json", **headers})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
        assert info.value.code in (401, 403), headers
    assert client(server).assistants.search(limit=5)


def test_a_browser_page_of_another_origin_gets_no_cors_grant(server: LangGraphDevServer) -> None:
    def preflight(origin: str) -> dict[str, str]:
        request = urllib.request.Request(f"{server.url}/threads", method="OPTIONS", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return {k.lower(): v for k, v in answer.headers.items()}
        except urllib.error.HTTPError as exc:
            return {k.lower(): v for k, v in exc.headers.items()}

    assert "access-control-allow-origin" not in preflight(EVIL)
    assert preflight(STUDIO).get("access-control-allow-origin") == STUDIO


def test_the_process_sandbox_cannot_be_chosen_and_an_exit_hook_never_runs(server: LangGraphDevServer, root: Path,
                                                                          workdir: Path) -> None:
    marker = workdir / "exit-hook-marker"
    modules = candidate_with_payload(root / "payload", marker)
    asked = run(server, "verifier", {"modules": modules, "workloads": ["edge_cases@spec"], "final_check": []},
                context={"sandbox": "process"})
    assert "remote runs always use the Docker sandbox" in refused(asked, "sandbox")
    judged = run(server, "verifier", {"candidate_dir": str(root / "payload"), "workloads": ["edge_cases@spec"],
                                      "final_check": []})
    assert judged["passed"] is False and judged["outcome"] == "forbidden", judged
    assert "import atexit" in judged["message"]
    time.sleep(1)
    assert not marker.exists()


def test_a_reference_folder_runs_only_in_the_sandbox(server: LangGraphDevServer, root: Path, workdir: Path) -> None:
    marker = workdir / "reference-marker"
    outside = workdir / "outside-reference"
    candidate_with_payload(outside, marker)
    inside = root / "caller-reference"
    candidate_with_payload(inside, marker)
    (inside / "network.py").write_text(reference_runs.reference_code("network") + f"\nopen({str(marker)!r}, 'w')\n")
    candidate = root / "plain"
    for role in ("mapping", "network", "memory"):
        candidate.mkdir(exist_ok=True)
        (candidate / f"{role}.py").write_text(reference_runs.reference_code(role))
    far = run(server, "verifier", {"candidate_dir": str(candidate), "reference_dir": str(outside)})
    refused(far, "reference_dir")
    near = run(server, "verifier", {"candidate_dir": str(candidate), "reference_dir": str(inside),
                                    "workloads": ["edge_cases@spec"], "final_check": []})
    assert "forbid" in refused(near, "reference_dir")
    assert not marker.exists()


def test_the_servers_key_goes_to_no_endpoint_the_operator_did_not_list(server: LangGraphDevServer, spec: Path,
                                                                       listener: Listener) -> None:
    asked = run(server, "simulatorcoder", {"spec_path": str(spec), "base_url": listener.url, "model": "mine",
                                           "generate": ["mapping"]})
    assert "has not listed" in refused(asked, "base_url")
    data = yaml.safe_load(spec.read_text())
    data["model"] = {"base_url": listener.url, "model": "mine"}
    chained = run(server, "simulatorcoder", {"spec_yaml": yaml.safe_dump(data), "generate": ["mapping"]})
    refused(chained, "model.base_url")
    data["model"] = {"api_key_env": "OPENAI_API_KEY_OF_ANOTHER"}
    refused(run(server, "simulatorcoder", {"spec_yaml": yaml.safe_dump(data)}), "model.api_key_env")
    time.sleep(1)
    assert listener.received == [], "the caller's endpoint was contacted"


@pytest.mark.parametrize(("graph", "payload", "field"), [
    ("simulatorcoder", {"run_dir": "/tmp/simcoder-hostile-run"}, "run_dir"),
    ("simulatorcoder", {"run_dir": "../escaped"}, "run_dir"),
    ("simulatorcoder", {"spec_path": "/etc/passwd"}, "spec_path"),
    ("simulatorcoder", {"spec_path": "/etc/shadow"}, "spec_path"),
    ("verifier", {"candidate_dir": "/etc"}, "candidate_dir"),
    ("verifier", {"modules": {"mapping": ""}, "spec_path": "/etc/passwd"}, "modules"),
])
def test_paths_outside_the_root_are_refused_and_nothing_is_touched(server: LangGraphDevServer, workdir: Path,
                                                                   graph: str, payload: dict[str, Any],
                                                                   field: str) -> None:
    before = tree(workdir)
    out = run(server, graph, payload)
    message = refused(out, field)
    assert "root:" not in message and "/bin/" not in message
    assert not Path("/tmp/simcoder-hostile-run").exists() and not (workdir / "escaped").exists()
    assert tree(workdir) == before


def test_etc_passwd_as_a_topology_is_refused_without_its_lines(server: LangGraphDevServer, spec: Path) -> None:
    data = yaml.safe_load(spec.read_text())
    data["workloads"].append({"name": "secret", "topology": "/etc/passwd"})
    field = f"workloads[{len(data['workloads']) - 1}].topology"
    message = refused(run(server, "simulatorcoder", {"spec_yaml": yaml.safe_dump(data)}), field)
    assert "root:" not in message
    inside = run(server, "verifier", {"candidate_dir": "/nonexistent", "spec_yaml": yaml.safe_dump(data)})
    refused(inside, "candidate_dir")


def test_a_10_mb_inline_spec_is_refused(server: LangGraphDevServer, root: Path) -> None:
    before = tree(root)
    out = run(server, "simulatorcoder", {"spec_yaml": "name: x\n" + "#" * (10 * 1024 * 1024)})
    assert "over the limit" in refused(out, "spec_yaml")
    assert tree(root) == before


def test_a_200_mb_answer_is_cut_off_and_checkpoints_stay_small(server: LangGraphDevServer, spec: Path,
                                                               endpoints: dict[str, FakeOpenAIServer],
                                                               workdir: Path) -> None:
    start = time.monotonic()
    out = run(server, "simulatorcoder", {"spec_path": str(spec), "base_url": endpoints["huge"].base_url,
                                         "generate": ["mapping"], "attempts_per_module": 1, "optimise": False})
    assert out.get("status") == "failed", out
    assert "over" in out["summary"] and "bytes" in out["summary"], out["summary"]
    assert time.monotonic() - start < 120
    outcome = endpoints["huge"].outcomes()[-1]
    assert outcome["bytes"] < 20 * 1024 * 1024, outcome
    state = workdir / "server" / ".langgraph_api"
    size = sum(p.stat().st_size for p in state.rglob("*") if p.is_file()) if state.exists() else 0
    assert size < 50 * 1024 * 1024


@pytest.mark.parametrize("endpoint", ["hang", "drip"])
def test_a_slow_endpoint_is_cut_off_while_the_verifier_answers(server: LangGraphDevServer, spec: Path, root: Path,
                                                               endpoints: dict[str, FakeOpenAIServer],
                                                               endpoint: str) -> None:
    payload: dict[str, Any] = {"spec_path": str(spec), "generate": ["mapping"], "attempts_per_module": 1,
                               "optimise": False}
    if endpoint != "hang":
        payload["base_url"] = endpoints[endpoint].base_url
    results: dict[str, Any] = {}

    def slow() -> None:
        started = time.monotonic()
        results["run"] = run(server, "simulatorcoder", payload)
        results["run_s"] = time.monotonic() - started
        results["run_end"] = time.monotonic()

    seen = len(endpoints[endpoint].outcomes())
    worker = threading.Thread(target=slow)
    worker.start()
    time.sleep(1.0)
    candidate = root / "plain-verifier"
    candidate.mkdir(exist_ok=True)
    for role in ("mapping", "network", "memory"):
        (candidate / f"{role}.py").write_text(reference_runs.reference_code(role))
    started = time.monotonic()
    verdict = run(server, "verifier", {"candidate_dir": str(candidate), "workloads": ["edge_cases@spec"],
                                       "final_check": []})
    verifier_end = time.monotonic()
    verifier_s = verifier_end - started
    worker.join(timeout=RUN_TIMEOUT_S)
    assert verdict.get("passed") is True, verdict
    assert verifier_s < 30, f"the verifier waited {verifier_s:.1f} s behind a slow model call"
    assert verifier_end < results["run_end"], "the verifier answered only after the slow run ended"
    assert results["run"].get("status") == "failed", results
    assert "deadline" in results["run"]["summary"], results["run"]["summary"]
    assert DEADLINE_S - 1 < results["run_s"] < DEADLINE_S + 60, results["run_s"]
    for _ in range(100):
        if len(endpoints[endpoint].outcomes()) > seen:
            break
        time.sleep(0.1)
    closed = endpoints[endpoint].outcomes()[-1]
    assert closed["client_closed"] and closed["seconds"] < DEADLINE_S + 5, closed


def test_the_served_graphs_form_offers_no_operator_field(server: LangGraphDevServer) -> None:
    sdk = client(server)
    for graph in ("simulatorcoder", "verifier"):
        assistant = next(iter(sdk.assistants.search(graph_id=graph)))
        schemas = sdk.assistants.get_schemas(assistant["assistant_id"])
        form = set(schemas["input_schema"]["properties"])
        assert not form & {"sandbox", "sandbox_timeout_s", "api_key_env", "run_root", "executor_factory"}, form
        assert not (schemas.get("context_schema") or {}).get("properties"), schemas.get("context_schema")
    assert json.dumps(schemas)
