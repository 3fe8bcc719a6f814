"""The benchmark's task suite, its hidden tests, its self-check and the pass@k harness (fake model, in process)."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents.planner import STRATEGIES
from taskbench import cli, hidden, mutation, passk, probes
from taskbench.suite import BenchTask, load_suite, suite_problems
from tests import fakes
from tests.fakes import Request, ScriptedChatModel, fenced

SUITE = load_suite()
RUNNER = hidden.Runner()


def task(task_id: str) -> BenchTask:
    return SUITE.task(task_id)


def test_the_suite_is_big_enough_and_has_no_duplicates_or_leaked_solutions() -> None:
    assert suite_problems(SUITE) == []
    assert len(SUITE.tasks) >= 138
    counts: dict[str, int] = {}
    for t in SUITE.tasks:
        counts[t.module] = counts.get(t.module, 0) + 1
        counts[t.level] = counts.get(t.level, 0) + 1
    assert all(counts[g] >= 15 for g in ("mapping", "network", "memory", "spec", "function", "class", "module"))


def test_suite_problems_names_a_duplicate_and_a_leaked_solution(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    first = SUITE.tasks[0]
    twin = BenchTask(**{**first.__dict__, "id": first.id + ".twin"})
    small = type(SUITE)((*SUITE.tasks, twin), SUITE.families, SUITE.layers)
    assert any("share a signature and description" in p for p in suite_problems(small))
    (tmp_path / "example.md").write_text(f"#### Example\n\n```python\n{task('spec._fields').solution}\n```\n")
    (tmp_path / "toy.py").write_text("# a toy module\n\n" + task("spec.folder_name_problem").solution)
    monkeypatch.setattr("taskbench.suite.PROMPT_EXAMPLES", (tmp_path,))
    leaked = [p for p in suite_problems(SUITE) if "ICL example" in p]
    assert any("spec._fields:" in p for p in leaked) and any("spec.folder_name_problem:" in p for p in leaked)


def test_function_level_stage_tasks_are_the_planners_units() -> None:
    from agents import skeleton

    units = {(t.role, t.unit) for t in SUITE.tasks if t.kind == "stage" and t.unit}
    every = {(role, u.name) for role in ("mapping", "network", "memory") for u in skeleton.skeleton(role).units}
    assert units == every


def test_a_task_never_shows_its_solution() -> None:
    import ast

    for t in SUITE.tasks:
        prompt = "\n".join(str(m.content) for m in passk.first_messages(SUITE, t, "zero_shot"))
        for node in ast.parse(t.solution).body:
            if not isinstance(node, ast.FunctionDef | ast.ClassDef):
                continue
            body = node.body[1:] if ast.get_docstring(node) else node.body
            source = "\n".join(ast.get_source_segment(t.solution, b, padded=True) or "" for b in body)
            assert ast.unparse(node) not in prompt and source.strip() not in prompt, (t.id, node.name)


@pytest.mark.parametrize("task_id", ["mapping.map_layer.ws-rect", "memory._WriteBuffer.is-user-narrow",
                                     "network.module.os-user-wide", "spec.parse_topology_errors",
                                     "mapping.prefetch_order.is-rect", "spec.Hardware"])
def test_golden_solutions_pass_their_hidden_tests(task_id: str) -> None:
    verdict = hidden.judge(SUITE, task(task_id), task(task_id).solution, RUNNER)
    assert verdict == hidden.PASSED, verdict


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(("task_id", "old", "new", "failure", "stage"), [
    ("mapping.map_layer.os-rect", "math.ceil(spatial_cols / cols)", "spatial_cols // cols + 1", "wrong", "mapping"),
    ("memory._sram_words.ws-user-narrow", "// word_bytes", "* word_bytes", "wrong", "memory"),
    ("network.schedule.is-calc", "def schedule(", "def schedul(", "interface", ""),
    ("memory._start_stop.os-calc", "busy = ", "import os\n    busy = ", "refused_import", ""),
    ("spec._fields", "fields.pop()", "fields.pop(0)", "wrong", "probe"),
    ("spec._parse_int", "if value < 1:", "if value < 0:", "wrong", "probe"),
    ("spec.Layer_geometry", "return self.ofmap_h * self.ofmap_w", "return self.ofmap_h + self.ofmap_w",
     "wrong", "probe"),
    ("mapping.dense_block.ws-rect", "return block", "raise RuntimeError('no')", "crash", "probe"),
    ("spec.folder_name_problem", "    if not name:", "    if not name:\n        open('/etc/hostname')\n",
     "refused_import", ""),
])
def test_hidden_tests_reject_wrong_answers_with_their_failure_class(task_id: str, old: str, new: str, failure: str,
                                                                    stage: str) -> None:
    t = task(task_id)
    verdict = hidden.judge(SUITE, t, _replace_once(t.solution, old, new), RUNNER)
    assert not verdict.passed
    assert (verdict.failure, verdict.stage) == (failure, stage), verdict


def test_a_probe_answer_that_raises_where_the_reference_raises_a_value_error_must_raise_one_too() -> None:
    t = task("spec._parse_int")
    raise_line = 'raise InputError(path, f"must be positive, got {value}", line=number, field=column)'
    wrong = _replace_once(t.solution, raise_line, 'raise RuntimeError(f"must be positive, got {value}")')
    verdict = hidden.judge(SUITE, t, wrong, RUNNER)
    assert (verdict.failure, verdict.stage) == ("wrong", "probe")
    assert "expected ValueError, got RuntimeError" in verdict.detail


@pytest.mark.parametrize("task_id", ["spec._fields", "mapping._tilings.os-rect"])
def test_an_answer_with_its_own_future_import_passes(task_id: str) -> None:
    t = task(task_id)
    verdict = hidden.judge(SUITE, t, "from __future__ import annotations\n\n" + t.solution, RUNNER)
    assert verdict.passed, verdict


def test_an_input_error_must_name_the_line_the_reference_names() -> None:
    t = task("spec._parse_int")
    wrong = t.solution.replace("line=number, field=column) from None", "line=number + 1, field=column) from None")
    verdict = hidden.judge(SUITE, t, wrong, RUNNER)
    assert (verdict.failure, verdict.stage) == ("wrong", "probe")
    assert "should name line 5, got 6" in verdict.detail


def test_the_visible_part_is_smaller_than_the_hidden_tests() -> None:
    t = task("spec.parse_topology_conv")
    assert len(probes.probe_job(SUITE, t, visible=True)[0]["probes"]) == 1
    assert len(probes.probe_job(SUITE, t)[0]["probes"]) > 1
    stage = task("memory.simulate.ws-calc")
    assert sum(len(w.layers) for w in SUITE.workloads(stage, visible=True)) == 1
    assert sum(len(w.layers) for w in SUITE.workloads(stage)) == 3 * len(SUITE.layers)


# --------------------------------------------------------------------------- self-check


def test_mutants_cover_every_operator_and_parse() -> None:
    code = "def f(a, b):\n    x = a + 1\n    if a < b and not b:\n        g(a, b)\n    return x * 2\n"
    found = mutation.mutants(code)
    assert {m.operator for m in found} == {"constant+1", "constant-1", "flip-comparison", "swap-arithmetic",
                                           "swap-boolean", "drop-not", "swap-arguments", "drop-statement"}
    assert all(compile(m.code, "m", "exec") for m in found)
    assert len({m.code for m in found}) == len(found)
    only_line_3 = mutation.mutants(code, {3})
    assert only_line_3 and {m.line for m in only_line_3} == {3}


def test_self_check_passes_golden_and_kills_mutants_of_sampled_tasks() -> None:
    tasks = [task("spec._fields"), task("mapping._tilings.is-thin"), task("network.fold_demand.ws-calc")]
    result = mutation.self_check(SUITE, tasks, per_task=6, jobs=2)
    assert result.golden_pass_rate == 1.0
    assert all(t.killed for t in result.tasks)
    assert result.score >= mutation.MIN_SCORE
    assert "mutation score" in mutation.report_text(result)


def test_self_check_reports_a_task_whose_tests_cannot_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    t = task("spec._fields")
    monkeypatch.setattr(hidden, "judge", lambda *a, **k: hidden.PASSED)
    check = mutation.check_task(t, per_task=4)
    result = mutation.SelfCheck([check], 0.0)
    assert any("no mutant is killed" in p for p in result.problems())


def test_self_check_reports_a_failing_golden_solution(monkeypatch: pytest.MonkeyPatch) -> None:
    t = task("spec._fields")
    monkeypatch.setattr(hidden, "judge", lambda *a, **k: hidden.Judgement(False, "wrong", "probe", "bad"))
    result = mutation.SelfCheck([mutation.check_task(t, per_task=2)], 0.0)
    assert any("reference solution fails" in p for p in result.problems())


def test_a_hanging_mutant_is_killed_by_the_deadline() -> None:
    t = task("spec._fields")
    hang = "def _fields(line):\n    while True:\n        pass\n"
    results = mutation._judge_all(t, [hang, t.solution], deadline_s=2.0)
    assert results[0].failure == "timeout"
    assert results[1].passed


# --------------------------------------------------------------------------- pass@k


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    assert passk.pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert passk.pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert passk.pass_at_k(5, 0, 5) == 0.0
    assert passk.pass_at_k(5, 1, 5) == 1.0
    with pytest.raises(passk.BenchError, match="at least 5 samples"):
        passk.pass_at_k(3, 1, 5)


CHOSEN = ("spec._fields", "mapping.map_layer.os-rect", "memory._sram_words.os-calc")
RIGHT_SAMPLES = {"spec._fields": {0, 1, 2}, "mapping.map_layer.os-rect": {1}, "memory._sram_words.os-calc": set()}
"""Which samples the fake model answers right, per task (else it answers a wrong or unusable answer)."""


def _which(request: Request) -> BenchTask:
    found = [t for t in SUITE.tasks if t.id in CHOSEN and t.description in request.text]
    assert len(found) == 1, [t.id for t in found]
    return found[0]


def _wrong(t: BenchTask) -> str:
    if t.id == "memory._sram_words.os-calc":
        return "I cannot do this."
    if t.id == "spec._fields":
        return fenced(t.solution.replace("fields.pop()", "fields.pop(0)"))
    return fenced(t.solution.replace("math.ceil(spatial_rows / rows)", "spatial_rows // rows + 1"))


def _factory(calls: list[tuple[str, int]], right: dict[str, set[int]] | None = None) -> cli.ModelFactory:
    right = RIGHT_SAMPLES if right is None else right

    def make(config: Any, sample: int) -> ScriptedChatModel:
        def respond(request: Request) -> str:
            t = _which(request)
            calls.append((t.id, sample))
            return fenced(t.solution) if sample in right[t.id] else _wrong(t)
        return ScriptedChatModel(respond=respond)
    return make


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return ["tasks", "--model", "fake", "--base-url", "http://127.0.0.1:9/v1", "--samples", "3", "--k", "1,2",
            "--tasks", ",".join(CHOSEN), "--out", str(tmp_path / "run"), "--jobs", "2", *extra]


def test_a_fake_model_gives_the_expected_pass_at_k_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, int]] = []
    assert cli.main(_args(tmp_path), model_factory=_factory(calls), runner=RUNNER) == 0
    table = json.loads((tmp_path / "run" / "table1.json").read_text())
    assert table["overall"]["pass@1"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert table["overall"]["pass@2"] == pytest.approx((1 + (1 - math.comb(2, 2) / math.comb(3, 2)) + 0) / 3)
    assert (table["overall"]["passed"], table["overall"]["samples"]) == (4, 9)
    assert table["by_module"]["spec"]["pass@1"] == 1.0
    assert table["by_module"]["memory"]["pass@2"] == 0.0
    assert table["by_level"]["function"]["tasks"] == 3
    assert table["failures"] == {"no_code": 3, "wrong (mapping)": 2}
    assert sorted(calls) == sorted((t, s) for t in CHOSEN for s in range(3))
    out = capsys.readouterr().out
    assert "| all | 3 | 9 | 44.4% | 55.6% | 4/9 |" in out


def test_ctrl_c_while_samples_wait_for_a_slow_model_returns_at_once_and_records_nothing(tmp_path: Path) -> None:
    """Two samples wait for a model that takes minutes; the SIGINT lands on another thread than the main one
    (as the kernel may deliver it): the run stops within seconds, not when the calls end, records no sample
    as failed, and the same command asks for both again."""
    release = threading.Event()
    waiting = threading.Semaphore(0)

    def slow(config: Any, sample: int) -> ScriptedChatModel:
        def respond(request: Request) -> str:
            waiting.release()
            release.wait(120)
            return fenced(_which(request).solution)
        return ScriptedChatModel(respond=respond)

    def interrupt_when_both_wait() -> None:
        for _ in range(2):
            waiting.acquire(timeout=60)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    args = [*_args(tmp_path, "--samples", "1", "--k", "1")]
    args[args.index("--tasks") + 1] = "spec._fields,mapping.map_layer.os-rect"
    threading.Thread(target=interrupt_when_both_wait, daemon=True).start()
    started = time.monotonic()
    try:
        code = cli.main(args, model_factory=slow, runner=RUNNER)
    finally:
        release.set()
    assert code == 130
    assert time.monotonic() - started < 30, "Ctrl-C waited for the calls in flight"
    results = tmp_path / "run" / passk.RESULTS_FILE
    assert not results.exists() or results.read_text() == ""
    calls: list[tuple[str, int]] = []
    assert cli.main(args, model_factory=_factory(calls), runner=RUNNER) == 0
    assert sorted(calls) == [("mapping.map_layer.os-rect", 0), ("spec._fields", 0)]


def test_an_interrupted_run_resumes_and_report_only_rebuilds_the_same_table(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    assert cli.main(_args(tmp_path), model_factory=_factory(calls), runner=RUNNER) == 0
    def table() -> dict[str, Any]:
        data: dict[str, Any] = json.loads((tmp_path / "run" / "table1.json").read_text())
        data.pop("seconds")
        return data

    first = table()
    results = tmp_path / "run" / passk.RESULTS_FILE
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    calls.clear()
    assert cli.main(_args(tmp_path), model_factory=_factory(calls), runner=RUNNER) == 0
    assert len(calls) == 4
    assert table() == first
    (tmp_path / "run" / "table1.json").unlink()
    assert cli.main(["tasks", "--report-only", "--out", str(tmp_path / "run"), "--k", "1,2",
                     "--tasks", ",".join(CHOSEN)]) == 0
    assert table() == first


def test_a_sample_whose_model_call_failed_is_asked_again_on_resume_with_its_time_counted(tmp_path: Path) -> None:
    from agents.llm import ModelDeadlineError

    deadlines: set[float] = set()

    def slow_then_fine(fails: bool) -> cli.ModelFactory:
        def make(config: Any, sample: int) -> ScriptedChatModel:
            deadlines.add(config.deadline_s)
            def respond(request: Request) -> str | BaseException:
                t = _which(request)
                if fails and t.id == "spec._fields" and sample == 0:
                    time.sleep(0.3)
                    return ModelDeadlineError("m at 127.0.0.1:9 did not answer within 0.3 s")
                return fenced(t.solution)
            return ScriptedChatModel(respond=respond)
        return make

    assert cli.main([*_args(tmp_path), "--model-timeout-s", "0.3"], model_factory=slow_then_fine(True),
                    runner=RUNNER) == 0
    first = passk.current(passk.Store(tmp_path / "run").load())
    timed_out = [s for s in first if s.failure == "model_error"]
    assert [(s.task, s.sample) for s in timed_out] == [("spec._fields", 0)]
    assert timed_out[0].model_seconds >= 0.3
    saved = json.loads((tmp_path / "run" / passk.SETTINGS_FILE).read_text())
    assert (saved["base_url_host"], saved["model_timeout_s"]) == ("127.0.0.1:9", 0.3)
    assert deadlines == {0.3}

    assert cli.main([*_args(tmp_path), "--model-timeout-s", "900"], model_factory=slow_then_fine(False),
                    runner=RUNNER) == 0
    again = {(s.task, s.sample): s for s in passk.current(passk.Store(tmp_path / "run").load())}
    assert again[("spec._fields", 0)].passed and len(again) == 9
    table = json.loads((tmp_path / "run" / "table1.json").read_text())
    assert "model_error" not in table["failures"]


def test_an_answer_cut_off_at_the_length_limit_is_a_truncated_sample(tmp_path: Path) -> None:
    endpoint = fakes.OpenAIEndpoint(lambda r: ("```python\ndef _fields(", "length"))
    settings = passk.Settings("zero_shot", "m", 1, False, 1)
    context = passk.Context(SUITE, settings, "zero_shot", lambda i: endpoint.model, RUNNER)
    sample = passk.run_sample(context, task("spec._fields"), 0)
    assert (sample.passed, sample.failure) == (False, "truncated")
    assert "cut off at the length limit" in sample.detail


def test_other_settings_in_the_same_folder_are_refused(tmp_path: Path) -> None:
    assert cli.main(_args(tmp_path), model_factory=_factory([]), runner=RUNNER) == 0
    assert cli.main([*_args(tmp_path), "--strategy", "cot"], model_factory=_factory([]), runner=RUNNER) == 2


def test_k_above_samples_is_refused_before_any_sample_runs(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    assert cli.main([*_args(tmp_path)[:-4], "--k", "1,5", "--out", str(tmp_path / "r")],
                    model_factory=_factory(calls), runner=RUNNER) == 2
    assert calls == [] and not (tmp_path / "r").exists()


def test_a_crash_in_the_judge_or_the_model_is_a_failed_sample_not_a_crashed_benchmark(tmp_path: Path) -> None:
    def broken_judge(*_: Any) -> hidden.Judgement:
        raise RuntimeError("the sandbox fell over")

    def make(config: Any, sample: int) -> ScriptedChatModel:
        def respond(request: Request) -> str | BaseException:
            t = _which(request)
            if t.id == "spec._fields":
                from agents.llm import ModelCallError
                return ModelCallError("the endpoint refused the request (400)")
            return fenced(t.solution)
        return ScriptedChatModel(respond=respond)

    settings = passk.Settings("zero_shot", "fake", 1, False, 1)
    context = passk.Context(SUITE, settings, "zero_shot", lambda i: make(None, i), RUNNER, judge=broken_judge)
    store = passk.Store(tmp_path / "r")
    store.open(settings)
    samples = passk.run(context, [task(t) for t in CHOSEN], store, jobs=2)
    by_task = {s.task: s for s in samples}
    assert by_task["spec._fields"].failure == "model_error"
    assert by_task["mapping.map_layer.os-rect"].failure == "crash"
    assert by_task["mapping.map_layer.os-rect"].stage == "harness"
    assert by_task["memory._sram_words.os-calc"].failure == "crash"


def test_repair_fixes_a_wrong_answer_from_the_visible_feedback_only(tmp_path: Path) -> None:
    t = task("spec._parse_int")
    seen: list[Request] = []

    def respond(request: Request) -> str:
        seen.append(request)
        if len(seen) == 1:
            return fenced(t.solution.replace("int(raw)", "int(raw) + 1"))
        return fenced(t.solution)

    settings = passk.Settings("icl", "fake", 1, True, 3)
    context = passk.Context(SUITE, settings, "icl", lambda i: ScriptedChatModel(respond=respond), RUNNER)
    sample = passk.run_sample(context, t, 0)
    assert sample.passed and sample.attempts == 2
    repair_prompt = seen[1].last
    assert "expected 12, got 13" in repair_prompt
    hidden_only = probes.probe_job(SUITE, t)[0]["probes"][3]["args"][3]
    assert repr(hidden_only) not in repair_prompt.split("## Your last answer")[1]

    settings = passk.Settings("icl", "fake", 1, False, 3)
    seen.clear()
    context = passk.Context(SUITE, settings, "icl", lambda i: ScriptedChatModel(respond=respond), RUNNER)
    assert not passk.run_sample(context, t, 0).passed


def test_every_strategy_renders_for_both_kinds_of_task() -> None:
    for strategy in STRATEGIES:
        for t in (task("spec.Layer_validation"), task("memory._UserReadBuffer.ws-user-wide"),
                  task("network.module.is-calc")):
            text = "\n".join(str(m.content) for m in passk.first_messages(SUITE, t, strategy))
            assert t.description.split(".")[0] in text
            assert ("Example" in text) == (strategy in ("icl", "icl_cot"))


def test_list_shows_every_selected_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--tasks", "spec.parse_topology", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["id"] for r in rows} == {t.id for t in SUITE.tasks if "spec.parse_topology" in t.id}
    assert all(r["kind"] == "probe" and r["module"] == "spec" for r in rows)
    assert cli.main(["list", "--tasks", "no-such-task"]) == 2


def test_a_prompt_over_the_window_is_a_too_long_sample_and_not_sent() -> None:
    from agents.window import Window

    model = ScriptedChatModel(respond=lambda r: fenced(_which(r).solution))
    settings = passk.Settings("zero_shot", "m", 1, False, 1)
    context = passk.Context(SUITE, settings, "zero_shot", lambda i: model, RUNNER,
                            window=Window(1000, "the server's /props"))
    sample = passk.run_sample(context, task("spec._fields"), 0)
    assert (sample.passed, sample.failure) == (False, "too_long") and model.calls == []
    assert "context window of 1000 tokens (the server's /props)" in sample.detail


def test_every_sample_keeps_its_transcript(tmp_path: Path) -> None:
    assert cli.main(_args(tmp_path), model_factory=_factory([]), runner=RUNNER) == 0
    samples = passk.current(passk.Store(tmp_path / "run").load())
    assert len(samples) == 9
    for sample in samples:
        kept = json.loads((tmp_path / "run" / sample.transcript).read_text())
        assert (kept["task"], kept["sample"], kept["passed"], kept["failure"]) == (
            sample.task, sample.sample, sample.passed, sample.failure)
        assert len(kept["calls"]) == sample.attempts
        assert kept["calls"][0]["messages"][0]["role"] == "system" and kept["calls"][0]["answer"]
