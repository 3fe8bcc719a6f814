"""The harness: the one program of ours that runs inside the sandbox, next to the candidate.

It loads the candidate folder as the package ``simcoder_candidate`` (the contract and its errors are
provided when the candidate carries no copy), reads the job, runs each task (one stage, or a stretch
of the pipeline, over every layer of a workload) and writes each stage's output in the wire format
(:mod:`wire`).  It computes nothing itself and holds nothing of the reference: the inputs are layers,
hardware and, for per-stage tasks, the reference's output of the previous stages; expected results
never enter the sandbox.  While candidate code runs, an import hook applies :mod:`rules` and an
audit hook refuses file, process, frame and garbage-collector access; every refusal is reported.  The
entry point ends the process with ``os._exit`` once the results are written, so no exit hook or
finaliser of the candidate runs after the guard (:func:`ends_process`).

Job (``job.json``, format :data:`JOB_FORMAT`, arrays in ``inputs.npz``)::

    {"format": ..., "workers": 2, "tasks": [{"id": "...", "start": "mapping", "stop": "memory",
      "traces": true, "hardware": {...}, "layers": [{"layer": {...}, "mapping": {...}|null,
      "schedule": {...}|null}, ...]}]}

Results (``manifest.json``, format :data:`RESULTS_FORMAT`; task ``i``'s arrays in ``task<i>.npz``):
every task's status, its layers' outputs per stage (``mapping``, ``schedule``, ``memory``), a fault
(module, stage ``import``/``call``/``result``, message, traceback tail) and the refusals.

Standard library, numpy, :mod:`wire` and :mod:`rules` only; importable on the host for in-process runs.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, NoReturn, ParamSpec, TypeVar

import numpy as np

from . import rules, wire

logger = logging.getLogger(__name__)

JOB_FORMAT = "simcoder-job/2"
RESULTS_FORMAT = "simcoder-results/2"
JOB_FILE = "job.json"
INPUT_ARRAYS_FILE = "inputs.npz"
MANIFEST_FILE = "manifest.json"
HARNESS_PACKAGE = "simcoder_harness"
CANDIDATE_PACKAGE = "simcoder_candidate"
STAGES: tuple[str, ...] = ("mapping", "network", "memory")
FUNCTIONS = {"mapping": "map_layer", "network": "schedule", "memory": "simulate"}
OUTPUT_KEYS = {"mapping": "mapping", "network": "schedule", "memory": "memory"}
TRACEBACK_CHARS = 1500


P = ParamSpec("P")
J = TypeVar("J")


def task_arrays_file(index: int) -> str:
    """The file holding task ``index``'s output arrays."""
    return f"task{index}.npz"


class JobError(ValueError):
    """The job is malformed (the verifier is at fault, not the candidate)."""


class ForbiddenError(ImportError):
    """Candidate code tried something the rules refuse (raised into the candidate, and reported)."""


@dataclass
class ModuleFault(Exception):  # noqa: N818 (the candidate's fault, not an error of ours)
    """A module failed: ``stage`` is ``import``, ``call`` (it raised) or ``result`` (it returned the wrong thing)."""

    module: str
    stage: str
    message: str
    traceback: str = ""
    error_type: str = ""

    def __str__(self) -> str:
        return f"{self.module} {self.stage}: {self.message}"

    def as_dict(self, layer: int | None = None) -> dict[str, Any]:
        return {"module": self.module, "stage": self.stage, "layer": layer, "type": self.error_type,
                "message": self.message[:500], "traceback": self.traceback}


