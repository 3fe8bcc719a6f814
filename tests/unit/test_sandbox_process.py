"""ProcessSandbox outcomes with real subprocesses (fast, no Docker).

Out of memory: RLIMIT_AS makes Python raise MemoryError (exit 1); the sandbox maps that to
OUT_OF_MEMORY with a message naming RLIMIT_AS (decided in docs/sandbox.md).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sandbox import (
    ENV_CANDIDATE,
    ENV_CODE,
    ENV_INPUTS,
    ENV_OUT,
    Outcome,
    ProcessSandbox,
    RunResult,
    SandboxConfig,
)

CFG = SandboxConfig(memory_mib=512, timeout_s=10, output_limit_mib=1, stream_limit_bytes=1000)


@pytest.fixture()
def sandbox(tmp_path: Path) -> ProcessSandbox:
    code = tmp_path / "code"
    code.mkdir()
    return ProcessSandbox(CFG, code)


def _run(
    sandbox: ProcessSandbox,
    tmp_path: Path,
    source: str,
    *,
    timeout_s: float | None = None,
    inputs: dict[str, str] | None = None,
) -> RunResult:
    cand = tmp_path / "cand"
    cand.mkdir(exist_ok=True)
    (cand / "main.py").write_text(textwrap.dedent(source))
    inp = tmp_path / "inputs"
    inp.mkdir(exist_ok=True)
    for name, text in (inputs or {}).items():
        (inp / name).write_text(text)
    return sandbox.run(
        cand, inp, tmp_path / "out", [sys.executable, "/sandbox/candidate/main.py"], timeout_s=timeout_s
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_warns_that_it_is_not_isolation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sandbox.process_sandbox"):
        ProcessSandbox(CFG, tmp_path)
    assert any("NOT isolation" in r.getMessage() for r in caplog.records)


def test_passed_with_env_paths_cwd_and_no_host_env(
    sandbox: ProcessSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIMCODER_TEST_API_KEY", "do-not-leak")
    result = _run(
        sandbox,
        tmp_path,
        """
        import json, os
        out = os.environ["SIMCODER_OUT"]
        json.dump({"env": dict(os.environ), "cwd": os.getcwd()}, open(os.path.join(out, "r.json"), "w"))
        print("done")
    """,
    )
    assert result.outcome is Outcome.PASSED, result.message
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert result.output_files == ("r.json",)
    assert result.message.startswith("The command exited 0 in ") and result.message.endswith(
        "with 1 output file."
    )
    seen = json.loads((tmp_path / "out" / "r.json").read_text())
    assert seen["cwd"] == str(tmp_path / "out")
    assert seen["env"][ENV_CANDIDATE] == str(tmp_path / "cand")
    assert seen["env"][ENV_INPUTS] == str(tmp_path / "inputs")
    assert seen["env"][ENV_CODE] == str(tmp_path / "code")
    assert seen["env"][ENV_OUT] == str(tmp_path / "out")
    assert seen["env"]["PYTHONPATH"] == str(tmp_path / "code")
    assert "SIMCODER_TEST_API_KEY" not in seen["env"]


def test_without_code_dir_the_code_folder_is_empty_and_read_only(tmp_path: Path) -> None:
    sandbox = ProcessSandbox(CFG)
    assert sandbox.code_dir is None
    (tmp_path / "c").mkdir()
    probe = (
        "import json, os, sys; code = os.environ['SIMCODER_CODE']; "
        "print(json.dumps({'code': code, 'path': os.environ['PYTHONPATH'], 'arg': sys.argv[1], "
        "'listing': os.listdir(code), 'writable': os.access(code, os.W_OK)}))"
    )
    result = sandbox.run(tmp_path / "c", tmp_path / "c", tmp_path / "o",
                         [sys.executable, "-c", probe, "/sandbox/code/sandbox/runner.py"])
    assert result.outcome is Outcome.PASSED, result.message
    seen = json.loads(result.stdout)
    repo = Path(__file__).resolve().parents[2]
    assert seen["listing"] == [] and Path(seen["code"]) != repo
    assert seen["path"] == seen["code"]
    assert seen["arg"] == seen["code"] + "/sandbox/runner.py"
    assert not Path(seen["code"]).exists(), "the empty code folder is removed after the run"
    if os.geteuid() != 0:
        assert not seen["writable"]


@pytest.mark.parametrize("program", ["python3", "python"])
def test_python_runs_the_current_interpreter_not_the_first_on_path(
    program: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in ("python3", "python"):
        (fake_bin / name).write_text("#!/bin/sh\necho fake-python\n")
        (fake_bin / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    (tmp_path / "c").mkdir()
    result = ProcessSandbox(CFG).run(
        tmp_path / "c", tmp_path / "c", tmp_path / "o", [program, "-c", "import sys; print(sys.executable)"]
    )
    assert result.outcome is Outcome.PASSED, result.message
    assert result.stdout == sys.executable + "\n"


def test_only_a_leading_python_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python3").write_text('#!/bin/sh\necho "fake-python $*"\n')
    (fake_bin / "python3").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    (tmp_path / "c").mkdir()
    result = ProcessSandbox(CFG).run(tmp_path / "c", tmp_path / "c", tmp_path / "o", ["sh", "-c", "python3 x"])
    assert result.stdout == "fake-python x\n", "arguments and programs run by the command are left alone"


def test_crashed_reports_exit_code_and_last_stderr_line(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(
        sandbox,
        tmp_path,
        """
        import sys
        print("partial")
        raise ValueError("matrix shape mismatch")
    """,
    )
    assert result.outcome is Outcome.CRASHED
    assert result.exit_code == 1
    assert result.message == "The command crashed with exit code 1: ValueError: matrix shape mismatch."
    assert "Traceback" in result.stderr and result.stdout == "partial\n"


def test_plain_nonzero_exit_is_crashed(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(sandbox, tmp_path, "import sys; sys.exit(3)")
    assert (result.outcome, result.exit_code) == (Outcome.CRASHED, 3)
    assert result.message == "The command crashed with exit code 3."


def test_signal_is_reported_as_128_plus_signal(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(sandbox, tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert (result.outcome, result.exit_code) == (Outcome.CRASHED, 139)
    assert "killed by SIGSEGV (exit 139)" in result.message


def test_timeout_kills_the_command_and_its_children(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    start = time.monotonic()
    result = _run(
        sandbox,
        tmp_path,
        """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(os.path.join(os.environ["SIMCODER_OUT"], "child.pid"), "w").write(str(child.pid))
        time.sleep(600)
    """,
        timeout_s=1.5,
    )
    assert result.outcome is Outcome.TIMED_OUT
    assert result.exit_code is None
    assert result.message.startswith("The command did not finish within the 1.5 s wall-clock limit")
    assert 1.5 <= result.duration_s < 3 and time.monotonic() - start < 5
    assert not _alive(int((tmp_path / "out" / "child.pid").read_text()))


def test_child_left_running_after_exit_is_killed(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(
        sandbox,
        tmp_path,
        """
        import os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open(os.path.join(os.environ["SIMCODER_OUT"], "child.pid"), "w").write(str(child.pid))
    """,
    )
    assert result.outcome is Outcome.PASSED, result.message
    assert result.duration_s < 5
    pid = int((tmp_path / "out" / "child.pid").read_text())
    deadline = time.monotonic() + 2.0
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid), "the kill signal was sent but the child still runs 2 s later"


def test_memory_error_under_rlimit_as_is_out_of_memory(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(sandbox, tmp_path, "blocks = [bytearray(64 << 20) for _ in range(64)]")
    assert result.outcome is Outcome.OUT_OF_MEMORY, result.message
    assert result.exit_code == 1
    assert "ran out of memory under the 512 MiB address-space limit (RLIMIT_AS)" in result.message
    assert result.message.endswith(": MemoryError.")


def test_file_bigger_than_the_output_limit_is_bad_output(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(
        sandbox,
        tmp_path,
        """
        import os
        with open(os.path.join(os.environ["SIMCODER_OUT"], "big.bin"), "wb") as f:
            f.write(b"x" * (3 << 20))
    """,
    )
    assert result.outcome is Outcome.BAD_OUTPUT, result.message
    assert "tried to write a file bigger than the 1 MiB output limit" in result.message
    assert (tmp_path / "out" / "big.bin").stat().st_size <= 1 << 20


def test_many_files_over_the_output_limit_are_bad_output(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(
        sandbox,
        tmp_path,
        """
        import os
        for i in range(4):
            with open(os.path.join(os.environ["SIMCODER_OUT"], f"part{i}.bin"), "wb") as f:
                f.write(b"x" * (512 << 10))
    """,
    )
    assert result.outcome is Outcome.BAD_OUTPUT, result.message
    assert "more than the 1 MiB output limit" in result.message


def test_endless_output_is_killed_by_the_watcher(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(
        sandbox,
        tmp_path,
        """
        import itertools, os
        for i in itertools.count():
            with open(os.path.join(os.environ["SIMCODER_OUT"], f"part{i}.bin"), "wb") as f:
                f.write(b"x" * (256 << 10))
    """,
    )
    assert result.outcome is Outcome.BAD_OUTPUT, result.message
    assert "was killed after" in result.message and result.exit_code is None
    assert result.duration_s < 5


def test_symlink_in_output_is_bad_output(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(
        sandbox,
        tmp_path,
        """
        import os
        os.symlink("/etc/passwd", os.path.join(os.environ["SIMCODER_OUT"], "result.json"))
    """,
    )
    assert result.outcome is Outcome.BAD_OUTPUT
    assert "symbolic link 'result.json'" in result.message


def test_stdout_flood_is_cut_and_said(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(
        sandbox,
        tmp_path,
        """
        import sys
        sys.stdout.write("y" * 5_000_000)
        print("LAST")
    """,
    )
    assert result.outcome is Outcome.PASSED, result.message
    assert len(result.stdout.encode()) <= CFG.stream_limit_bytes
    assert result.stdout.startswith("yyy") and result.stdout.endswith("LAST\n")
    assert "; stdout was cut to 1000 of 5000005 bytes." in result.message


def test_missing_program_is_crashed_127(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    result = sandbox.run(tmp_path / "c", tmp_path / "c", tmp_path / "o", ["/nonexistent/simcoder-binary"])
    assert (result.outcome, result.exit_code) == (Outcome.CRASHED, 127)
    assert "could not be started" in result.message


def test_bad_arguments_raise(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="timeout_s"):
        sandbox.run(tmp_path / "c", tmp_path / "c", tmp_path / "o", ["true"], timeout_s=0)
    with pytest.raises(ValueError, match="command"):
        sandbox.run(tmp_path / "c", tmp_path / "c", tmp_path / "o", "python3 main.py")
    with pytest.raises(ValueError, match="command"):
        sandbox.run(tmp_path / "c", tmp_path / "c", tmp_path / "o", [])
    with pytest.raises(NotADirectoryError, match="candidate_dir"):
        sandbox.run(tmp_path / "missing", tmp_path / "c", tmp_path / "o", ["true"])


def test_rlimits_are_applied_in_the_child(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    result = _run(
        sandbox,
        tmp_path,
        """
        import resource
        print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_FSIZE)[0],
              resource.getrlimit(resource.RLIMIT_CORE)[0], resource.getrlimit(resource.RLIMIT_CPU)[0])
    """,
    )
    memory, fsize, core, cpu = map(int, result.stdout.split())
    assert (memory, fsize, core) == (512 << 20, 1 << 20, 0)
    assert cpu == 11


def test_nproc_is_set_only_where_the_kernel_enforces_it(
    sandbox: ProcessSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox import process_sandbox

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert resource.RLIMIT_NPROC not in [which for which, _, _ in sandbox._limits(5)]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(process_sandbox, "_tasks_of_user", lambda uid: 300)
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    wanted = 300 + CFG.pids_limit
    expected = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    assert [soft for which, soft, _ in sandbox._limits(5) if which == resource.RLIMIT_NPROC] == [expected]


def test_tasks_of_user_counts_this_process() -> None:
    from sandbox.process_sandbox import _tasks_of_user

    assert _tasks_of_user(os.getuid()) >= 1
