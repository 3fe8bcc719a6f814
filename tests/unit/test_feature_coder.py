"""The agent writes a feature: its prompt carries the feature, its answer is judged, a failure is fed back.

The candidates are hand-written answers (``tests/data/features/``) and faults made in them by the test;
they run in this process through the feature harness's own code (the unit tests' sandbox).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents import feature_coder, feature_prompts, planner
from agents.run_features import SandboxedFeatures
from features.catalogue import load_catalogue
from features.properties import PROPERTIES
from graph.graph import build_builder
from judge import reference_runs
from judge.executors import InProcessFeatureExecutor
from tests import fakes
from tests.fakes import Request, ScriptedChatModel

DATA = Path(__file__).resolve().parents[1] / "data" / "features"
USER_FEATURES = Path(__file__).resolve().parents[1] / "data" / "user_features"
CATALOGUE = load_catalogue()
ENERGY_ANSWER = (DATA / "energy_answer.md").read_text(encoding="utf-8")
FORGOT_IDLE = ENERGY_ANSWER.replace('"idle_pe_cycles": pes * result.total_cycles - macs',
                                    '"idle_pe_cycles": 0')
REFERENCE_MODULES = {role: reference_runs.reference_code(role) for role in ("mapping", "network", "memory")}


def sandboxed() -> SandboxedFeatures:
    return SandboxedFeatures(InProcessFeatureExecutor, REFERENCE_MODULES)


def human(feature: str, strategy: str = "zero_shot") -> str:
    return str(feature_prompts.feature_messages(CATALOGUE[feature], strategy)[1].content)


@pytest.mark.parametrize("feature", sorted(CATALOGUE))
def test_the_prompt_carries_the_description_every_parameter_report_and_check_statement(feature: str) -> None:
    text = human(feature)
    definition = CATALOGUE[feature].definition
    assert CATALOGUE[feature].description.strip() in text
    for parameter in definition.parameters:
        assert f"`{parameter.name}`" in text
    for report in definition.reports:
        assert report.file in text and all(f"`{c}`" for c in report.columns)
    for check in definition.checks:
        assert f"`{check}`" in text and " ".join(PROPERTIES[check].statement.split()) in text
    assert "def simulate(" in text and "class FeatureRun" in text and "class Hardware" in text
    assert f"feature_{feature}.py" in text and "def run(layers: Sequence[Layer]" in text


def test_shared_blocks_come_first_and_are_the_same_for_every_feature() -> None:
    texts = [human(f) for f in sorted(CATALOGUE)]
    shared = texts[0][:texts[0].index("## The feature:")]
    assert len(shared) > 2000, "the opening and the package's API come before the feature"
    assert all(t.startswith(shared) for t in texts)


def test_the_cot_strategies_ask_for_reasoning_first() -> None:
    assert "reason first" in human("energy", "cot") and "reason first" not in human("energy", "zero_shot")


def test_a_feature_prompt_fits_a_small_window() -> None:
    sizes = {f: len(human(f, "icl_cot")) / 3.5 for f in CATALOGUE}
    assert max(sizes.values()) < 8000, sizes


def test_a_correct_answer_is_accepted_after_the_whole_judge() -> None:
    found = feature_coder.review(CATALOGUE["energy"], ENERGY_ANSWER, sandboxed())
    assert found.status == "accepted" and found.code is not None and "def run(" in found.code


def test_a_wrong_answer_comes_back_with_the_check_its_statement_and_the_evidence() -> None:
    found = feature_coder.review(CATALOGUE["energy"], FORGOT_IDLE, sandboxed())
    assert found.status == "wrong" and found.code is None
    assert "oracle: " in found.problem and "ENERGY_REPORT.csv idle_pe_cycles" in found.problem
    assert "The check `oracle`: your results and tables must equal" in found.problem
    assert "Passed before it: exact." in found.problem


def test_a_crashing_answer_is_crashed_with_the_exception() -> None:
    crashing = ENERGY_ANSWER.replace("pes = hardware.array_rows", "pes = 1 // 0 + hardware.array_rows")
    found = feature_coder.review(CATALOGUE["energy"], crashing, sandboxed())
    assert found.status == "crashed" and "ZeroDivisionError" in found.problem
    assert "(your module line 25: pes = 1 // 0 + hardware.array_rows * hardware.array_cols)" in found.problem


def test_a_crash_inside_the_engine_names_the_call_in_the_module_and_where_it_raised() -> None:
    wrong_call = ENERGY_ANSWER.replace("results = simulate(layers, hardware, traces=traces)",
                                       "results = simulate(layers, hardware, params, traces=traces)")
    found = feature_coder.review(CATALOGUE["energy"], wrong_call, sandboxed())
    assert found.status == "crashed" and "AttributeError" in found.problem, found.problem
    assert "your module line 24: results = simulate(layers, hardware, params, traces=traces); raised in engine.py" \
        in found.problem, found.problem


@pytest.mark.parametrize(("answer", "status", "words"), [
    ("I would multiply the counts by the table.", "no_code", "No Python code block"),
    (ENERGY_ANSWER.replace("from .engine import simulate", "import subprocess\nfrom .engine import simulate"),
     "refused", "subprocess"),
    (ENERGY_ANSWER.replace("def run(", "def run_it("), "no_code", "run"),
])
def test_an_answer_that_cannot_run_never_reaches_the_judge(answer: str, status: str, words: str) -> None:
    class Never:
        def __call__(self) -> Any:
            raise AssertionError("the sandbox was used")

    found = feature_coder.review(CATALOGUE["energy"], answer, SandboxedFeatures(Never(), REFERENCE_MODULES))
    assert found.status == status and words in found.problem


def _feature_spec(tmp_path: Path) -> Path:
    spec = fakes.small_spec(tmp_path)
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    data["features"] = {"energy": {"pj_per_mac": 0.56, "idle_pj_per_pe_cycle": 0.013, "dram_read_pj_per_word": 64.0}}
    spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return spec


def test_the_agent_writes_the_feature_repairs_it_from_the_judge_and_the_run_reports_it(tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        if r.feature == "energy":
            return ENERGY_ANSWER if r.retry else FORGOT_IDLE
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    host = fakes.local_host(model)
    host.feature_executor = InProcessFeatureExecutor
    app = build_builder(host).compile()
    run_dir = tmp_path / "run"
    out = app.invoke({"spec_path": str(_feature_spec(tmp_path)), "run_dir": str(run_dir), "run_id": "t",
                      "optimise": False})
    assert out["status"] == "verified"
    assert out["summary"].endswith("Features: energy (written by the agent: pass, exact, oracle, properties 11/11).")
    feature_calls = [c for c in model.calls if c.feature == "energy"]
    assert len(feature_calls) == 2
    assert re.search(r"idle_pe_cycles = \d", feature_calls[1].last), "the retry carries the judge's evidence"
    report = json.loads((run_dir / "report.json").read_text())
    energy = next(f for f in report["features"] if f["name"] == "energy")
    assert energy["implementation"] == "written by the agent"
    assert energy["evidence"] == "exact, oracle, properties 11/11"
    table = run_dir / "features" / "energy" / "small_net-final_check" / "ENERGY_REPORT.csv"
    assert table.is_file() and "idle_pj" in table.read_text().splitlines()[0]
    assert [a["status"] for a in report["attempts"] if a["module"] == "feature_energy"] == ["wrong", "accepted"]
    assert "written by the agent" in (run_dir / "report.md").read_text()
    package = Path(out["package_path"])
    assert "COUNTS = (" in (package / "feature_energy.py").read_text(), "the package carries the agent's code"
    packaged = json.loads((package / "FEATURES.json").read_text())["features"]
    assert [(f["name"], f["implementation"], f["params"]["pj_per_mac"]) for f in packaged] == [
        ("energy", "agent", 0.56)]
    layers = run_dir / "topology.csv"
    layers.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                      "Strides,\nc1, 12, 12, 3, 3, 4, 8, 1,\n")
    config = run_dir / "scale.cfg"
    config.write_text("[general]\nrun_name = t\n[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\n"
                      "IfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: 64\nIfmapOffset: 0\n"
                      "FilterOffset: 10000000\nOfmapOffset: 20000000\nBandwidth: 4\nDataflow: os\n"
                      "[run_presets]\nInterfaceBandwidth: CALC\n")
    done = subprocess.run([sys.executable, "-m", package.name, "-c", str(config), "-t", str(layers), "-p",
                           str(run_dir / "out")], cwd=package.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    energy_rows = (run_dir / "out" / "t" / "features" / "energy" / "ENERGY_REPORT.csv").read_text().splitlines()
    assert len(energy_rows) == 2 and energy_rows[0].startswith("layer_id")


def test_a_feature_the_agent_cannot_write_fails_the_run_with_its_last_problem(tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        return FORGOT_IDLE if r.feature == "energy" else fakes.reference_answer(r.module)

    host = fakes.local_host(ScriptedChatModel(respond=respond))
    host.feature_executor = InProcessFeatureExecutor
    out = build_builder(host).compile().invoke({"spec_path": str(_feature_spec(tmp_path)),
                                                "run_dir": str(tmp_path / "run"), "run_id": "t",
                                                "attempts_per_module": 2, "optimise": False})
    assert out["status"] == "failed"
    assert "feature_energy" in out["summary"] and "idle_pe_cycles" in out["summary"]


WALL_TIME = '''```python
from .engine import simulate
from .feature_api import FeatureRun


def run(layers, hardware, params, *, traces=False):
    results = simulate(layers, hardware, traces=traces)
    rows = [{"layer_id": float(r.index), "total_cycles": float(r.total_cycles),
             "time_us": r.total_cycles / params["clock_mhz"]} for r in results]
    return FeatureRun(results, {"TIME_REPORT.csv": rows})
```
'''


def test_a_user_feature_has_no_built_in_so_the_agent_writes_it_and_its_own_property_judges_it(
        tmp_path: Path) -> None:
    spec = fakes.small_spec(tmp_path)
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    data["features"] = {"wall_time": {"clock_mhz": 250}}
    spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    in_ns = WALL_TIME.replace('/ params["clock_mhz"]', '/ params["clock_mhz"] * 1000')

    def respond(r: Request) -> str:
        if r.feature == "wall_time":
            return WALL_TIME if r.retry else in_ns
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    host = fakes.local_host(model, features_dir=str(USER_FEATURES))
    host.feature_executor = InProcessFeatureExecutor
    out = build_builder(host).compile().invoke({"spec_path": str(spec), "run_dir": str(tmp_path / "run"),
                                                "run_id": "u", "optimise": False})
    assert out["status"] == "verified", out["summary"]
    first, retry = [c for c in model.calls if c.feature == "wall_time"]
    assert "Each layer's time_us is its total cycles over clock_mhz." in first.first
    assert "time_is_cycles_over_clock:" in retry.last and "(blame wall_time)" in retry.last
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [(f["name"], f["implementation"], f["evidence"]) for f in report["features"]] == [
        ("wall_time", "written by the agent", "exact, properties 2/2")]


def test_generate_none_keeps_the_references_modules_and_writes_only_the_features(tmp_path: Path) -> None:
    assert planner.parse_generate("none") == []

    def respond(r: Request) -> str:
        assert r.feature == "energy", "only the feature is asked for"
        return ENERGY_ANSWER

    model = ScriptedChatModel(respond=respond)
    host = fakes.local_host(model)
    host.feature_executor = InProcessFeatureExecutor
    out = build_builder(host).compile().invoke({"spec_path": str(_feature_spec(tmp_path)),
                                                "run_dir": str(tmp_path / "run"), "run_id": "n", "generate": [],
                                                "optimise": False})
    assert out["status"] == "verified", out["summary"]
    assert [c.feature for c in model.calls] == ["energy"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert {m["source"] for m in report["modules"]} == {"reference"}
    assert report["features"][0]["implementation"] == "written by the agent"