def _tail(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text if len(text) <= TRACEBACK_CHARS else "..." + text[-(TRACEBACK_CHARS - 3):]


def _fault(module: str, stage: str, exc: BaseException) -> ModuleFault:
    return ModuleFault(module, stage, f"{type(exc).__name__}: {exc}", _tail(exc), type(exc).__name__)


# --------------------------------------------------------------------------- guards


class Guard:
    """Refuses, while :attr:`active`, what the rules forbid to candidate code; remembers every refusal."""

    AUDIT_REFUSED = ("os.listdir", "os.scandir", "os.chdir", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
                     "os.symlink", "os.link", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                     "os.forkpty", "os.kill", "subprocess.Popen", "gc.get_objects", "gc.get_referrers",
                     "gc.get_referents", "sys._current_frames", "sys.setprofile", "sys.settrace",
                     "socket.connect", "socket.bind", "socket.getaddrinfo", "ctypes.dlopen", "ctypes.dlsym",
                     "glob.glob", "shutil.copyfile", "shutil.rmtree", "pty.spawn", "os.chmod", "os.chown",
                     "os.utime", "os.truncate", "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr",
                     "os.putenv", "os.unsetenv")
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    """``os.open`` flags that write or create."""

    def __init__(self, own_modules: frozenset[str], protected: tuple[Path, ...],
                 allowed: frozenset[str] = rules.ALLOWED_STDLIB) -> None:
        self.own = own_modules
        self.allowed = allowed
        self.protected = tuple(str(p.resolve()) for p in protected)
        self.active = False
        self.refusals: list[str] = []
        self._original_import = builtins.__import__

    def install(self) -> None:
        """Replace ``__import__`` and add the audit hook (for the rest of this process)."""
        builtins.__import__ = self._import
        sys.addaudithook(self._audit)

    @contextmanager
    def on(self) -> Iterator[None]:
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def take(self) -> list[str]:
        found, self.refusals = self.refusals, []
        return found

    def _refuse(self, what: str) -> ForbiddenError:
        self.refusals.append(what)
        return ForbiddenError(f"refused by the verifier: {what}")

    def _import(self, name: str, globals: Mapping[str, Any] | None = None, locals: Any = None,
                fromlist: Any = (), level: int = 0) -> Any:
        if self.active:
            importer = str(globals.get("__name__", "")) if globals is not None else CANDIDATE_PACKAGE
            own_code = importer == CANDIDATE_PACKAGE or importer.startswith(CANDIDATE_PACKAGE + ".") or (
                importer in self.own and importer not in rules.STDLIB)
            if own_code:
                why = rules.import_refusal(name, level, self.own, self.allowed)
                if why is None:
                    bad = [n for n in (fromlist or ()) if n in rules.DENIED_ATTRIBUTES or n in rules.DENIED_NAMES]
                    why = f"importing {', '.join(bad)}" if bad else None
                if why is not None:
                    self.active = False
                    try:
                        raise self._refuse(f"import {'.' * level}{name} from {importer} ({why})")
                    finally:
                        self.active = True
            if not own_code or (level == 0 and name.partition(".")[0] not in self.own):
                self.active = False
                try:
                    return self._original_import(name, globals, locals, fromlist, level)
                finally:
                    self.active = True
        return self._original_import(name, globals, locals, fromlist, level)

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        refused = event.startswith(self.AUDIT_REFUSED)
        if event == "open" and args:
            path, mode = args[0], args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & self.WRITE_FLAGS)
            if isinstance(path, int):
                refused = writes
            else:
                text = os.fsdecode(path)
                resolved = os.path.realpath(text) if text else text
                refused = writes or any(
                    resolved == root or resolved.startswith(root + os.sep) for root in self.protected)
        if refused and event in ("open", "os.listdir") and _in_import_system():
            return
        if refused:
            self.active = False
            try:
                raise self._refuse(f"{event}{' ' + repr(args[0])[:120] if args else ''}")
            finally:
                self.active = True


def _in_import_system() -> bool:
    """Whether the audited call comes straight from the import system (which lists and reads module folders)."""
    frame: FrameType | None = sys._getframe(2)
    return frame is not None and frame.f_code.co_filename.startswith("<frozen importlib")


class _NoGuard:
    """The in-process stand-in: no isolation (trusted code only)."""

    active = False

    @contextmanager
    def on(self) -> Iterator[None]:
        yield

    def take(self) -> list[str]:
        return []


# --------------------------------------------------------------------------- the candidate


