"""The agent writes a feature with every answer run in the real Docker sandbox.

A scripted chat model (answers routed by what the prompt asks for: the reference's modules, then an energy
module that forgets idle energy, then the right one) drives the whole graph; the operator is on their own
machine with ``sandbox: docker``, so the modules and both feature answers run in Docker.  Needs the image
from ``bash .ci/provision-docker.sh``; fails instead of skipping when ``SIMCODER_CI=1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agents.run_config import NO_MAXIMA, OperatorSettings
from graph.graph import build_builder
from graph.host import Host
from tests import fakes
from tests.fakes import Request, ScriptedChatModel

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "features"
ENERGY_ANSWER = (DATA / "energy_answer.md").read_text(encoding="utf-8")
FORGOT_IDLE = ENERGY_ANSWER.replace('"idle_pe_cycles": pes * result.total_cycles - macs', '"idle_pe_cycles": 0')


def test_a_feature_written_by_the_model_is_judged_in_docker_and_repaired_from_the_judge(
        docker: None, tmp_path: Path) -> None:
    spec = fakes.small_spec(tmp_path, variants=2)
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    data["features"] = {"energy": {"pj_per_mac": 0.56, "idle_pj_per_pe_cycle": 0.013}}
    spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def respond(r: Request) -> str:
        if r.feature == "energy":
            return ENERGY_ANSWER if r.retry else FORGOT_IDLE
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    host = Host(OperatorSettings(remote=False, sandbox="docker", maxima=NO_MAXIMA), chat_model=model)
    run_dir = tmp_path / "run"
    out = build_builder(host).compile().invoke({"spec_path": str(spec), "run_dir": str(run_dir), "run_id": "d",
                                                "optimise": False})
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert out["status"] == "verified", report["notes"]
    assert "process" not in " ".join(report["notes"]), "model-written code must not run in processes"
    statuses = [a["status"] for a in report["attempts"] if a["module"] == "feature_energy"]
    assert statuses == ["wrong", "accepted"]
    retry = [c for c in model.calls if c.feature == "energy"][1].last
    assert "ENERGY_REPORT.csv idle_pe_cycles" in retry and "got 0.0" in retry
    energy = report["features"][0]
    assert (energy["implementation"], energy["evidence"]) == ("written by the agent", "exact, oracle, properties 11/11")
    assert any(t.endswith("ENERGY_REPORT.csv") for t in energy["tables"])
