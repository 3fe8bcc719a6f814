"""The agent graph end to end with a scripted chat model and candidates run in this process.

Each test scripts the model's answers per request (module, write/repair/optimise, unit) and checks
the run's outcome, what the model was told, and the report the run leaves.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents import optimiser as optimiser_module
from agents import skeleton
from agents.planner import PlanError
from graph.graph import build_builder
from graph.host import Host
from judge import checks, executors, reference_runs, suites, verifier
from reference_sim.errors import InputError
from tests import fakes
from tests.fakes import Request, ScriptedChatModel

MUTANT = "map-row-folds-floor"


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fakes.small_spec(tmp_path_factory.mktemp("spec"))


def run(spec: Path, tmp_path: Path, model: Any, reference_dir: str | None = None, **request: Any) -> dict[str, Any]:
    request.setdefault("optimise", False)
    app = build_builder(fakes.local_host(model, reference_dir=reference_dir)).compile()
    out: dict[str, Any] = app.invoke({"spec_path": str(spec), "run_dir": str(tmp_path / "run"), "run_id": "test",
                                      **request})
    out["report"] = json.loads((tmp_path / "run" / "report.json").read_text())
    return out


def answers(report: dict[str, Any], module: str) -> list[dict[str, Any]]:
    return [a for a in report["attempts"] if a["module"] == module]


def test_right_first_time(spec: Path, tmp_path: Path) -> None:
    model = ScriptedChatModel(respond=lambda r: fakes.reference_answer(r.module))
    out = run(spec, tmp_path, model)
    assert out["status"] == "verified"
    assert sorted(c.module for c in model.calls) == ["mapping", "memory", "network"]
    assert all(c.kind == "write" and not c.retry for c in model.calls)
    report = out["report"]
    assert report["mode"] == "model"
    assert [m["attempts"] for m in report["modules"]] == [1, 1, 1]
    assert report["verification"]["outcome"] == "passed"
    assert Path(out["package_path"], "__main__.py").is_file()
    assert (tmp_path / "run" / "cycles.png").is_file()
    assert report["tokens"] and report["tokens"][0]["node"] == "coder" and report["tokens"][0]["calls"] == 3


def test_known_mutant_is_repaired_from_the_evidence(spec: Path, tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        if r.module == "mapping" and r.kind == "write":
            return fakes.mutant_answer(MUTANT, "mapping")
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    out = run(spec, tmp_path, model)
    assert out["status"] == "verified"
    repairs = [c for c in model.calls if c.kind == "repair"]
    assert len(repairs) == 1 and repairs[0].module == "mapping"
    prompt = repairs[0].first
    assert "Blamed: mapping" in prompt
    assert "Stage evidence: mapping(layer, hardware)" in prompt
    assert "LayerMapping.row_folds: expected 2, got 1" in prompt
    assert "row_folds = max(1, spatial_rows // rows)" in prompt, "the repairer sees the code it must fix"
    report = out["report"]
    assert [a["kind"] for a in answers(report, "mapping")] == ["write", "repair"]
    assert report["modules"][0] == {"module": "mapping", "source": "generated", "attempts": 2, "status": "repaired"}
    final = verifier.verify(executors.InProcessExecutor(tmp_path / "run" / "candidate"),
                            suites.load_suite(spec), final_check=suites.load_final_check(spec))
    assert final.passed
    assert (Path(out["package_path"]) / "mapping.py").read_text() == reference_runs.reference_code("mapping")


def test_wrong_until_the_budget_runs_out(spec: Path, tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        return fakes.mutant_answer(MUTANT, "mapping") if r.module == "mapping" else fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    out = run(spec, tmp_path, model, repair_rounds=2)
    assert out["status"] == "budget_exhausted"
    assert [c.kind for c in model.calls if c.module == "mapping"] == ["write", "repair", "repair"]
    second = [c for c in model.calls if c.kind == "repair"][1].first
    assert "Earlier attempts" in second and "LayerMapping.row_folds" in second
    report = out["report"]
    assert report["verification"]["blamed"] == ["mapping"]
    assert "stopped: repair budget spent (2 rounds)" in report["notes"]
    assert "package_path" not in out and report["package"] is None
    assert (tmp_path / "run" / "best" / "mapping.py").is_file()


def test_no_code_in_the_answer_is_sent_back(spec: Path, tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        if r.module == "network" and not r.retry:
            return "I would map the layer onto the array, then skew the operands."
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    out = run(spec, tmp_path, model)
    assert out["status"] == "verified"
    network = [c for c in model.calls if c.module == "network"]
    assert len(network) == 2
    assert network[1].last.startswith("Your previous answer could not be used")
    assert "No Python code block found" in network[1].last
    assert [a["status"] for a in answers(out["report"], "network")] == ["no_code", "accepted"]


def test_an_answer_that_imports_the_reference_is_refused_and_the_model_told_why(spec: Path, tmp_path: Path) -> None:
    cheat = fakes.fenced("from reference_sim.mapping import map_layer as _reference\n\n\n"
                         "def map_layer(layer, hardware):\n    return _reference(layer, hardware)\n")

    def respond(r: Request) -> str:
        if r.module == "mapping" and not r.retry:
            return cheat
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    out = run(spec, tmp_path, model)
    assert out["status"] == "verified"
    mapping = [c for c in model.calls if c.module == "mapping"]
    assert len(mapping) == 2
    told = mapping[1].last
    assert "refuses" in told and "reference_sim" in told
    statuses = [a["status"] for a in answers(out["report"], "mapping")]
    assert statuses[0] in ("refused", "invalid") and statuses[-1] == "accepted"


def test_a_cheat_hidden_behind_a_valid_entry_point_is_refused(spec: Path, tmp_path: Path) -> None:
    cheat = fakes.fenced("import importlib\n\n\ndef map_layer(layer, hardware):\n"
                         "    return importlib.import_module('reference_sim.mapping').map_layer(layer, hardware)\n")
    model = ScriptedChatModel(respond=lambda r: cheat if r.module == "mapping" else fakes.reference_answer(r.module))
    out = run(spec, tmp_path, model, attempts_per_module=2)
    assert out["status"] == "failed"
    assert [a["status"] for a in answers(out["report"], "mapping")] == ["refused", "refused"]
    assert "importlib" in model.calls[-1].last or any("importlib" in c.last for c in model.calls if c.retry)


def test_a_model_exception_is_retried_then_the_run_goes_on(spec: Path, tmp_path: Path) -> None:
    failed: list[str] = []

    def respond(r: Request) -> str | BaseException:
        if r.module == "memory" and not failed:
            failed.append("once")
            return ConnectionError("connection reset by peer")
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    out = run(spec, tmp_path, model)
    assert out["status"] == "verified"
    assert failed == ["once"]
    assert len([c for c in model.calls if c.module == "memory"]) == 2
    assert [a["status"] for a in answers(out["report"], "memory")] == ["accepted"]


def test_a_non_transient_model_error_fails_the_module_with_a_clear_message(spec: Path, tmp_path: Path) -> None:
    from agents.llm import ModelCallError

    def respond(r: Request) -> str | BaseException:
        if r.module == "memory":
            return ModelCallError("model call to m failed (HTTP 401, not retried): bad key")
        return fakes.reference_answer(r.module)

    out = run(spec, tmp_path, ScriptedChatModel(respond=respond))
    assert out["status"] == "failed"
    assert any("HTTP 401" in n for n in out["report"]["notes"])


def test_the_token_cap_stops_asking(spec: Path, tmp_path: Path) -> None:
    model = ScriptedChatModel(respond=lambda r: "No code, only words. " * 20)
    out = run(spec, tmp_path, model, generate=["mapping"], max_tokens=50)
    assert out["status"] == "budget_exhausted"
    assert len(model.calls) == 1
    assert any("token cap reached" in n for n in out["report"]["notes"])


def test_the_kept_modules_are_the_reference(spec: Path, tmp_path: Path) -> None:
    model = ScriptedChatModel(respond=lambda r: fakes.reference_answer(r.module))
    out = run(spec, tmp_path, model, generate=["memory"])
    assert out["status"] == "verified"
    assert [c.module for c in model.calls] == ["memory"]
    sources = {m["module"]: m["source"] for m in out["report"]["modules"]}
    assert sources == {"mapping": "reference", "network": "reference", "memory": "generated"}


def test_function_granularity_end_to_end(spec: Path, tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        assert r.unit is not None, "a function-granularity prompt names its unit"
        if r.unit == "map_layer" and not r.retry:
            wrong = skeleton.skeleton("mapping").unit("map_layer").reference.replace(
                "row_folds = math.ceil(spatial_rows / rows)", "row_folds = max(1, spatial_rows // rows)")
            assert wrong != skeleton.skeleton("mapping").unit("map_layer").reference
            return fakes.fenced(wrong)
        return fakes.unit_answer(r.module, r.unit)

    model = ScriptedChatModel(respond=respond)
    out = run(spec, tmp_path, model, granularity="function", generate=["mapping", "network"])
    assert out["status"] == "verified"
    units = [(c.module, c.unit) for c in model.calls]
    assert units == [("mapping", "_tilings"), ("mapping", "map_layer"), ("mapping", "map_layer"),
                     ("network", "schedule")] or sorted(units) == sorted(
        [("mapping", "_tilings"), ("mapping", "map_layer"), ("mapping", "map_layer"), ("network", "schedule")])
    retry = next(c for c in model.calls if c.unit == "map_layer" and c.retry)
    assert "with map_layer written by you" in retry.last and "row_folds" in retry.last
    assert "Write the unit" in model.calls[0].first or "unit" in model.calls[0].first
    mapping_code = (tmp_path / "run" / "candidate" / "mapping.py").read_text()
    assert "def _tilings" in mapping_code and "def map_layer" in mapping_code


def _literal_memory() -> str:
    return skeleton.assemble("memory", {}, fill_from_reference=True)


def test_the_optimiser_accepts_a_faster_module(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def respond(r: Request) -> str:
        if r.kind == "optimise":
            assert r.module == "memory" and "Time per module" in r.first
            return fakes.reference_answer("memory")
        return fakes.fenced(_literal_memory())

    def timed(modules: dict[str, str], *_: Any, **__: Any) -> float:
        """The timing runs, without a clock: the literal memory module takes 2 s, any other 0.5 s."""
        return 2.0 if modules["memory"] == _literal_memory() else 0.5

    monkeypatch.setattr(optimiser_module, "measure", timed)
    model = ScriptedChatModel(respond=respond)
    out = run(spec, tmp_path, model, generate=["memory"], optimise=True)
    assert out["status"] == "verified"
    optimiser = out["report"]["optimiser"]
    assert optimiser["accepted"] is True and optimiser["module"] == "memory"
    assert (optimiser["before_s"], optimiser["after_s"]) == (2.0, 0.5)
    assert out["report"]["runtime"]["candidate_s"] == 0.5, "the optimiser's timing is reused"
    assert (tmp_path / "run" / "candidate" / "memory.py").read_text() == reference_runs.reference_code("memory")
    assert [m["status"] for m in out["report"]["modules"] if m["module"] == "memory"] == ["optimised"]


def test_the_optimiser_refuses_a_wrong_module(spec: Path, tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        if r.kind == "optimise":
            return fakes.mutant_answer("mem-hit-latency", "memory")
        return fakes.fenced(_literal_memory())

    out = run(spec, tmp_path, ScriptedChatModel(respond=respond), generate=["memory"], optimise=True)
    assert out["status"] == "verified"
    optimiser = out["report"]["optimiser"]
    assert optimiser["accepted"] is False and "does not verify" in optimiser["message"]
    assert (tmp_path / "run" / "candidate" / "memory.py").read_text() == _literal_memory()


def test_template_mode_asks_no_model(spec: Path, tmp_path: Path) -> None:
    out = run(spec, tmp_path, None)
    assert out["status"] == "verified"
    report = out["report"]
    assert report["mode"] == "template"
    assert {m["source"] for m in report["modules"]} == {"template"}
    assert any(n.startswith("template mode") for n in report["notes"])
    assert (tmp_path / "run" / "report.md").read_text().splitlines()[0].endswith(
        "(template mode: the built-in verified modules were used and no model was asked)")


def test_a_spec_beyond_the_reference_is_refused_unless_given_a_reference(spec: Path, tmp_path: Path) -> None:
    text = spec.read_text().replace("memory_banks: 1", "memory_banks: 4")
    assert text != spec.read_text()
    beyond = tmp_path / "banked.yaml"
    beyond.write_text(text)
    with pytest.raises(PlanError, match=r"memory_banks: 4.*--reference DIR"):
        run(beyond, tmp_path, None)
    own = tmp_path / "own_reference"
    own.mkdir()
    for role in ("mapping", "network", "memory"):
        (own / f"{role}.py").write_text(reference_runs.reference_code(role))
    shutil.copy(checks.CONTRACT_SOURCE_FILE, own / "contract.py")
    out = run(beyond, tmp_path, None, reference_dir=str(own))
    assert out["status"] == "verified"
    assert out["report"]["reproducibility"]["reference"] == str(own.resolve())
    assert any("user's own reference" in n for n in out["report"]["notes"])


def test_verification_uses_the_users_reference(spec: Path, tmp_path: Path) -> None:
    own = tmp_path / "own_reference"
    own.mkdir()
    from judge.mutants import MUTANTS, candidate_files

    files = candidate_files(next(m for m in MUTANTS if m.id == MUTANT))
    for name, text in files.items():
        (own / name).write_text(text)
    out = run(spec, tmp_path, None, reference_dir=str(own))
    assert out["status"] == "failed"
    assert out["report"]["verification"]["blamed"] == ["mapping"]


def _reviewed_app(host: Host) -> Any:
    from langgraph.checkpoint.memory import InMemorySaver

    return build_builder(host).compile(checkpointer=InMemorySaver())


def _start_reviewed(spec: Path, tmp_path: Path, model: Any, **request: Any) -> tuple[Any, Any, None]:
    app = _reviewed_app(fakes.local_host(model))
    config = {"configurable": {"thread_id": "review"}}
    app.invoke({"spec_path": str(spec), "run_dir": str(tmp_path / "run"), "optimise": False, **request}, config)
    return app, config, None


def test_human_review_edits_the_repair_instruction(spec: Path, tmp_path: Path) -> None:
    from langgraph.types import Command

    def respond(r: Request) -> str:
        return fakes.mutant_answer(MUTANT, "mapping") if r.kind == "write" else fakes.reference_answer("mapping")

    model = ScriptedChatModel(respond=respond)
    app, config, _ = _start_reviewed(spec, tmp_path, model, generate=["mapping"], human_review=True)
    pending = app.get_state(config).interrupts
    assert len(pending) == 1 and pending[0].value["module"] == "mapping"
    assert "Blamed: mapping" in pending[0].value["diagnosis"]
    assert [c.kind for c in model.calls] == ["write"], "nothing is asked before the person answers"
    out = app.invoke(Command(resume={"action": "edit", "instruction": "Round the fold counts up."}), config)
    assert out["status"] == "verified"
    repair = next(c for c in model.calls if c.kind == "repair")
    assert "Instruction from the reviewer (follow it): Round the fold counts up." in repair.first


def test_human_review_can_stop_the_run(spec: Path, tmp_path: Path) -> None:
    from langgraph.types import Command

    model = ScriptedChatModel(respond=lambda r: fakes.mutant_answer(MUTANT, "mapping"))
    app, config, _ = _start_reviewed(spec, tmp_path, model, generate=["mapping"], human_review=True)
    out = app.invoke(Command(resume="stop"), config)
    assert out["status"] == "cancelled"
    assert [c.kind for c in model.calls] == ["write"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["status"] == "cancelled"
    assert "stopped: cancelled: stopped by the reviewer" in report["notes"]


def test_parallel_reviews_are_answered_by_interrupt_id(spec: Path, tmp_path: Path) -> None:
    from langgraph.types import Command

    def respond(r: Request) -> str:
        if r.kind == "write" and r.module in ("mapping", "network"):
            return fakes.mutant_answer("two-offset+read-latency", r.module)
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    app, config, _ = _start_reviewed(spec, tmp_path, model, human_review=True)
    pending = app.get_state(config).interrupts
    assert sorted(i.value["module"] for i in pending) == ["mapping", "network"]
    answers_by_id = {i.id: {"action": "approve"} if i.value["module"] == "mapping"
                     else {"action": "edit", "instruction": "Reads take one cycle."} for i in pending}
    out = app.invoke(Command(resume=answers_by_id), config)
    assert out["status"] == "verified"
    repairs = {c.module: c.first for c in model.calls if c.kind == "repair"}
    assert set(repairs) == {"mapping", "network"}
    assert "Reads take one cycle." in repairs["network"] and "Instruction from the reviewer" not in repairs["mapping"]


def test_answers_live_in_the_run_folder_and_checkpoints_hold_references(spec: Path, tmp_path: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    marker = "PROSE-AFTER-THE-CODE-" + "x" * 20_000
    model = ScriptedChatModel(respond=lambda r: fakes.reference_answer(r.module) + f"\n\n{marker}\n")
    saver = InMemorySaver()
    app = build_builder(fakes.local_host(model)).compile(checkpointer=saver)
    out = app.invoke({"spec_path": str(spec), "run_dir": str(tmp_path / "run"), "generate": ["mapping"],
                      "optimise": False}, {"configurable": {"thread_id": "answers"}})
    assert out["status"] == "verified"
    saved = list((tmp_path / "run" / "answers").glob("mapping-coder-1-*.txt"))
    assert len(saved) == 1 and marker in saved[0].read_text()
    checkpoints = [str(c.checkpoint["channel_values"]) for c in saver.list(None)]
    assert checkpoints and not any(marker[:40] in c for c in checkpoints), "an answer's text is in a checkpoint"
    assert any("answers/mapping-coder-1-" in c for c in checkpoints)


def test_an_answer_reference_cannot_leave_the_run_folder(tmp_path: Path) -> None:
    from agents import transcripts

    entry = transcripts.save(tmp_path, "text", what="../../x")
    assert transcripts.text_of(tmp_path, entry) == "text" and "/" not in entry["file"].split("/", 1)[1]
    with pytest.raises(transcripts.TranscriptError, match="outside"):
        transcripts.text_of(tmp_path, {"role": "assistant", "file": "answers/../../secret"})


def test_a_retry_asks_with_another_temperature_and_seed_and_every_call_caps_the_answer(spec: Path,
                                                                                        tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        return fakes.reference_answer(r.module) if r.retry else "I would fold the layer onto the array."

    endpoint = fakes.OpenAIEndpoint(respond)
    out = run(spec, tmp_path, endpoint.model, generate=["mapping"], seed=5)
    assert out["status"] == "verified"
    assert [(b["temperature"], b["seed"]) for b in endpoint.bodies] == [(0.0, 5), (0.7, 6)]
    assert all(b["max_tokens"] == 4096 and "max_completion_tokens" not in b for b in endpoint.bodies)


def test_an_answer_cut_off_at_the_length_limit_is_truncated_and_the_model_told_to_be_shorter(
        spec: Path, tmp_path: Path) -> None:
    def respond(r: Request) -> str | tuple[str, str]:
        if r.retry:
            return fakes.reference_answer(r.module)
        return "```python\ndef map_layer(layer, hardware):\n    rows = hard", "length"

    endpoint = fakes.OpenAIEndpoint(respond, max_answer_tokens=300)
    out = run(spec, tmp_path, endpoint.model, generate=["mapping"])
    assert out["status"] == "verified"
    assert [a["status"] for a in answers(out["report"], "mapping")] == ["truncated", "accepted"]
    told = endpoint.calls[1].last
    assert "cut off at the length limit after 14 tokens" in told and "shorter" in told
    assert endpoint.bodies[0]["max_tokens"] == 300


def test_a_prompt_over_the_models_window_is_refused_before_the_call(spec: Path, tmp_path: Path) -> None:
    model = ScriptedChatModel(respond=lambda r: fakes.reference_answer(r.module))
    small = tmp_path / "small-window.yaml"
    data = yaml.safe_load(spec.read_text())
    data["model"] = {"context_tokens": 3000}
    small.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = run(small, tmp_path, model, generate=["mapping"])
    assert out["status"] == "failed" and model.calls == []
    said = " ".join(out["report"]["notes"])
    assert "do not fit the model's context window of 3000 tokens (model.context_tokens" in said


def test_a_spec_with_catalogue_features_verifies_and_reports_each_features_evidence(tmp_path: Path) -> None:
    spec = fakes.small_spec(tmp_path, variants=2, features={
        "energy": {"pj_per_mac": 0.56, "dram_read_pj_per_word": 64.0}, "batch": {"batch_images": 2}})
    out = run(spec, tmp_path, None)
    assert out["status"] == "verified"
    features = {f["name"]: f for f in out["report"]["features"]}
    assert sorted(features) == ["batch", "energy"]
    assert features["energy"]["passed"] and features["energy"]["evidence"].startswith("exact, oracle, properties ")
    assert features["energy"]["params"]["pj_per_mac"] == 0.56 and features["batch"]["params"]["batch_images"] == 2
    energy_tables = [tmp_path / "run" / t for t in features["energy"]["tables"]]
    assert energy_tables and all(t.name == "ENERGY_REPORT.csv" and t.is_file() for t in energy_tables)
    text = (tmp_path / "run" / "report.md").read_text()
    assert "## Features beyond the reference" in text and "| energy |" in text


@pytest.mark.parametrize(("features", "says"), [
    ({"banking": {}}, "features.banking: not a feature of the catalogue"),
    ({"energy": {"pj_per_flop": 1.0}}, "features.energy.pj_per_flop: unknown parameter"),
    ({"batch": {"batch_images": 0}}, "features.batch.batch_images: 0 is outside"),
    ({"batch": {"batch_images": True}}, "features.batch.batch_images: must be a number"),
])
def test_a_bad_feature_section_is_refused_naming_the_field(tmp_path: Path, features: dict[str, Any],
                                                           says: str) -> None:
    spec = fakes.small_spec(tmp_path, features=features)
    with pytest.raises(InputError, match=re.escape(says)):
        run(spec, tmp_path, None)


def test_an_answer_that_repeats_an_earlier_one_is_told_so(spec: Path, tmp_path: Path) -> None:
    same = fakes.mutant_answer(MUTANT, "mapping")

    def respond(r: Request) -> str:
        return same if r.module == "mapping" and r.kind == "write" else fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=respond)
    run(spec, tmp_path, model, generate=["mapping"], granularity="function", repair_rounds=0)
    told = [c.last for c in model.calls if c.module == "mapping" and c.retry]
    assert told and "identical, character for character" not in told[0]
    assert all("identical, character for character" in t for t in told[1:]) and len(told) >= 2
