"""Executors: how a harness job runs over a candidate, and how its output is read back.

:class:`InProcessExecutor` runs the harness's own code in this process (unit tests, trusted code
only).  :class:`SandboxExecutor` stages the job, its arrays, the harness (:mod:`judge.harness`) and
the contract as the sandbox's inputs (nothing else of the reference enters) and runs the harness
there, one sandbox run per job.  :class:`Sandboxes` shares one sandbox among callers and caps how
many runs happen at once.

A written feature runs the same way with the feature harness (:mod:`judge.harness.feature_harness`):
:class:`InProcessFeatureExecutor` and :class:`SandboxFeatureExecutor` take the package's files (see
:mod:`judge.feature_jobs`) and a feature job, and write the package as the candidate folder of one run.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from judge.harness import feature_format, feature_harness, harness
from reference_sim import contract as reference_contract
from reference_sim.errors import SimCoderError
from sandbox.base import INPUTS_MOUNT, Outcome, RunResult, Sandbox

HARNESS_SOURCES = Path(harness.__file__).resolve().parent
SHIPPED_CONTRACT = (Path(reference_contract.__file__).resolve(),
                    Path(reference_contract.__file__).resolve().with_name("errors.py"))
BOOT_FILE = "boot.py"
BOOT_SOURCE = (
    "import sys\n"
    "from pathlib import Path\n"
    "sys.path.insert(0, str(Path(__file__).resolve().parent))\n"
    f"from {harness.HARNESS_PACKAGE}.harness import main\n"
    "raise SystemExit(main())\n"
)
HARNESS_COMMAND = ("python3", "-I", f"{INPUTS_MOUNT}/{BOOT_FILE}")
MANIFEST_LIMIT_BYTES = 8 * 1024 * 1024
TAIL_CHARS = 2000
FEATURE_TIMEOUT_S = 120.0
"""How long one feature job may run in the sandbox by default."""
PACKAGE_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.py")
IN_PROCESS_LOCK = threading.Lock()
"""Serialises in-process runs: a folder candidate is imported under one package name in ``sys.modules``."""


class BadOutputError(SimCoderError, ValueError):
    """The harness's output (manifest, arrays) is missing or malformed."""


@dataclass
class Execution:
    """How one job's run ended, its manifest, and a loader for each task's output arrays."""

    outcome: Outcome
    message: str
    seconds: float
    manifest: dict[str, Any] | None = None
    arrays: Callable[[int], Mapping[str, np.ndarray]] | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    cleanup: Callable[[], None] | None = None

    def close(self) -> None:
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None


class Executor(Protocol):
    """Runs a harness job over the candidate; ``candidate_dir`` is checked statically first (``None``: objects)."""

    @property
    def candidate_dir(self) -> Path | None: ...

    def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution: ...


class InProcessExecutor:
    """Runs jobs in this process with the harness's own code: modules given as objects, or a folder.

    No isolation and no run-time guard: for tests and trusted code only.  Runs are serialised (a
    folder candidate is imported under one package name in ``sys.modules``).
    """

    _lock = IN_PROCESS_LOCK

    def __init__(self, candidate: Mapping[str, Any] | Path) -> None:
        self._folder = candidate if isinstance(candidate, Path) else None
        self._modules = None if isinstance(candidate, Path) else dict(candidate)

    @property
    def candidate_dir(self) -> Path | None:
        return self._folder

    def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution:
        with self._lock:
            return self._run(job, arrays)

    def _run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution:
        start = time.perf_counter()
        candidate = harness.Candidate(self._folder, modules=self._modules, contract=reference_contract,
                                      shipped=SHIPPED_CONTRACT[0].parent)
        results: dict[int, dict[str, np.ndarray]] = {}

        def keep(index: int, result: harness.TaskResult) -> None:
            results[index] = result.arrays

        tasks = harness.run_tasks({**job, "workers": 1}, arrays, candidate, keep)
        manifest = harness.manifest(tasks, candidate, time.perf_counter() - start)
        return Execution(Outcome.PASSED, "ran in-process", time.perf_counter() - start, manifest,
                         lambda i: results.get(i, {}))


