"""The graphs served by the real ``langgraph dev`` (in-memory runtime), called through the SDK and RemoteGraph.

One server per module (127.0.0.1, a free port chosen at run time, never 2024, the no-phone-home
environment), stopped by PID whatever happens.  The workflow runs in template mode through the SDK
and through a ``RemoteGraph`` node of a local parent graph; the verifier graph judges a wrong
candidate; a run with human review is resumed with an edited instruction (its model is the scripted
fake OpenAI server, its sandbox Docker); the server is restarted and an old thread read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_sync_client

from judge import mutants
from tests import fakes
from tests.conftest import require
from tests.fake_openai_server import FakeOpenAIServer
from tests.langgraph_server import LANGGRAPH_CLI, LangGraphDevServer
from tests.ports import FORBIDDEN_PORT

pytestmark = pytest.mark.integration

MUTANT = "map-row-folds-floor"
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("langgraph-server")


@pytest.fixture(scope="module")
def model(workdir: Path) -> Iterator[FakeOpenAIServer]:
    """The scripted model the human-review test names (the server's operator lists it)."""
    script = [{"content": fakes.mutant_answer(MUTANT, "mapping")}, {"content": fakes.reference_answer("mapping")}]
    with FakeOpenAIServer(script, workdir / "model", idle_timeout_s=1800) as running:
        yield running


@pytest.fixture(scope="module")
def server(workdir: Path, model: FakeOpenAIServer) -> Iterator[LangGraphDevServer]:
    require(LANGGRAPH_CLI.is_file(), f"no {LANGGRAPH_CLI}: langgraph dev needs Python 3.11+ and the dev extra "
                                     "(make setup)")
    env = {"SIMCODER_RUN_ROOT": str(workdir), "SIMCODER_PATH_ROOTS": str(workdir),
           "SIMCODER_ALLOWED_BASE_URLS": model.base_url, "SIMCODER_ALLOWED_MODELS": "fake-model"}
    with LangGraphDevServer(workdir / "server", env=env) as running:
        assert running.port != FORBIDDEN_PORT
        yield running


@pytest.fixture(scope="module")
def spec(workdir: Path) -> Path:
    return fakes.small_spec(workdir)


def _client(server: LangGraphDevServer) -> Any:
    return get_sync_client(url=server.url, timeout=RUN_TIMEOUT_S)


def test_studio_sees_both_graphs_with_their_subgraphs(server: LangGraphDevServer) -> None:
    client = _client(server)
    graphs = {a["graph_id"] for a in client.assistants.search(limit=20)}
    assert {"simulatorcoder", "verifier"} <= graphs
    assistant = next(a for a in client.assistants.search(graph_id="simulatorcoder"))
    drawn = client.assistants.get_graph(assistant["assistant_id"], xray=True)
    nodes = {n["id"] for n in drawn["nodes"]}
    assert {"plan", "verify", "plan_repair", "report"} <= nodes
    assert {"coder:gate", "coder:ask", "coder:review"} <= nodes, sorted(nodes)
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    form = schemas["input_schema"]["properties"]
    assert {"spec_path", "spec_yaml", "strategy", "granularity", "model", "repair_rounds", "human_review"} <= set(form)
    assert not {"sandbox", "reference_dir"} & set(form), "the form holds only what a caller may set"


def test_template_run_through_the_sdk_streams_events_and_ends_verified(server: LangGraphDevServer, spec: Path,
                                                                         workdir: Path) -> None:
    client = _client(server)
    thread = client.threads.create()
    events: list[tuple[str, Any]] = []
    for part in client.runs.stream(thread["thread_id"], "simulatorcoder",
                                   input={"spec_path": str(spec), "run_dir": str(workdir / "sdk-run")},
                                   stream_mode=["updates", "custom"], stream_subgraphs=True):
        events.append((part.event, part.data))
    custom = [d["event"] for e, d in events if e.startswith("custom") and isinstance(d, dict)]
    assert custom[0] == "plan" and "verify" in custom and custom[-1] == "report"
    assert any(e.startswith("updates|coder:") for e, _ in events), "the coder subgraphs' events stream too"
    values = client.threads.get_state(thread["thread_id"])["values"]
    assert values["status"] == "verified"
    report = json.loads((workdir / "sdk-run" / "report.json").read_text())
    assert report["mode"] == "template" and report["status"] == "verified"
    assert Path(values["package_path"], "__main__.py").is_file()


class Parent(TypedDict, total=False):
    arch: str
    folder: str
    verdict: str
    events: list[str]


def test_remote_graph_as_a_node_of_a_parent_graph(server: LangGraphDevServer, spec: Path, workdir: Path) -> None:
    remote = RemoteGraph("simulatorcoder", url=server.url)
    client = _client(server)

    def simulate(state: Parent) -> dict[str, Any]:
        child = client.threads.create()["thread_id"]
        seen: list[str] = []
        final: dict[str, Any] = {}
        for chunk in remote.stream({"spec_path": state["arch"], "run_dir": state["folder"]},
                                   {"configurable": {"thread_id": child}}, stream_mode=["custom", "values"]):
            mode, data = chunk.event, chunk.data
            if mode == "custom":
                seen.append(data["event"])
            else:
                final = data
        return {"verdict": final["status"], "events": seen}

    builder = StateGraph(Parent)
    builder.add_node("simulate", simulate)
    builder.add_edge(START, "simulate")
    builder.add_edge("simulate", END)
    out = builder.compile().invoke({"arch": str(spec), "folder": str(workdir / "remote-run")})
    assert out["verdict"] == "verified"
    assert out["events"][0] == "plan" and out["events"][-1] == "report"
    assert json.loads((workdir / "remote-run" / "report.json").read_text())["status"] == "verified"


def test_the_verifier_graph_as_a_service_names_the_wrong_module(server: LangGraphDevServer, spec: Path,
                                                                 workdir: Path) -> None:
    folder = workdir / "wrong-candidate"
    folder.mkdir()
    for name, text in mutants.candidate_files(next(m for m in mutants.MUTANTS if m.id == MUTANT)).items():
        (folder / name).write_text(text)
    client = _client(server)
    thread = client.threads.create()
    out = client.runs.wait(thread["thread_id"], "verifier",
                           input={"candidate_dir": str(folder), "spec_path": str(spec), "final_check": []})
    assert out["passed"] is False and out["blamed"] == ["mapping"]
    assert "Stage evidence: mapping(layer, hardware)" in out["diagnosis"]
    assert out["stages"][0]["field"] == "LayerMapping.row_folds"


def test_human_review_is_resumed_with_an_edited_instruction(server: LangGraphDevServer, spec: Path, workdir: Path,
                                                            model: FakeOpenAIServer, docker: None) -> None:
    client = _client(server)
    thread = client.threads.create()["thread_id"]
    run_input = {"spec_path": str(spec), "run_dir": str(workdir / "reviewed-run"), "generate": ["mapping"],
                 "model": "fake-model", "base_url": model.base_url, "human_review": True, "optimise": False}
    client.runs.wait(thread, "simulatorcoder", input=run_input)
    state = client.threads.get_state(thread)
    pending = state["interrupts"]
    assert len(pending) == 1 and pending[0]["value"]["module"] == "mapping"
    assert "Blamed: mapping" in pending[0]["value"]["diagnosis"]
    assert len(model.requests()) == 1, "nothing is asked before the person answers"
    instruction = "Round the fold counts up, never down."
    client.runs.wait(thread, "simulatorcoder",
                     command={"resume": {pending[0]["id"]: {"action": "edit", "instruction": instruction}}})
    values = client.threads.get_state(thread)["values"]
    requests = model.requests()
    assert values["status"] == "verified"
    assert len(requests) == 2
    last_user = next(m for m in requests[1]["messages"] if m["role"] == "user")["content"]
    assert f"Instruction from the reviewer (follow it): {instruction}" in last_user
    assert json.loads((workdir / "reviewed-run" / "report.json").read_text())["modules"][0]["status"] == "repaired"


def test_threads_survive_a_server_restart(server: LangGraphDevServer, spec: Path, workdir: Path) -> None:
    client = _client(server)
    thread = client.threads.create(metadata={"purpose": "restart"})["thread_id"]
    client.runs.wait(thread, "simulatorcoder", input={"spec_path": str(spec), "run_dir": str(workdir / "kept-run")})
    before = client.threads.get_state(thread)["values"]
    assert before["status"] == "verified"
    server.restart()
    after = _client(server).threads.get_state(thread)["values"]
    assert after["status"] == before["status"] and after["report_path"] == before["report_path"]
    assert len(server.startup_s) == 2 and max(server.startup_s) < 120
