"""Written features through the real Docker sandbox and the feature harness (numpy 1.24 inside the image).

A small energy-like feature gives the in-process result; a hanging one is cut at the timeout; one that
gets past the static check and reaches for the host's files or network fails inside.  Needs the image
from ``bash .ci/provision-docker.sh``; fails instead of skipping when ``SIMCODER_CI=1``.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from judge import executors
from judge.feature_jobs import FeatureCase, feature_static_problem, run_feature_cases
from judge.harness import feature_format
from judge.reference_runs import reference_code
from reference_sim.contract import Hardware, Layer
from reference_sim.engine import simulate
from sandbox import Sandbox
from tests.helpers import assert_same_layer_results, docker_sandbox

pytestmark = pytest.mark.integration

PREFIX = f"simcoder-sbx-feat-{uuid.uuid4().hex[:6]}-"
MODULES = {role: reference_code(role) for role in feature_format.ROLES}
LAYERS = (Layer("conv3x3", 7, 6, 3, 3, 2, 3, 1, 1), Layer("gemm", 5, 6, 1, 6, 1, 4, 1, 1))
CASES = [FeatureCase("os", LAYERS, Hardware(4, 4, "os", 64, 64, 64), {"pj_per_cycle": 0.5}, True),
         FeatureCase("ws", LAYERS, Hardware(4, 8, "ws", 1, 1, 1, bandwidth_mode="USER", dram_words_per_cycle=1),
                     {"pj_per_cycle": 2.0}, False)]

ENERGY = '''
from .engine import simulate
from .feature_api import FeatureRun


def run(layers, hardware, params, *, traces=False):
    results = simulate(layers, hardware, traces=traces)
    rows = [{"layer_id": float(r.index), "pj": r.total_cycles * params["pj_per_cycle"]} for r in results]
    return FeatureRun(results, {"ENERGY_REPORT.csv": rows})
'''


@pytest.fixture(scope="module")
def docker() -> Iterator[Sandbox]:
    sandbox = docker_sandbox(PREFIX, timeout_s=120)
    yield sandbox
    from sandbox.docker_sandbox import connect

    left = connect().containers.list(all=True, filters={"name": PREFIX})
    assert not left, f"containers left behind: {[c.name for c in left]}"


def _executor(docker: Sandbox, tmp_path: Path, timeout_s: float = 120) -> executors.SandboxFeatureExecutor:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return executors.SandboxFeatureExecutor(docker, timeout_s=timeout_s, workdir=work)


def test_a_feature_in_the_sandbox_equals_its_in_process_run(docker: Sandbox, tmp_path: Path) -> None:
    sandboxed = run_feature_cases(_executor(docker, tmp_path), MODULES, ENERGY, CASES)
    in_process = run_feature_cases(executors.InProcessFeatureExecutor(), MODULES, ENERGY, CASES)
    assert [r.error for r in sandboxed] == [None, None]
    for got, want, case in zip(sandboxed, in_process, CASES):
        assert got.tables == want.tables and want.results is not None
        assert_same_layer_results(want.results, got.results)
        assert_same_layer_results(simulate(case.layers, case.hardware, traces=case.traces), got.results)
    assert list((tmp_path / "work").iterdir()) == [], "the executor left its run folders behind"


def test_a_hanging_feature_is_cut_at_the_timeout(docker: Sandbox, tmp_path: Path) -> None:
    code = ENERGY.replace("    results = simulate(", "    while True:\n        pass\n    results = simulate(")
    start = time.monotonic()
    runs = run_feature_cases(_executor(docker, tmp_path, timeout_s=5), MODULES, code, CASES)
    assert [r.error for r in runs] == ["the feature's run timed out after 5 s"] * 2
    assert time.monotonic() - start < 60


@pytest.fixture()
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on the host's 127.0.0.1 that records whatever reaches it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                received.append(connection.recv(1024) or b"<connected>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_a_feature_reaching_for_the_hosts_files_or_network_fails_inside(
        docker: Sandbox, tmp_path: Path, listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    secret = tmp_path / "host-secret.txt"
    secret.write_text("the host's secret\n")
    code = ENERGY.replace("from .engine import simulate", "import numpy\nfrom .engine import simulate").replace(
        "    results = simulate(", f"    if params['pj_per_cycle'] < 1:\n"
        f"        getattr(numpy, 'fromfile')({str(secret)!r}, dtype='uint8')\n"
        f"    else:\n"
        f"        getattr(getattr(numpy, 'DataSource')(), 'op' + 'en')('http://127.0.0.1:{port}/')\n"
        f"    results = simulate(")
    assert feature_static_problem(code) is None, "the static check alone must not catch this"
    reads, connects = run_feature_cases(_executor(docker, tmp_path), MODULES, code, CASES)
    assert reads.results is None and reads.error is not None
    assert "FileNotFoundError" in reads.error or "refused by the verifier" in reads.error, reads.error
    assert connects.results is None and connects.error is not None, "the connection did not fail"
    assert received == [], "a connection from the sandbox reached the host"