def boot_source(module: str = "harness") -> str:
    """The sandbox's entry script: runs ``main()`` of the shipped harness module ``module``."""
    package = harness.HARNESS_PACKAGE
    return BOOT_SOURCE.replace(f"{package}.harness import", f"{package}.{module} import")


def stage_inputs(inputs: Path, job: dict[str, Any], arrays: dict[str, np.ndarray], *,
                 job_file: str = harness.JOB_FILE, program: str = "harness") -> None:
    """Write what the sandbox gets besides the candidate: the job, its arrays, the harness and the contract.

    ``program`` is the shipped module whose ``main()`` the boot script runs (the harness, or the probe runner).
    """
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / job_file).write_text(json.dumps(job))
    np.savez(inputs / harness.INPUT_ARRAYS_FILE, **arrays)  # type: ignore[arg-type]
    package = inputs / harness.HARNESS_PACKAGE
    package.mkdir()
    for source in (*sorted(HARNESS_SOURCES.glob("*.py")), *SHIPPED_CONTRACT):
        shutil.copyfile(source, package / source.name)
    (inputs / BOOT_FILE).write_text(boot_source(program))


def run_staged(sandbox: Sandbox, candidate_dir: Path, job: dict[str, Any], arrays: dict[str, np.ndarray], *,
               timeout_s: float | None, workdir: Path | None, job_file: str = harness.JOB_FILE,
               program: str = "harness") -> tuple[RunResult, Path, Callable[[], None]]:
    """One sandbox run of a program of ours (``program``, see :func:`stage_inputs`) over the candidate:
    the run's result, its output folder and the cleanup that removes both staging folders."""
    base = Path(tempfile.mkdtemp(prefix="simcoder-verify-", dir=workdir))
    inputs, out = base / "inputs", base / "out"

    def cleanup() -> None:
        shutil.rmtree(base, ignore_errors=True)

    try:
        stage_inputs(inputs, job, arrays, job_file=job_file, program=program)
        result = sandbox.run(candidate_dir, inputs, out, list(HARNESS_COMMAND), timeout_s=timeout_s)
    except BaseException:
        cleanup()
        raise
    return result, out, cleanup


class SandboxExecutor:
    """Runs each job in one sandbox run: the harness over the candidate folder."""

    def __init__(self, sandbox: Sandbox, candidate_dir: Path, *, timeout_s: float | None = None,
                 workdir: Path | None = None, workers: int | None = None) -> None:
        self.sandbox = sandbox
        self._candidate_dir = candidate_dir
        self.timeout_s = timeout_s
        self.workdir = workdir
        config = getattr(sandbox, "config", None)
        cpus = getattr(config, "cpus", 1.0)
        self.workers = workers if workers is not None else max(1, math.floor(cpus))
        """Processes the harness forks to share the tasks (default: the sandbox's whole CPUs)."""

    @property
    def candidate_dir(self) -> Path | None:
        return self._candidate_dir

    def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution:
        start = time.perf_counter()
        result, out, cleanup = run_staged(self.sandbox, self._candidate_dir, {**job, "workers": self.workers}, arrays,
                                          timeout_s=self.timeout_s, workdir=self.workdir)
        tails: dict[str, Any] = {"stdout_tail": result.stdout[-TAIL_CHARS:], "stderr_tail": result.stderr[-TAIL_CHARS:]}
        if not result.passed:
            return Execution(result.outcome, result.message, time.perf_counter() - start, cleanup=cleanup, **tails)
        try:
            manifest = read_manifest(out, len(job["tasks"]))
        except BadOutputError as exc:
            return Execution(Outcome.BAD_OUTPUT, f"The harness's output is not acceptable: {exc}",
                             time.perf_counter() - start, cleanup=cleanup, **tails)
        return Execution(Outcome.PASSED, result.message, time.perf_counter() - start, manifest,
                         lambda i: read_task_arrays(out, i), cleanup=cleanup, **tails)


