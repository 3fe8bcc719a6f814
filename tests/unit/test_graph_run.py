"""``python -m graph.run``: exit codes, one-line errors, the run folder, Ctrl-C and ``--resume``.

The model is scripted and candidates run in this process (the CLI's context is wrapped to inject
both); the integration tests drive the same CLI through a real HTTP model server and Docker.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents import cancel, intake
from agents.llm import ModelConfig
from graph import run as cli
from tests import fakes
from tests.fakes import Request, ScriptedChatModel

MUTANT = "map-row-folds-floor"


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fakes.small_spec(tmp_path_factory.mktemp("spec"))


def inject(monkeypatch: pytest.MonkeyPatch, model: Any) -> None:
    """Run the CLI with ``model`` (``None``: template mode) and in-process candidates instead of a sandbox."""
    from graph import host as host_module

    def host(operator: Any, **kwargs: Any) -> Any:
        return host_module.Host(operator, chat_model=model, executor_factory=fakes.in_process, **kwargs)

    config = None if model is None else ModelConfig("scripted", "http://127.0.0.1:9/v1", "OPENAI_API_KEY", 0.0,
                                                    10.0, 0, None)

    def preflight(settings: dict[str, Any], out: Path, run_id: str) -> Any:
        checked = intake.prepare(cli.request_from(settings, run_id), cli.operator_from(settings, out),
                                 template=None if model is None else False)
        return checked, config, None

    monkeypatch.setattr(cli, "Host", host)
    monkeypatch.setattr(cli, "preflight", preflight)


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


def test_template_run_writes_the_run_folder(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    inject(monkeypatch, None)
    code = cli.main(["--arch", str(spec), "--out", str(tmp_path / "runs")])
    out = capsys.readouterr()
    assert code == 0
    assert out.out.splitlines()[0].startswith("SimulatorCoder: template mode (no model configured)")
    assert "verified (template mode" in out.out
    assert "verify (round 0): passed" in out.err
    folder = only_run(tmp_path / "runs")
    for name in ("report.md", "report.json", "run.json", "checkpoints.sqlite", "cycles.png", "runtime.png"):
        assert (folder / name).is_file(), name
    settings = json.loads((folder / "run.json").read_text())
    assert settings["format"] == cli.SETTINGS_FORMAT and settings["granularity"] == "module"
    report = json.loads((folder / "report.json").read_text())
    assert report["status"] == "verified" and report["runtime"]["candidate_s"] > 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--arch", "no-such.yaml"], "no-such.yaml: file not found"),
    (["--generate", "mapping,cache"], "--generate takes a comma-separated list"),
    (["--max-tokens", "0"], "--max-tokens: must be a positive finite number"),
    (["--max-wall-s", "nan"], "--max-wall-s: must be a positive finite number"),
    (["--max-wall-s", "inf"], "--max-wall-s: must be a positive finite number"),
    (["--base-url", "http://127.0.0.1:9/v1"], "--model"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_BAD_INPUT
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_a_remote_model_without_a_key_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = cli.main(["--model", "gpt-x", "--base-url", "https://models.example.invalid/v1", "--out", str(tmp_path)])
    assert code == cli.EXIT_BAD_INPUT
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_budget_exhausted_exits_4(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedChatModel(respond=lambda r: fakes.mutant_answer(MUTANT, "mapping"))
    inject(monkeypatch, model)
    code = cli.main(["--arch", str(spec), "--out", str(tmp_path / "runs"), "--generate", "mapping",
                     "--repair-rounds", "1", "--no-optimise"])
    assert code == cli.EXIT_CODES["budget_exhausted"] == 4
    report = json.loads((only_run(tmp_path / "runs") / "report.json").read_text())
    assert report["status"] == "budget_exhausted"
    err = capsys.readouterr().err
    assert "repair round 1: mapping" in err
    assert err.index("mapping: asking the model") < err.index("mapping: answer 1 accepted")


def test_ctrl_c_leaves_a_cancelled_report_and_resume_finishes_without_redoing(
        spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def first(r: Request) -> str | BaseException:
        if r.kind == "repair":
            return KeyboardInterrupt()
        return fakes.mutant_answer(MUTANT, "mapping")

    model = ScriptedChatModel(respond=first)
    inject(monkeypatch, model)
    args = ["--arch", str(spec), "--out", str(tmp_path / "runs"), "--generate", "mapping", "--no-optimise"]
    assert cli.main(args) == cli.EXIT_CODES["cancelled"]
    folder = only_run(tmp_path / "runs")
    report = json.loads((folder / "report.json").read_text())
    assert report["status"] == "cancelled"
    assert "cancelled by the user (Ctrl-C)" in report["notes"]
    assert f"--resume {folder.name}" in capsys.readouterr().err
    assert [c.kind for c in model.calls] == ["write", "repair"]

    resumed = ScriptedChatModel(respond=lambda r: fakes.reference_answer("mapping"))
    inject(monkeypatch, resumed)
    assert cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs")]) == 0
    assert [c.kind for c in resumed.calls] == ["repair"], "the finished write was not asked for again"
    assert json.loads((folder / "report.json").read_text())["status"] == "verified"
    assert cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs")]) == 0
    assert "already ended" in capsys.readouterr().out


def test_ctrl_c_while_three_coders_wait_for_a_slow_model_returns_at_once_and_resume_asks_again(
        spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    release = threading.Event()
    waiting = threading.Semaphore(0)

    def slow(r: Request) -> str:
        waiting.release()
        release.wait(120)
        return fakes.reference_answer(r.module)

    model = ScriptedChatModel(respond=slow)
    inject(monkeypatch, model)

    def interrupt_when_all_wait() -> None:
        for _ in range(3):
            waiting.acquire(timeout=60)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_all_wait, daemon=True).start()
    started = time.monotonic()
    try:
        code = cli.main(["--arch", str(spec), "--out", str(tmp_path / "runs"), "--no-optimise"])
    finally:
        release.set()
    assert code == cli.EXIT_CODES["cancelled"]
    assert time.monotonic() - started < 60, "Ctrl-C waited for the calls in flight"
    folder = only_run(tmp_path / "runs")
    assert json.loads((folder / "report.json").read_text())["status"] == "cancelled"
    capsys.readouterr()

    resumed = ScriptedChatModel(respond=lambda r: fakes.reference_answer(r.module))
    inject(monkeypatch, resumed)
    assert cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs")]) == 0
    assert sorted(c.module for c in resumed.calls) == ["mapping", "memory", "network"]
    assert "already ended" not in capsys.readouterr().out


def test_a_ctrl_c_the_kernel_hands_to_another_thread_still_stops_the_wait_at_once() -> None:
    """The SIGINT lands on a worker thread while the main thread waits for the next item, and the graph waits
    for its call without a timeout (as LangGraph waits for its workers): the main thread must still take the
    interrupt within a poll, not when the call ends (30 s here)."""
    release = threading.Event()
    threading.Timer(30, release.set).start()
    steps: list[str] = []

    def graph() -> Any:
        yield "first"
        done = threading.Event()

        def call() -> None:
            while not release.wait(0.05):
                if cancel.cancelling():
                    steps.append("the call saw the cancel")
                    break
            done.set()

        threading.Thread(target=call, daemon=True).start()
        done.wait()
        if cancel.cancelling():
            raise cancel.Cancelled("stopped waiting")
        yield "late"

    def ctrl_c_on_this_thread() -> None:
        time.sleep(0.5)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    seen: list[str] = []
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt), cancel.cancellable():
            for item in cancel.watched(graph()):
                seen.append(item)
                threading.Thread(target=ctrl_c_on_this_thread, daemon=True).start()
    finally:
        release.set()
    assert time.monotonic() - started < 10, "the interrupt waited for the next item"
    assert seen == ["first"] and steps == ["the call saw the cancel"]


def test_watched_hands_over_every_item_and_the_error_that_ends_them() -> None:
    def items() -> Any:
        yield from range(5)
        raise ValueError("the graph failed")

    got: list[int] = []
    with pytest.raises(ValueError, match="the graph failed"):
        for item in cancel.watched(items()):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert list(cancel.watched(iter(["a", "b"]))) == ["a", "b"]


def test_a_model_call_waits_for_no_one_once_the_run_is_cancelling() -> None:
    with cancel.cancellable():
        cancel._CANCELLING.set()
        with pytest.raises(cancel.Cancelled, match="was not started"):
            cancel.interruptible(lambda: 1, "the answer")
    assert not cancel.cancelling()


def test_resume_of_an_unknown_run_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--resume", "nope", "--out", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "no such run to resume" in capsys.readouterr().err


def test_resume_takes_new_limits_but_not_plan_changes(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    inject(monkeypatch, None)
    assert cli.main(["--arch", str(spec), "--out", str(tmp_path / "runs")]) == 0
    folder = only_run(tmp_path / "runs")
    code = cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs"), "--granularity", "function"])
    assert code == cli.EXIT_BAD_INPUT
    assert "--granularity cannot change on resume" in capsys.readouterr().err
    assert cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs"), "--repair-rounds", "9",
                     "--base-url", "http://127.0.0.1:9/v1"]) == 0
    settings = json.loads((folder / "run.json").read_text())
    assert settings["repair_rounds"] == 9 and settings["base_url"] == "http://127.0.0.1:9/v1"
    assert cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs"), "--max-sandboxes", "0"]) == 2


def test_a_spec_beyond_the_reference_is_refused_before_a_run_starts(spec: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    banked = tmp_path / "banked.yaml"
    banked.write_text(spec.read_text().replace("memory_banks: 1", "memory_banks: 8"))
    code = cli.main(["--arch", str(banked), "--out", str(tmp_path / "runs")])
    assert code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "cannot model architecture.memory_banks: 8" in err and "--reference DIR" in err
    assert not (tmp_path / "runs").exists()


def test_the_preflight_sandbox_is_the_one_the_run_uses(spec: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from agents import resources
    from sandbox import ProcessSandbox

    made = ProcessSandbox()

    def preflight(settings: dict[str, Any], out: Path, run_id: str) -> Any:
        return intake.prepare(cli.request_from(settings, run_id), cli.operator_from(settings, out)), None, made

    monkeypatch.setattr(cli, "preflight", preflight)

    def second(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a second sandbox was made")

    monkeypatch.setattr(resources, "make_sandbox_for", second)
    assert cli.main(["--arch", str(spec), "--out", str(tmp_path / "runs"), "-q"]) == 0
    report = json.loads((only_run(tmp_path / "runs") / "report.json").read_text())
    assert resources.TEMPLATE_FALLBACK in report["notes"]


@pytest.mark.parametrize(("given", "says"), [("icl+cot", "'icl+cot' is spelled icl_cot"),
                                             ("zero-shot", "'zero-shot' is spelled zero_shot"),
                                             ("fancy", "unknown strategy 'fancy'")])
def test_both_clis_take_one_spelling_of_a_strategy(given: str, says: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from taskbench import cli as bench

    assert cli.main(["--strategy", given, "--out", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err == f"error: --strategy: {says} (strategies: zero_shot, icl, cot, icl_cot)"
    code = bench.main(["tasks", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--strategy", given,
                       "--out", str(tmp_path / "bench")])
    assert code == 2 and f"--strategy: {says}" in caplog.text
    assert not (tmp_path / "bench").exists()


def _cancelled_run(spec: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def first(r: Request) -> str | BaseException:
        return KeyboardInterrupt() if r.kind == "repair" else fakes.mutant_answer(MUTANT, "mapping")

    inject(monkeypatch, ScriptedChatModel(respond=first))
    assert cli.main(["--arch", str(spec), "--out", str(out), "--generate", "mapping", "--no-optimise"]) == 130
    return only_run(out)


@pytest.mark.parametrize(("damage", "says"), [
    (lambda p: p.unlink(), "checkpoints.sqlite: missing: the run cannot be resumed"),
    (lambda p: p.write_bytes(b""), "checkpoints.sqlite: empty: the run cannot be resumed"),
    (lambda p: p.write_bytes(b"not a database, just text" * 100), "checkpoints.sqlite: not a checkpoint database"),
])
def test_a_resume_never_silently_starts_over(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], damage: Any, says: str) -> None:
    folder = _cancelled_run(spec, tmp_path / "runs", monkeypatch)
    damage(folder / "checkpoints.sqlite")
    capsys.readouterr()
    model = ScriptedChatModel(respond=lambda r: fakes.reference_answer("mapping"))
    inject(monkeypatch, model)
    assert cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs")]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and len(err.splitlines()) == 1, err
    assert model.calls == [], "nothing was redone"


def test_a_moved_run_folder_resumes_in_place(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _cancelled_run(spec, tmp_path / "runs", monkeypatch)
    moved = tmp_path / "elsewhere"
    folder.parent.rename(moved)
    inject(monkeypatch, ScriptedChatModel(respond=lambda r: fakes.reference_answer("mapping")))
    assert cli.main(["--resume", folder.name, "--out", str(moved)]) == 0
    assert not (tmp_path / "runs").exists(), "the resumed run wrote to the folder's old place"
    assert json.loads((moved / folder.name / "report.json").read_text())["status"] == "verified"
    assert (moved / folder.name / "candidate" / "mapping.py").is_file()


def test_a_second_resume_of_a_run_in_use_is_refused(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    folder = _cancelled_run(spec, tmp_path / "runs", monkeypatch)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / "run.lock").write_text(f"{holder.pid}\n")
        capsys.readouterr()
        model = ScriptedChatModel(respond=lambda r: fakes.reference_answer("mapping"))
        inject(monkeypatch, model)
        assert cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs")]) == cli.EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip()
        assert f"the run is in use by process {holder.pid}" in err and len(err.splitlines()) == 1
        assert model.calls == []
    finally:
        holder.kill()
        holder.wait()
    assert cli.main(["--resume", folder.name, "--out", str(tmp_path / "runs")]) == 0, "a dead holder's lock is stale"
    assert not (folder / "run.lock").exists()


@pytest.mark.parametrize("out", ["a-file", "/proc/simcoder-runs"])
def test_an_output_folder_that_cannot_be_written_is_one_line(spec: Path, tmp_path: Path, out: str,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    inject(monkeypatch, None)
    target = tmp_path / out if not out.startswith("/") else Path(out)
    if out == "a-file":
        target.write_text("the user's own file")
    assert cli.main(["--arch", str(spec), "--out", str(target)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out: cannot write the run folder") and len(err.splitlines()) == 1, err
    if out == "a-file":
        assert target.read_text() == "the user's own file"


def test_a_full_disk_during_the_run_is_one_line_not_a_traceback(spec: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this machine")
    inject(monkeypatch, None)
    monkeypatch.setattr(intake, "new_run_id", lambda: "full-disk")
    folder = tmp_path / "runs" / "full-disk"
    folder.mkdir(parents=True)
    (folder / "report.md").symlink_to("/dev/full")
    assert cli.main(["--arch", str(spec), "--out", str(tmp_path / "runs"), "-q"]) == cli.EXIT_CODES["failed"]
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines[0] == f"error: cannot write {folder / 'report.md'}: No space left on device", lines


def test_progress_lines_for_a_call_and_its_streamed_answer() -> None:
    assert cli._progress({"event": "asking", "module": "mapping", "unit": "_tilings", "attempt": 2,
                          "temperature": 0.7}, time.time()).endswith("mapping._tilings: asking the model "
                                                                     "(answer 2, temperature 0.7)")
    line = cli._progress({"event": "streaming", "module": "memory", "unit": None, "attempt": 1, "tokens": 120,
                          "seconds": 20.0}, time.time())
    assert line is not None and line.endswith("memory: 120 tokens so far (6.0 tokens/s)")


def test_the_plan_line_names_the_features_the_agent_writes() -> None:
    line = cli._progress({"event": "plan", "generate": [], "keep": ["mapping", "network", "memory"],
                          "granularity": "module", "features": ["energy"]}, time.time())
    assert line is not None and line.endswith(
        "plan: write feature_energy (module); kept from the reference: mapping, network, memory")