class Candidate:
    """The candidate's modules, imported lazily from a folder (or given as objects); import faults kept."""

    def __init__(self, folder: Path | None = None, *, modules: Mapping[str, Any] | None = None,
                 contract: ModuleType | None = None, shipped: Path | None = None,
                 guard: Guard | _NoGuard | None = None) -> None:
        self.folder = folder
        self.guard: Guard | _NoGuard = guard if guard is not None else _NoGuard()
        self._given = dict(modules or {})
        self._found: dict[str, Any] = {}
        self._contract = contract
        self._shipped = shipped
        self._package: ModuleType | None = None

    def _load_package(self) -> None:
        if self._package is not None or self.folder is None:
            return
        for name in [n for n in sys.modules if n == CANDIDATE_PACKAGE or n.startswith(CANDIDATE_PACKAGE + ".")]:
            del sys.modules[name]
        spec = importlib.machinery.ModuleSpec(CANDIDATE_PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [str(self.folder)]
        package = importlib.util.module_from_spec(spec)
        sys.modules[CANDIDATE_PACKAGE] = package
        self._package = package
        if str(self.folder) not in sys.path:
            sys.path.append(str(self.folder))
        for name in sorted(rules.CONTRACT_MODULES):
            if (self.folder / f"{name}.py").is_file():
                continue
            provided = self._provided(name)
            if provided is not None:
                sys.modules[f"{CANDIDATE_PACKAGE}.{name}"] = provided
                setattr(package, name, provided)
        for name in sorted(rules.own_module_names(self.folder)):
            importlib.util.find_spec(f"{CANDIDATE_PACKAGE}.{name}")

    def _provided(self, name: str) -> ModuleType | None:
        if name == "contract" and self._contract is not None:
            return self._contract
        if self._shipped is None or not (self._shipped / f"{name}.py").is_file():
            return None
        spec = importlib.util.spec_from_file_location(f"{CANDIDATE_PACKAGE}.{name}", self._shipped / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    def contract(self) -> Any:
        """The contract module the candidate's classes come from (its own copy, or the provided one)."""
        if self.folder is None:
            assert self._contract is not None
            return self._contract
        self._load_package()
        try:
            with self.guard.on():
                return importlib.import_module(f"{CANDIDATE_PACKAGE}.contract")
        except Exception as exc:
            raise _fault("contract", "import", exc) from None

    def function(self, role: str) -> Callable[..., Any]:
        if role not in self._found:
            try:
                module = self._given[role] if role in self._given else self._import(role)
                function = getattr(module, FUNCTIONS[role], None)
                if not callable(function):
                    raise ModuleFault(role, "import", f"{role}.py defines no function {FUNCTIONS[role]}()",
                                error_type="AttributeError")
                self._found[role] = function
            except ModuleFault as fault:
                self._found[role] = fault
        found = self._found[role]
        if isinstance(found, ModuleFault):
            raise found
        return found  # type: ignore[no-any-return]

    def module(self, name: str) -> Any:
        """The candidate's own module ``name`` (given, or imported from the folder under the guard)."""
        return self._given[name] if name in self._given else self._import(name)

    def trusted(self, name: str) -> ModuleType:
        """The package's module ``name`` imported without the guard: a module of ours shipped in the package (the
        engine), imported after the candidate's modules it imports, which it then finds already loaded."""
        self._load_package()
        try:
            return importlib.import_module(f"{CANDIDATE_PACKAGE}.{name}")
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _fault(name, "import", exc) from None

    def _import(self, role: str) -> ModuleType:
        if self.folder is None:
            raise ModuleFault(role, "import", f"no {role} module given", error_type="FileNotFoundError")
        self._load_package()
        if not (self.folder / f"{role}.py").is_file():
            raise ModuleFault(role, "import", f"the candidate has no {role}.py", error_type="FileNotFoundError")
        try:
            with self.guard.on():
                return importlib.import_module(f"{CANDIDATE_PACKAGE}.{role}")
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _fault(role, "import", exc) from None

    def import_status(self) -> dict[str, dict[str, Any]]:
        return {role: {"status": "error", "error": found.as_dict()} if isinstance(found, ModuleFault)
                else {"status": "ok"} for role, found in self._found.items()}


# --------------------------------------------------------------------------- tasks


def validate_job(job: Any) -> dict[str, Any]:
    """Check the job's shape; raises :class:`JobError` naming the first problem."""
    if not isinstance(job, dict) or job.get("format") != JOB_FORMAT:
        raise JobError(f"the job is not a {JOB_FORMAT} document")
    tasks = job.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise JobError("job.tasks must be a non-empty list")
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("id"), str):
            raise JobError(f"task {i} needs an id")
        if task.get("start") not in STAGES or task.get("stop") not in STAGES or STAGES.index(
                task["start"]) > STAGES.index(task["stop"]):
            raise JobError(f"task {task['id']!r}: start and stop must be stages in order")
        if not isinstance(task.get("layers"), list) or not isinstance(task.get("hardware"), dict):
            raise JobError(f"task {task['id']!r} needs hardware and layers")
    return job


@dataclass
class TaskResult:
    """One task's manifest entry and output arrays."""

    entry: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def run_task(task: Mapping[str, Any], inputs: Mapping[str, np.ndarray], candidate: Candidate) -> TaskResult:
    """Run one task over its layers; the first fault ends it (the layers done so far are kept)."""
    start = time.perf_counter()
    first, last = STAGES.index(str(task["start"])), STAGES.index(str(task["stop"]))
    traces = bool(task.get("traces", False))
    entry: dict[str, Any] = {"id": task["id"], "status": "ok", "error": None, "layers": []}
    result = TaskResult(entry)
    try:
        contract = candidate.contract()
        decoder = wire.Decoder(contract, inputs)
        try:
            hardware = decoder.decode("Hardware", task["hardware"])
        except wire.WireError as exc:
            raise JobError(f"task {task['id']!r}: {exc}") from None
        for index, layer_input in enumerate(task["layers"]):
            encoder = wire.Encoder(prefix=f"l{index}.")
            outputs: dict[str, Any] = {"index": index}
            try:
                layer = decoder.decode("Layer", layer_input["layer"])
                mapping = None if first == 0 else decoder.decode("LayerMapping", layer_input["mapping"])
                schedule = None if first <= 1 else decoder.decode("NetworkSchedule", layer_input["schedule"])
            except (wire.WireError, KeyError, TypeError) as exc:
                raise JobError(f"task {task['id']!r} layer {index}: {exc}") from None
            for stage in STAGES[first:last + 1]:
                function = candidate.function(stage)
                try:
                    with candidate.guard.on():
                        if stage == "mapping":
                            value = function(layer, hardware)
                        elif stage == "network":
                            value = function(mapping, hardware)
                        else:
                            value = function(mapping, schedule, hardware, traces=traces)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    raise _fault(stage, "call", exc) from None
                try:
                    outputs[OUTPUT_KEYS[stage]] = encoder.encode(wire.STAGE_TYPES[stage], value)
                except wire.WireError as exc:
                    raise ModuleFault(stage, "result", f"{FUNCTIONS[stage]} returned a wrong result: {exc}",
                                error_type="WireError") from None
                mapping, schedule = (value, schedule) if stage == "mapping" else (mapping, value)
            entry["layers"].append(outputs)
            result.arrays.update(encoder.arrays)
    except ModuleFault as fault:
        entry["status"], entry["error"] = "error", fault.as_dict(len(entry["layers"]))
    entry["refused"] = candidate.guard.take()
    entry["seconds"] = round(time.perf_counter() - start, 4)
    return result


def run_tasks(job: Mapping[str, Any], inputs: Mapping[str, np.ndarray], candidate: Candidate,
              write: Callable[[int, TaskResult], None] | None = None) -> list[dict[str, Any]]:
    """Every task of the job in order, in ``job["workers"]`` forked processes when ``write`` stores outputs."""
    tasks: list[Mapping[str, Any]] = job["tasks"]
    workers = max(1, int(job.get("workers", 1)))

    def one(i: int) -> dict[str, Any]:
        result = run_task(tasks[i], inputs, candidate)
        if write is not None:
            write(i, result)
        return result.entry

    if write is None or workers == 1 or len(tasks) == 1 or not hasattr(os, "fork"):
        return [one(i) for i in range(len(tasks))]
    return _forked(one, len(tasks), workers, [str(t["id"]) for t in tasks])


def _forked(one: Callable[[int], dict[str, Any]], count: int, workers: int, ids: list[str]) -> list[dict[str, Any]]:
    """Tasks split round-robin over forked workers; a worker that dies leaves its tasks as harness errors."""
    children: list[tuple[int, int, list[int]]] = []
    for k in range(1, workers):
        indices = list(range(k, count, workers))
        if not indices:
            continue
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            code = 0
            try:
                data = json.dumps([one(i) for i in indices]).encode()
            except BaseException:
                data, code = b"null", 1
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(data)
            os._exit(code)
        os.close(write_fd)
        children.append((pid, read_fd, indices))
    results: dict[int, dict[str, Any]] = {i: one(i) for i in range(0, count, workers)}
    for pid, read_fd, indices in children:
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        try:
            entries = json.loads(data) if data else None
        except ValueError:
            entries = None
        if not isinstance(entries, list) or len(entries) != len(indices):
            message = f"a harness worker ended with wait status {status} before reporting"
            entries = [{"id": ids[i], "status": "error", "layers": [], "refused": [], "seconds": 0.0,
                        "error": ModuleFault("harness", "call", message, error_type="WorkerDied").as_dict()}
                       for i in indices]
        results.update(zip(indices, entries))
    return [results[i] for i in range(count)]


def manifest(tasks: list[dict[str, Any]], candidate: Candidate, seconds: float) -> dict[str, Any]:
    return {"format": RESULTS_FORMAT, "python": platform.python_version(), "numpy": np.__version__,
            "modules": candidate.import_status(), "tasks": tasks, "seconds": round(seconds, 4)}


@dataclass(frozen=True)
class SandboxPaths:
    """Where a program of ours finds things inside the sandbox (from the environment the sandbox sets)."""

    inputs: Path
    out: Path
    candidate: Path
    shipped: Path

    @classmethod
    def from_environment(cls) -> SandboxPaths:
        return cls(Path(os.environ.get("SIMCODER_INPUTS", ".")), Path(os.environ.get("SIMCODER_OUT", ".")),
                   Path(os.environ.get("SIMCODER_CANDIDATE", ".")), Path(__file__).resolve().parent)

    def read_job(self, job_file: str, validate: Callable[[Any], J]) -> tuple[J, dict[str, np.ndarray]]:
        """The job document (checked by ``validate``) and its input arrays; raises ``OSError``/``ValueError``."""
        job = validate(json.loads((self.inputs / job_file).read_text(encoding="utf-8")))
        with np.load(self.inputs / INPUT_ARRAYS_FILE, allow_pickle=False) as archive:
            return job, {key: archive[key] for key in archive.files}

    def guarded_candidate(self, allowed: frozenset[str] = rules.ALLOWED_STDLIB) -> Candidate:
        """The candidate, with the guard installed for the rest of this process (``allowed``: the standard-library
        allowlist, :data:`rules.PROBE_STDLIB` for the benchmark's probe modules)."""
        guard = Guard(rules.own_module_names(self.candidate), (self.inputs, self.out, self.shipped), allowed)
        guard.install()
        return Candidate(self.candidate, shipped=self.shipped, guard=guard)

    def write_result(self, name: str, document: dict[str, Any]) -> None:
        """Write a results document so that it appears whole or not at all."""
        partial = self.out / (name + ".partial")
        partial.write_text(json.dumps(document))
        partial.replace(self.out / name)


def ends_process(main: Callable[P, int]) -> Callable[P, NoReturn]:
    """``main`` made to end the process with its exit code through ``os._exit``, on every path.

    Once candidate code has run, nothing of it may run unguarded: no exit hook (``atexit``, ``logging``'s
    shutdown), no finaliser, no thread left behind.  Standard output and error are flushed first (the
    interpreter's own streams, whatever ``sys.stdout`` was replaced with); an exception that escapes ``main``
    is logged with its traceback and ends the process with 1.
    """

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> NoReturn:
        try:
            code = main(*args, **kwargs)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        except BaseException:
            logger.exception("the harness failed")
            code = 1
        for stream in (sys.__stdout__, sys.__stderr__):
            if stream is not None:
                with suppress(OSError, ValueError):
                    stream.flush()
        os._exit(code)

    return run


@ends_process
def main(argv: list[str] | None = None) -> int:
    """Entry point in the sandbox.  Exits 0 whenever the job ran (candidate faults are in the manifest),
    2 on a bad job; never returns (:func:`ends_process`)."""
    logging.basicConfig(level=logging.WARNING, format="harness: %(message)s")
    sys.dont_write_bytecode = True
    start = time.perf_counter()
    paths = SandboxPaths.from_environment()
    out = paths.out
    try:
        job, inputs = paths.read_job(JOB_FILE, validate_job)
    except (OSError, ValueError) as exc:
        logger.error("bad job in %s: %s", paths.inputs, exc)
        return 2
    candidate = paths.guarded_candidate()

    def write(index: int, result: TaskResult) -> None:
        if result.arrays:
            np.savez(out / task_arrays_file(index), **result.arrays)  # type: ignore[arg-type]

    try:
        tasks = run_tasks(job, inputs, candidate, write)
    except JobError as exc:
        logger.error("bad job: %s", exc)
        return 2
    paths.write_result(MANIFEST_FILE, manifest(tasks, candidate, time.perf_counter() - start))
    return 0