def read_document(out: Path, name: str, document_format: str, limit_bytes: int) -> dict[str, Any]:
    """The JSON document ``name`` a program of ours wrote in ``out``, checked for size and format; raises
    :class:`BadOutputError`."""
    path = out / name
    try:
        size = path.stat().st_size
    except OSError:
        raise BadOutputError(f"{name} is missing") from None
    if size > limit_bytes:
        raise BadOutputError(f"{name} is {size} bytes (limit {limit_bytes})")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadOutputError(f"{name} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != document_format:
        raise BadOutputError(f"{name} is not a {document_format} document")
    return document


def read_manifest(out: Path, tasks: int) -> dict[str, Any]:
    """The harness's manifest, checked for size and shape; raises :class:`BadOutputError`."""
    manifest = read_document(out, harness.MANIFEST_FILE, harness.RESULTS_FORMAT, MANIFEST_LIMIT_BYTES)
    entries = manifest.get("tasks")
    if not isinstance(entries, list) or len(entries) != tasks or not all(
            isinstance(e, dict) and isinstance(e.get("status"), str) and isinstance(e.get("layers"), list)
            for e in entries):
        raise BadOutputError(f"{harness.MANIFEST_FILE} does not list the job's {tasks} tasks")
    return manifest


def read_task_arrays(out: Path, index: int) -> dict[str, np.ndarray]:
    """Task ``index``'s output arrays (none when it wrote no file); raises :class:`BadOutputError`."""
    return read_arrays(out / harness.task_arrays_file(index))


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one ``.npz`` a program of ours wrote (none when there is no file); raises
    :class:`BadOutputError`."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise BadOutputError(f"{path.name} is unreadable ({type(exc).__name__})") from None


class Sandboxes:
    """Where candidates run: one sandbox (made on first use) and a cap on concurrent runs."""

    def __init__(self, factory: Callable[[], Sandbox], max_concurrent: int, *, timeout_s: float | None = None,
                 workdir: Path | None = None) -> None:
        self._factory = factory
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent))
        self.timeout_s = timeout_s
        self.workdir = workdir

    @property
    def sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = self._factory()
            return self._sandbox

    def executor(self, folder: Path) -> Executor:
        """An executor over ``folder`` whose runs wait for a free slot."""
        return _SlotExecutor(SandboxExecutor(self.sandbox, folder, timeout_s=self.timeout_s,
                                             workdir=self.workdir), self._slots)

    def feature_executor(self, timeout_s: float = FEATURE_TIMEOUT_S) -> FeatureExecutor:
        """An executor of written features whose runs wait for a free slot (the same slots as :meth:`executor`'s)."""
        return _SlotFeatureExecutor(SandboxFeatureExecutor(self.sandbox, timeout_s=timeout_s, workdir=self.workdir),
                                    self._slots)


class _SlotExecutor:
    def __init__(self, inner: SandboxExecutor, slots: threading.BoundedSemaphore) -> None:
        self._inner = inner
        self._slots = slots

    @property
    def candidate_dir(self) -> Path | None:
        return self._inner.candidate_dir

    def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution:
        with self._slots:
            return self._inner.run(job, arrays)


ExecutorFactory = Callable[[Path], Executor]


