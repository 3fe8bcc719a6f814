"""Shared sandbox pieces: bounded stream capture, output-folder checks, outcome classification."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import Outcome, SandboxConfig
from sandbox._common import RunFacts, StreamCapture, classify, scan_output, sentence, stream_notes

CFG = SandboxConfig(memory_mib=128, output_limit_mib=1, max_output_files=5)
MIB = 1024 * 1024


def test_capture_under_the_limit_is_kept_whole() -> None:
    cap = StreamCapture(100)
    cap.feed(b"hello ")
    cap.feed("wörld\n".encode())
    assert cap.render() == ("hello wörld\n", 0)
    assert cap.total_bytes == len("hello wörld\n".encode())


def test_capture_exactly_at_the_limit_is_not_cut() -> None:
    cap = StreamCapture(256)
    cap.feed(b"x" * 256)
    assert cap.render() == ("x" * 256, 0)


@pytest.mark.parametrize("chunk", [1, 7, 1000, 10**6])
def test_capture_over_the_limit_keeps_head_and_tail_within_bound(chunk: int) -> None:
    data = b"HEAD" + b"m" * 1_000_000 + b"TAIL"
    cap = StreamCapture(1000)
    for i in range(0, len(data), chunk):
        cap.feed(data[i : i + chunk])
    text, cut = cap.render()
    assert len(text.encode()) <= 1000
    assert text.startswith("HEAD") and text.endswith("TAIL")
    assert f"[... {cut} bytes cut by the sandbox ...]" in text
    kept = len(text.encode()) - len(f"\n[... {cut} bytes cut by the sandbox ...]\n")
    assert cut == len(data) - kept
    assert len(cap._head) + len(cap._tail) <= 3 * 1000, "capture memory is not bounded"


def test_capture_cut_inside_a_multibyte_character_stays_decodable() -> None:
    cap = StreamCapture(300)
    cap.feed("é".encode() * 5000)
    text, cut = cap.render()
    assert cut > 0 and "é" in text


def test_stream_notes_and_sentence() -> None:
    notes = stream_notes([("stdout", 100, 5000), ("stderr", 100, 50)])
    assert notes == ["stdout was cut to 100 of 5000 bytes"]
    assert (
        sentence("The command exited 0.", notes)
        == "The command exited 0; stdout was cut to 100 of 5000 bytes."
    )
    assert sentence("Fine", []) == "Fine."


def test_scan_lists_regular_files_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("aa")
    scan = scan_output(tmp_path, CFG.output_limit_bytes, CFG.max_output_files)
    assert scan.problem is None
    assert scan.files == ("b.txt", "sub/a.txt")
    assert scan.total_bytes == 3


def _setuid_file(folder: Path) -> None:
    (folder / "s").write_text("")
    os.chmod(folder / "s", 0o4755)


def _six_files(folder: Path) -> None:
    for i in range(6):
        (folder / f"f{i}").write_text("")


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: os.symlink("/etc/passwd", d / "result.json"), "symbolic link 'result.json'"),
        (lambda d: os.mkfifo(d / "pipe"), "special file 'pipe'"),
        (lambda d: (d / "big").write_bytes(b"x" * (MIB + 1)), "more than the 1 MiB output limit"),
        (_six_files, "more than 5 entries"),
        (_setuid_file, "set-user/group-id bit"),
    ],
)
def test_scan_rejects(tmp_path: Path, make: Callable[[Path], object], problem: str) -> None:
    make(tmp_path)
    scan = scan_output(tmp_path, CFG.output_limit_bytes, CFG.max_output_files)
    assert scan.problem is not None and problem in scan.problem


def test_scan_size_only_ignores_links(tmp_path: Path) -> None:
    os.symlink("/etc/passwd", tmp_path / "link")
    assert scan_output(tmp_path, MIB, 5, size_only=True).problem is None


def _facts(**kw: object) -> RunFacts:
    base: dict[str, object] = dict(
        exit_code=0,
        timed_out=False,
        timeout_s=5.0,
        duration_s=1.25,
        output_violation=None,
        oom_killed=False,
        stderr="",
        memory_mechanism="cgroup memory limit",
    )
    base.update(kw)
    return RunFacts(**base)  # type: ignore[arg-type]


def _classify(tmp_path: Path, **kw: object) -> tuple[Outcome, str]:
    return classify(_facts(**kw), scan_output(tmp_path, CFG.output_limit_bytes, 5), CFG)


def test_classify_passed(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("{}")
    assert _classify(tmp_path) == (Outcome.PASSED, "The command exited 0 in 1.25 s with 1 output file")


@pytest.mark.parametrize(
    ("kw", "outcome", "words"),
    [
        (
            dict(timed_out=True, exit_code=137, oom_killed=True),
            Outcome.TIMED_OUT,
            "within the 5 s wall-clock limit",
        ),
        (
            dict(output_violation="it holds more than the 1 MiB output limit", exit_code=137),
            Outcome.BAD_OUTPUT,
            "output folder grew too big",
        ),
        (
            dict(oom_killed=True, exit_code=137),
            Outcome.OUT_OF_MEMORY,
            "killed it at the 128 MiB cgroup memory limit",
        ),
        (dict(oom_killed=True, exit_code=0), Outcome.OUT_OF_MEMORY, "ran out of memory"),
        (dict(exit_code=137), Outcome.OUT_OF_MEMORY, "SIGKILL (exit 137) before the timeout"),
        (
            dict(exit_code=1, stderr="Traceback...\nMemoryError\n"),
            Outcome.OUT_OF_MEMORY,
            "exited 1: MemoryError",
        ),
        (
            dict(exit_code=1, stderr="numpy.core._exceptions._ArrayMemoryError: Unable to allocate 8 GiB\n"),
            Outcome.OUT_OF_MEMORY,
            "_ArrayMemoryError",
        ),
        (
            dict(exit_code=1, stderr="OSError: [Errno 27] File too large\n"),
            Outcome.BAD_OUTPUT,
            "bigger than the 1 MiB output limit",
        ),
        (dict(exit_code=128 + signal.SIGXFSZ), Outcome.BAD_OUTPUT, "bigger than the 1 MiB output limit"),
        (
            dict(exit_code=1, stderr="OSError: [Errno 28] No space left on device\n"),
            Outcome.BAD_OUTPUT,
            "wrote more than the 1 MiB output limit",
        ),
        (
            dict(exit_code=139, stderr="Fatal Python error: Segmentation fault\n"),
            Outcome.CRASHED,
            "killed by SIGSEGV (exit 139): Fatal Python error",
        ),
        (
            dict(exit_code=2, stderr="x\nValueError: bad shape\n\n"),
            Outcome.CRASHED,
            "crashed with exit code 2: ValueError: bad shape",
        ),
        (dict(exit_code=3), Outcome.CRASHED, "crashed with exit code 3"),
    ],
)
def test_classify_precedence(tmp_path: Path, kw: dict[str, object], outcome: Outcome, words: str) -> None:
    got, message = _classify(tmp_path, **kw)
    assert got is outcome, message
    assert words in message


def test_classify_bad_output_after_clean_exit(tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "etc")
    outcome, message = _classify(tmp_path)
    assert outcome is Outcome.BAD_OUTPUT
    assert (
        message
        == "The output folder is not acceptable: it contains a symbolic link 'etc' (links are not allowed)"
    )


def test_classify_shortens_a_long_last_line(tmp_path: Path) -> None:
    _, message = _classify(tmp_path, exit_code=1, stderr="E" * 1000)
    assert len(message) < 300 and message.endswith("...")
