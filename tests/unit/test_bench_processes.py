"""The benchmarks' child processes: exit code, peak RSS, stdout file, timeout, and no child left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from taskbench.processes import run_process

REPO_ROOT = Path(__file__).resolve().parents[2]
SPAWNS_A_GRANDCHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "open(sys.argv[1], 'w').write(str(child.pid))\n"
    "time.sleep(60)\n"
)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_for_text(path: Path, seconds: float = 20.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {seconds} s")


def gone_soon(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_run_process_reports_exit_code_and_peak_rss() -> None:
    run = run_process([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
    assert run.returncode == 3 and not run.timed_out
    assert run.stderr == run.stderr_tail == "boom"
    assert run.max_rss_kib > 1024


def test_run_process_writes_stdout_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    run = run_process([sys.executable, "-c", "print('Running Layer 0')"], stdout=out)
    assert run.returncode == 0 and out.read_text() == "Running Layer 0\n"


def test_the_timeout_kills_the_child_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    run = run_process([sys.executable, "-c", SPAWNS_A_GRANDCHILD, str(pid_file)], timeout=2.0)
    assert run.timed_out and run.seconds < 15
    assert gone_soon(int(wait_for_text(pid_file))), "the grandchild outlived the timeout"
    assert not run_process([sys.executable, "-c", "pass"], timeout=30).timed_out


def test_a_terminated_benchmark_leaves_no_child_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    driver = (
        "import sys\n"
        "from taskbench.processes import run_process, stop_children_on_sigterm\n"
        "stop_children_on_sigterm()\n"
        f"run_process([sys.executable, '-c', {SPAWNS_A_GRANDCHILD!r}, {str(pid_file)!r}])\n"
    )
    bench = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO_ROOT)
    try:
        grandchild = int(wait_for_text(pid_file))
        os.kill(bench.pid, signal.SIGTERM)
        assert bench.wait(timeout=20) == 128 + signal.SIGTERM
        assert gone_soon(grandchild), "SCALE-Sim-like children outlived the benchmark"
    finally:
        bench.kill()
        bench.wait()