class FeatureExecutor(Protocol):
    """Runs a feature job (:mod:`judge.harness.feature_format`) over a package given as files (name -> text)."""

    def run(self, files: Mapping[str, str], job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution: ...


def write_package(folder: Path, files: Mapping[str, str]) -> Path:
    """``folder`` (created) holding ``files``, each named like a module (``feature.py``); raises ``ValueError``."""
    for name in files:
        if not PACKAGE_FILE.fullmatch(name):
            raise ValueError(f"package file name {name[:60]!r} is not a module's file name (name.py)")
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


class InProcessFeatureExecutor:
    """Runs feature jobs in this process with the feature harness's own code, over the package written to a
    temporary folder.  No isolation and no run-time guard: for tests and trusted code only."""

    def run(self, files: Mapping[str, str], job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution:
        with IN_PROCESS_LOCK, tempfile.TemporaryDirectory(prefix="simcoder-feature-") as base:
            start = time.perf_counter()
            folder = write_package(Path(base) / "candidate", files)
            kept: dict[int, dict[str, np.ndarray]] = {}

            def keep(index: int, output: feature_harness.CaseOutput) -> None:
                kept[index] = output.arrays

            try:
                cases = feature_harness.run_cases(feature_format.validate_job(job), arrays,
                                                  harness.Candidate(folder), keep)
            finally:
                _forget_package(folder)
            seconds = time.perf_counter() - start
            manifest = json.loads(json.dumps(feature_harness.manifest(cases, seconds)))
        return Execution(Outcome.PASSED, "ran in-process", seconds, manifest, lambda i: kept.get(i, {}))


def _forget_package(folder: Path) -> None:
    """Drop an in-process candidate package from ``sys.modules`` and its folder from ``sys.path``."""
    package = harness.CANDIDATE_PACKAGE
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
    while str(folder) in sys.path:
        sys.path.remove(str(folder))


class SandboxFeatureExecutor:
    """Runs each feature job in one sandbox run: the feature harness over the package, cut at ``timeout_s``."""

    def __init__(self, sandbox: Sandbox, *, timeout_s: float = FEATURE_TIMEOUT_S, workdir: Path | None = None) -> None:
        self.sandbox = sandbox
        self.timeout_s = timeout_s
        self.workdir = workdir

    def run(self, files: Mapping[str, str], job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution:
        start = time.perf_counter()
        base = Path(tempfile.mkdtemp(prefix="simcoder-feature-", dir=self.workdir))
        try:
            folder = write_package(base / "candidate", files)
            result, out, staged_cleanup = run_staged(
                self.sandbox, folder, job, arrays, timeout_s=self.timeout_s, workdir=self.workdir,
                job_file=feature_format.JOB_FILE, program=feature_format.PROGRAM)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise

        def cleanup() -> None:
            staged_cleanup()
            shutil.rmtree(base, ignore_errors=True)

        tails: dict[str, Any] = {"stdout_tail": result.stdout[-TAIL_CHARS:], "stderr_tail": result.stderr[-TAIL_CHARS:],
                                 "cleanup": cleanup}
        if not result.passed:
            message = (f"the feature's run timed out after {self.timeout_s:g} s" if result.outcome is Outcome.TIMED_OUT
                       else f"the feature's run failed ({result.outcome.value}): {result.message}")
            return Execution(result.outcome, message, time.perf_counter() - start, **tails)
        try:
            manifest = read_document(out, feature_format.MANIFEST_FILE, feature_format.RESULTS_FORMAT,
                                     feature_format.MANIFEST_LIMIT_BYTES)
        except BadOutputError as exc:
            return Execution(Outcome.BAD_OUTPUT, f"the feature harness's output is not acceptable: {exc}",
                             time.perf_counter() - start, **tails)
        return Execution(Outcome.PASSED, result.message, time.perf_counter() - start, manifest,
                         lambda i: read_arrays(out / feature_format.case_arrays_file(i)), **tails)


class _SlotFeatureExecutor:
    def __init__(self, inner: SandboxFeatureExecutor, slots: threading.BoundedSemaphore) -> None:
        self._inner = inner
        self._slots = slots

    def run(self, files: Mapping[str, str], job: dict[str, Any], arrays: dict[str, np.ndarray]) -> Execution:
        with self._slots:
            return self._inner.run(files, job, arrays)
