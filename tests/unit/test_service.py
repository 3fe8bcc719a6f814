"""The workflow as a node of another graph, and the verifier graph as a service, in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from agents.run_config import NO_MAXIMA, OperatorSettings
from graph.graph import build_graph
from graph.verifier_graph import VerifierHost, build_verifier_graph
from judge import mutants
from reference_sim.errors import InputError
from tests import fakes


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fakes.small_spec(tmp_path_factory.mktemp("spec"))


class Parent(TypedDict, total=False):
    arch: str
    folder: str
    verdict: str
    report: str


def test_the_workflow_as_a_node_of_a_parent_graph(spec: Path, tmp_path: Path) -> None:
    simulatorcoder = build_graph(fakes.local_host())

    def simulate(state: Parent) -> dict[str, Any]:
        out = simulatorcoder.invoke({"spec_path": state["arch"], "run_dir": state["folder"]})
        return {"verdict": out["status"], "report": out["report_path"]}

    builder = StateGraph(Parent)
    builder.add_node("simulate", simulate)
    builder.add_edge(START, "simulate")
    builder.add_edge("simulate", END)
    saver = InMemorySaver()
    parent = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "parent"}}
    out = parent.invoke({"arch": str(spec), "folder": str(tmp_path / "child")}, config)
    assert out["verdict"] == "verified" and Path(out["report"]).is_file()
    namespaces = {c.config["configurable"].get("checkpoint_ns", "") for c in saver.list(None)}
    assert "" in namespaces and any(ns.startswith("simulate:") for ns in namespaces), namespaces


def test_the_workflow_takes_an_inline_spec_and_overrides(spec: Path, tmp_path: Path) -> None:
    simulatorcoder = build_graph(fakes.local_host())
    out = simulatorcoder.invoke({"spec_yaml": spec.read_text(), "run_dir": str(tmp_path / "run"),
                                 "generate": ["network"], "granularity": "module"})
    assert out["status"] == "verified"
    assert (tmp_path / "run" / "spec.yaml").read_text() == spec.read_text()


def _folder(tmp_path: Path, mutant_id: str | None) -> Path:
    mutant = next(m for m in mutants.MUTANTS if m.id == mutant_id) if mutant_id else None
    folder = tmp_path / (mutant_id or "reference")
    folder.mkdir()
    for name, text in mutants.candidate_files(mutant).items():
        (folder / name).write_text(text)
    return folder


def test_the_verifier_service_names_the_wrong_module(spec: Path, tmp_path: Path) -> None:
    verifier_graph = build_verifier_graph(VerifierHost(OperatorSettings(remote=False, maxima=NO_MAXIMA),
                                                       executor_factory=fakes.in_process))
    wrong = verifier_graph.invoke({"candidate_dir": str(_folder(tmp_path, "map-row-folds-floor")),
                                   "spec_path": str(spec), "workloads": ["edge_cases@spec"], "final_check": []})
    assert wrong["passed"] is False and wrong["blamed"] == ["mapping"]
    assert wrong["diagnosis"].startswith("REJECTED (wrong_result). Blamed: mapping.")
    assert wrong["stages"][0]["stage"] == "mapping" and wrong["stages"][0]["field"] == "LayerMapping.row_folds"
    assert [c["workload"] for c in wrong["checked"]] == ["edge_cases@spec", "edge_cases@spec"]
    right = verifier_graph.invoke({"candidate_dir": str(_folder(tmp_path, None)), "spec_path": str(spec)})
    assert right["passed"] is True and right["outcome"] == "passed" and right["blamed"] == []


def test_the_verifier_service_refuses_bad_input(tmp_path: Path) -> None:
    verifier_graph = build_verifier_graph(VerifierHost(OperatorSettings(remote=False, maxima=NO_MAXIMA),
                                                       executor_factory=fakes.in_process))
    with pytest.raises(InputError, match=r"missing mapping\.py, network\.py, memory\.py"):
        verifier_graph.invoke({"candidate_dir": str(tmp_path)})
    with pytest.raises(InputError, match="unknown workload"):
        verifier_graph.invoke({"modules": {r: "" for r in ("mapping", "network", "memory")},
                               "workloads": ["nope"]})
