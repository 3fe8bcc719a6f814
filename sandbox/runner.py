"""The program that runs INSIDE the sandbox: a candidate simulator (or any mix of candidate and
reference modules) over every workload of one job, in one process.

Run as ``python3 /sandbox/code/sandbox/runner.py`` (the repository is on ``PYTHONPATH``; only numpy
and the standard library are imported, so it works in the sandbox image).  It reads
``$SIMCODER_INPUTS/job.json``, loads the candidate folder ``$SIMCODER_CANDIDATE`` as a package
(relative imports such as ``from .contract import Layer`` work) and writes into ``$SIMCODER_OUT``:

* ``runs/<mix>-<workload>/reports.json``: the per-layer figures of SCALE-Sim's three reports;
* ``runs/<mix>-<workload>/traces.npz``: every layer's six traces, key ``layer<N>/<trace>`` with the
  trace names of :func:`reference_sim.reports.write_traces`; or only their digests in
  ``reports.json`` when the job sets ``trace_digests`` (blame runs: many mixes, small output);
* ``manifest.json``: every run with its status; a candidate that fails to import, raises or returns
  the wrong type is reported there with the module, the stage and a traceback tail.

A candidate error never crashes the runner; the exit code is non-zero only when the job itself is bad.
The functions are importable on the host too: the verifier runs jobs in-process with
:func:`run_workload` for fast tests.  See docs/verifier.md for the job and manifest formats.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from reference_sim import contract as reference_contract
from reference_sim import engine
from reference_sim import errors as reference_errors
from reference_sim.reports import BINARY_TRACE_FILE

logger = logging.getLogger(__name__)

JOB_FORMAT = "simcoder-job/1"
MANIFEST_FORMAT = "simcoder-manifest/1"
JOB_FILE = "job.json"
MANIFEST_FILE = "manifest.json"
REPORTS_FILE = "reports.json"
ROLES: tuple[str, ...] = ("mapping", "network", "memory")
FUNCTIONS = {"mapping": "map_layer", "network": "schedule", "memory": "simulate"}
SOURCES = ("candidate", "reference")
CANDIDATE_PACKAGE = "simcoder_candidate"
TRACE_NAMES: tuple[str, ...] = reference_contract.TraceSet.NAMES
TRACEBACK_CHARS = 1500

FIGURES: tuple[str, ...] = (
    "total_cycles",
    "stall_cycles",
    "overall_util_pct",
    "mapping_efficiency_pct",
    "compute_util_pct",
    *(f"{where}_{op}_{what}" for where in ("sram", "dram") for op in reference_contract.OPERANDS
      for what in ("start", "stop", "accesses")),
)
"""The per-layer figures of SCALE-Sim's compute and detailed-access reports (the bandwidth report derives from them)."""

_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "mapping": tuple(f.name for f in dataclasses.fields(reference_contract.LayerMapping)),
    "network": tuple(f.name for f in dataclasses.fields(reference_contract.NetworkSchedule)),
    "memory": tuple(f.name for f in dataclasses.fields(reference_contract.MemoryResult)),
}
_CONTRACT_CLASSES: dict[str, type] = {
    name: obj
    for name, obj in vars(reference_contract).items()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj)
}


class JobError(ValueError):
    """The job file is malformed (the runner's caller is at fault, not the candidate)."""


class ModuleFaultError(Exception):
    """A module failed: ``stage`` is ``import``, ``call`` (it raised) or ``result`` (wrong return)."""

    def __init__(self, module: str, stage: str, message: str, tb: str = "", error_type: str = "",
                 source: str = "candidate") -> None:
        super().__init__(f"{module} {stage}: {message}")
        self.module = module
        self.source = source
        self.stage = stage
        self.message = message
        self.tb = tb
        self.error_type = error_type

    def as_dict(self, layer: int | None = None) -> dict[str, Any]:
        return {"module": self.module, "source": self.source, "stage": self.stage, "layer": layer,
                "type": self.error_type, "message": self.message[:500], "traceback": self.tb}


def _tail(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text if len(text) <= TRACEBACK_CHARS else "..." + text[-(TRACEBACK_CHARS - 3) :]


def _fault(module: str, stage: str, exc: BaseException, source: str = "candidate") -> ModuleFaultError:
    return ModuleFaultError(module, stage, f"{type(exc).__name__}: {exc}", _tail(exc), type(exc).__name__, source)


# --------------------------------------------------------------------------- contract conversion


def _convert(value: Any, classes: Mapping[str, type]) -> Any:
    """``value`` rebuilt with the contract classes a module expects (a candidate carries its own copy)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        target = classes.get(type(value).__name__)
        if target is None or type(value) is target:
            return value
        kwargs = {f.name: _convert(getattr(value, f.name), classes)
                  for f in dataclasses.fields(target) if f.init and hasattr(value, f.name)}
        return target(**kwargs)
    if isinstance(value, dict):
        return {k: _convert(v, classes) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_convert(v, classes) for v in value)
    if isinstance(value, list):
        return [_convert(v, classes) for v in value]
    return value


def _classes_of(module: ModuleType, package_contract: ModuleType | None) -> dict[str, type]:
    """Contract classes a module works with: its own globals, else its package's contract, else the reference's."""
    classes = dict(_CONTRACT_CLASSES)
    for source in (package_contract, module):
        if source is None:
            continue
        for name in _CONTRACT_CLASSES:
            obj = getattr(source, name, None)
            if isinstance(obj, type) and dataclasses.is_dataclass(obj):
                classes[name] = obj
    return classes


def _check_fields(role: str, value: Any) -> None:
    missing = [name for name in _REQUIRED_FIELDS[role] if not hasattr(value, name)]
    if missing:
        kind = {"mapping": "LayerMapping", "network": "NetworkSchedule", "memory": "MemoryResult"}[role]
        raise ModuleFaultError(role, "result", f"{FUNCTIONS[role]} returned {type(value).__name__}, not a {kind} "
                               f"(missing {', '.join(missing[:5])})", error_type="TypeError")


def _as_int(role: str, what: str, value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ModuleFaultError(role, "result", f"{what} is {type(value).__name__}, not a number",
                               error_type="TypeError") from None
    if not math.isfinite(number) or number != int(number):
        raise ModuleFaultError(role, "result", f"{what} is {value!r}, not a whole number", error_type="ValueError")
    return int(number)


class ModuleAdapter:
    """One module of a mix: converts inputs to the module's contract classes, checks outputs, tags faults."""

    def __init__(self, role: str, module: Any, package_contract: ModuleType | None = None,
                 source: str = "candidate") -> None:
        self.role = role
        self.source = source
        self.source_module = module
        function = getattr(module, FUNCTIONS[role], None)
        if not callable(function):
            raise ModuleFaultError(role, "import", f"{role}.py defines no function {FUNCTIONS[role]}()",
                                   error_type="AttributeError")
        self._function: Callable[..., Any] = function
        self._classes = _classes_of(module, package_contract) if isinstance(module, ModuleType) else _CONTRACT_CLASSES

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        converted = [_convert(a, self._classes) for a in args]
        try:
            result = self._function(*converted, **kwargs)
        except (KeyboardInterrupt, ModuleFaultError):
            raise
        except BaseException as exc:
            raise _fault(self.role, "call", exc, self.source) from None
        _check_fields(self.role, result)
        return result

    def map_layer(self, layer: reference_contract.Layer, hardware: reference_contract.Hardware) -> Any:
        result = self._call(layer, hardware)
        try:
            rows, cols = (np.asarray(a) for a in result.fold_order)
            if rows.shape != cols.shape or rows.ndim != 1:
                raise ValueError(f"fold_order arrays have shapes {rows.shape} and {cols.shape}")
        except (TypeError, ValueError) as exc:
            raise ModuleFaultError("mapping", "result", f"bad fold_order: {exc}", error_type="ValueError") from None
        return result

    def schedule(self, mapping: Any, hardware: reference_contract.Hardware) -> Any:
        result = self._call(mapping, hardware)
        _as_int("network", "fold_cycles", result.fold_cycles)
        return result

    def simulate(
        self, mapping: Any, network: Any, hardware: reference_contract.Hardware, *, traces: bool = False
    ) -> Any:
        result = self._call(mapping, network, hardware, traces=traces)
        if _as_int("memory", "total_cycles", result.total_cycles) <= 0:
            raise ModuleFaultError("memory", "result", f"total_cycles is {result.total_cycles}, not positive",
                                   error_type="ValueError")
        _as_int("memory", "stall_cycles", result.stall_cycles)
        if traces and result.traces is None:
            raise ModuleFaultError("memory", "result", "simulate(traces=True) returned no traces",
                                   error_type="ValueError")
        return result


# --------------------------------------------------------------------------- one run


@dataclass
class LayerRecord:
    """One layer's figures (see :data:`FIGURES`) and, when traced, its six traces."""

    index: int
    name: str
    figures: dict[str, float]
    traces: dict[str, np.ndarray] | None = None
    digests: dict[str, str] | None = None
    """Trace digests (:func:`trace_digest`) when the job asked for digests instead of traces."""


def trace_digest(array: np.ndarray) -> str:
    """A fingerprint of a trace: shape and float64 values."""
    data = np.ascontiguousarray(array, dtype=np.float64)
    return hashlib.sha256(repr(data.shape).encode() + data.tobytes()).hexdigest()[:32]


@dataclass
class RunRecord:
    """One mix over one workload: ``status`` ``ok`` or ``error`` (then ``error`` says which module and why)."""

    mix: str
    workload: str
    status: str
    layers: list[LayerRecord] = field(default_factory=list)
    error: dict[str, Any] | None = None
    seconds: float = 0.0


def _figures(result: engine.LayerResult) -> dict[str, float]:
    owner = "memory"
    try:
        values: list[Any] = [result.total_cycles, result.stall_cycles, result.overall_util_pct]
        owner = "mapping"
        values += [result.mapping_efficiency_pct, result.compute_util_pct]
        sram_counts = [result.sram_accesses[op] for op in reference_contract.OPERANDS]
        owner = "memory"
        for where, counts in (("sram", sram_counts), ("dram", None)):
            stops = result.sram_start_stop if where == "sram" else result.dram_start_stop
            for i, op in enumerate(reference_contract.OPERANDS):
                start, stop = stops[op]
                count = counts[i] if counts is not None else result.dram_accesses[op]
                values += [start, stop, count]
        return {name: float(v) for name, v in zip(FIGURES, values, strict=True)}
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise _fault(owner, "result", exc) from None


def _traces(result: engine.LayerResult) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name in TRACE_NAMES:
        try:
            array = np.asarray(getattr(result.traces, name), dtype=np.float64)
        except (AttributeError, TypeError, ValueError) as exc:
            raise _fault("memory", "result", exc) from None
        if array.ndim != 2 or array.shape[1] < 1:
            raise ModuleFaultError("memory", "result", f"trace {name} has shape {array.shape}, not (rows, 1 + ports)",
                                   error_type="ValueError")
        arrays[name] = array
    return arrays


def hardware_from_json(data: Mapping[str, Any]) -> reference_contract.Hardware:
    return reference_contract.Hardware(**data)


def layer_from_json(data: Mapping[str, Any]) -> reference_contract.Layer:
    return reference_contract.Layer(**data)


def run_workload(mix: str, workload: Mapping[str, Any], modules: Mapping[str, Any], *, traces: bool) -> RunRecord:
    """Simulate one workload (``id``, ``hardware``, ``layers`` as in the job) with one module per role."""
    start = time.perf_counter()
    record = RunRecord(mix=mix, workload=str(workload["id"]), status="ok")
    hardware = hardware_from_json(workload["hardware"])
    mods = engine.Modules(modules["mapping"], modules["network"], modules["memory"])
    for index, layer_data in enumerate(workload["layers"]):
        layer = layer_from_json(layer_data)
        try:
            result = engine.simulate_layer(layer, hardware, mods, index=index, traces=traces)
            rec = LayerRecord(index, layer.name, _figures(result), _traces(result) if traces else None)
        except ModuleFaultError as fault:
            record.status, record.error = "error", fault.as_dict(index)
            break
        except Exception as exc:
            record.status, record.error = "error", _fault("engine", "call", exc).as_dict(index)
            break
        record.layers.append(rec)
    record.seconds = time.perf_counter() - start
    return record


# --------------------------------------------------------------------------- the candidate package


SHARED_MODULES: dict[str, ModuleType] = {"contract": reference_contract, "errors": reference_errors}
"""Support modules a candidate may import relatively without carrying a copy (the reference's are used)."""


class CandidateLoader:
    """Imports a candidate folder as the package ``simcoder_candidate``; each module lazily, errors kept."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._modules: dict[str, ModuleAdapter | ModuleFaultError] = {}
        self._package: ModuleType | None = None
        self._contract: ModuleType | None = None

    def _load_package(self) -> ModuleType:
        if self._package is None:
            for name in [n for n in sys.modules if n == CANDIDATE_PACKAGE or n.startswith(CANDIDATE_PACKAGE + ".")]:
                del sys.modules[name]
            spec = importlib.machinery.ModuleSpec(CANDIDATE_PACKAGE, None, is_package=True)
            spec.submodule_search_locations = [str(self.folder)]
            package = importlib.util.module_from_spec(spec)
            sys.modules[CANDIDATE_PACKAGE] = package
            init = self.folder / "__init__.py"
            if init.is_file():
                exec(compile(init.read_text(encoding="utf-8"), str(init), "exec"), package.__dict__)
            if str(self.folder) not in sys.path:
                sys.path.append(str(self.folder))
            for name, shared in SHARED_MODULES.items():
                if not (self.folder / f"{name}.py").is_file():
                    sys.modules[f"{CANDIDATE_PACKAGE}.{name}"] = shared
                    setattr(package, name, shared)
            self._package = package
            if (self.folder / "contract.py").is_file():
                try:
                    self._contract = importlib.import_module(f"{CANDIDATE_PACKAGE}.contract")
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    logger.warning("candidate contract.py does not import: %s", exc)
        return self._package

    def module(self, role: str) -> ModuleAdapter:
        if role not in self._modules:
            try:
                self._load_package()
                if not (self.folder / f"{role}.py").is_file():
                    raise ModuleFaultError(role, "import", f"the candidate has no {role}.py",
                                           error_type="FileNotFoundError")
                imported = importlib.import_module(f"{CANDIDATE_PACKAGE}.{role}")
                self._modules[role] = ModuleAdapter(role, imported, self._contract)
            except ModuleFaultError as fault:
                self._modules[role] = fault
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self._modules[role] = _fault(role, "import", exc)
        found = self._modules[role]
        if isinstance(found, ModuleFaultError):
            raise found
        return found

    def import_status(self) -> dict[str, dict[str, Any]]:
        status: dict[str, dict[str, Any]] = {}
        for role, found in self._modules.items():
            status[role] = {"status": "error", "error": found.as_dict()} if isinstance(found, ModuleFaultError) else {
                "status": "ok"}
        return status


def reference_adapters() -> dict[str, ModuleAdapter]:
    """The reference modules, adapted so they accept a candidate's contract classes as input."""
    return {role: ModuleAdapter(role, getattr(engine.REFERENCE, role), reference_contract, "reference")
            for role in ROLES}


# --------------------------------------------------------------------------- the job


def validate_job(job: Any) -> dict[str, Any]:
    """Check the job's shape; raises :class:`JobError` naming the first problem."""
    if not isinstance(job, dict) or job.get("format") != JOB_FORMAT:
        raise JobError(f"job is not a {JOB_FORMAT} document")
    workloads, mixes = job.get("workloads"), job.get("mixes")
    if not isinstance(workloads, list) or not workloads:
        raise JobError("job.workloads must be a non-empty list")
    if not isinstance(mixes, list) or not mixes:
        raise JobError("job.mixes must be a non-empty list")
    for w in workloads:
        if isinstance(w, dict) and "id" in w and isinstance(w.get("scalesim"), dict):
            continue
        if not isinstance(w, dict) or not {"id", "hardware", "layers"} <= set(w):
            raise JobError("every workload needs id and either hardware and layers, or scalesim")
        try:
            hardware_from_json(w["hardware"])
            for layer in w["layers"]:
                layer_from_json(layer)
        except TypeError as exc:
            raise JobError(f"workload {w.get('id')!r}: {exc}") from None
    for mix in mixes:
        modules = mix.get("modules") if isinstance(mix, dict) else None
        if not isinstance(modules, dict) or set(modules) != set(ROLES) or not set(modules.values()) <= set(SOURCES):
            raise JobError(f"mix {mix!r}: modules must map mapping, network, memory to candidate or reference")
    return job


def trace_key(layer: int, name: str) -> str:
    """The key of one layer's trace in a run's ``traces.npz``."""
    return f"layer{layer}/{name}"


def _write_run(out: Path, run_dir: str, record: RunRecord, compress: bool, digests: bool) -> None:
    """``reports.json`` and one ``traces.npz`` per run (few files: each costs milliseconds on a bind mount)."""
    folder = out / run_dir
    folder.mkdir(parents=True, exist_ok=True)
    layers: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for layer in record.layers:
        layers.append({"index": layer.index, "name": layer.name, "figures": layer.figures})
        if layer.traces is not None and digests:
            layers[-1]["digests"] = {name: trace_digest(array) for name, array in layer.traces.items()}
        elif layer.traces is not None:
            arrays.update({trace_key(layer.index, name): array for name, array in layer.traces.items()})
    if arrays:
        save = np.savez_compressed if compress else np.savez
        save(folder / BINARY_TRACE_FILE, **arrays)  # type: ignore[arg-type]
    (folder / REPORTS_FILE).write_text(json.dumps({"layers": layers}))


def resolve_workload(workload: dict[str, Any], inputs: Path | None) -> dict[str, Any]:
    """A workload with ``hardware`` and ``layers``; a ``scalesim`` one (``config``, ``topology``, ``format``,
    paths relative to the inputs folder) is read from SCALE-Sim's files."""
    files = workload.get("scalesim")
    if not isinstance(files, dict):
        return workload
    from reference_sim.scalesim_io import read_config, read_topology

    base = inputs if inputs is not None else Path(".")
    config = read_config(base / str(files["config"]))
    layers = read_topology(base / str(files["topology"]), files.get("format", "conv"))
    return {**workload, "hardware": dataclasses.asdict(config.hardware),
            "layers": [dataclasses.asdict(layer) for layer in layers]}


def _run_tasks(tasks: list[Callable[[], dict[str, Any]]], metas: list[dict[str, str]],
               workers: int) -> list[dict[str, Any]]:
    """Run tasks in ``workers`` forked processes (task ``i`` in worker ``i % workers``); results in task order.

    Each child returns its manifest entries through a pipe.  A child that dies (a candidate calling
    ``os._exit``, a segfault) leaves its tasks reported as runner errors.
    """
    children: list[tuple[int, int, list[int]]] = []
    for k in range(1, workers):
        indices = list(range(k, len(tasks), workers))
        if not indices:
            continue
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_fd)
            code = 0
            try:
                data = json.dumps([tasks[i]() for i in indices]).encode()
            except BaseException:
                data, code = b"null", 1
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(data)
            os._exit(code)
        os.close(write_fd)
        children.append((pid, read_fd, indices))
    results: dict[int, dict[str, Any]] = {i: tasks[i]() for i in range(0, len(tasks), workers)}
    for pid, read_fd, indices in children:
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        try:
            entries = json.loads(data) if data else None
        except ValueError:
            entries = None
        if not isinstance(entries, list) or len(entries) != len(indices):
            message = f"worker process ended with wait status {status} before reporting"
            entries = [{**metas[i], "status": "error", "layers": 0, "seconds": 0.0,
                        "error": ModuleFaultError("runner", "call", message, error_type="WorkerDied").as_dict()}
                       for i in indices]
        results.update(zip(indices, entries))
    return [results[i] for i in range(len(tasks))]


def execute_job(job: dict[str, Any], candidate: Path | None, out: Path, inputs: Path | None = None) -> dict[str, Any]:
    """Run every mix over every workload; write the runs and return the manifest (also written).

    A workload's own ``traces`` key overrides the job's.
    """
    start = time.perf_counter()
    loader = CandidateLoader(candidate) if candidate is not None else None
    reference = reference_adapters()
    traces = bool(job.get("traces", True))
    compress = bool(job.get("compress_traces", False))
    digests = bool(job.get("trace_digests", False))
    tasks: list[Callable[[], dict[str, Any]]] = []
    metas: list[dict[str, str]] = []
    for m, mix in enumerate(job["mixes"]):
        modules: dict[str, Any] = {}
        fault: ModuleFaultError | None = None
        for role in ROLES:
            if mix["modules"][role] == "reference":
                modules[role] = reference[role]
            elif loader is None:
                fault = ModuleFaultError(role, "import", "no candidate folder given", error_type="FileNotFoundError")
            else:
                try:
                    modules[role] = loader.module(role)
                except ModuleFaultError as exc:
                    fault = fault or exc
        for w, workload in enumerate(job["workloads"]):

            def task(mix_id: str = str(mix["id"]), workload: dict[str, Any] = workload, run_dir: str = f"runs/{m}-{w}",
                     modules: dict[str, Any] = modules, fault: ModuleFaultError | None = fault) -> dict[str, Any]:
                try:
                    resolved = resolve_workload(workload, inputs)
                except (OSError, ValueError) as exc:
                    fault = _fault("job", "import", exc, "job")
                if fault is not None:
                    record = RunRecord(mix_id, str(workload["id"]), "error", error=fault.as_dict())
                else:
                    record = run_workload(mix_id, resolved, modules, traces=bool(workload.get("traces", traces)))
                _write_run(out, run_dir, record, compress, digests)
                return {"mix": record.mix, "workload": record.workload, "dir": run_dir, "status": record.status,
                        "layers": len(record.layers), "seconds": round(record.seconds, 4), "error": record.error}

            tasks.append(task)
            metas.append({"mix": str(mix["id"]), "workload": str(workload["id"]), "dir": f"runs/{m}-{w}"})
    workers = max(1, int(job.get("workers", 1)))
    runs = _run_tasks(tasks, metas, workers) if workers > 1 and len(tasks) > 1 and hasattr(os, "fork") else [
        t() for t in tasks]
    manifest = {
        "format": MANIFEST_FORMAT,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "traces": traces,
        "candidate_modules": loader.import_status() if loader is not None else {},
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 4),
    }
    tmp = out / (MANIFEST_FILE + ".partial")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / MANIFEST_FILE)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Entry point inside the sandbox: ``runner.py [JOB]`` (default ``$SIMCODER_INPUTS/job.json``).

    Exits 0 whenever the job ran (candidate errors are in the manifest), 2 on a bad job file.
    """
    logging.basicConfig(level=logging.WARNING, format="runner: %(message)s")
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != here]
    inputs = Path(os.environ.get("SIMCODER_INPUTS", "."))
    out = Path(os.environ.get("SIMCODER_OUT", "."))
    candidate_env = os.environ.get("SIMCODER_CANDIDATE")
    candidate = Path(candidate_env) if candidate_env else None
    args = sys.argv[1:] if argv is None else argv
    job_path = Path(args[0]) if args else inputs / JOB_FILE
    try:
        job = validate_job(json.loads(job_path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        logger.error("bad job file %s: %s", job_path, exc)
        return 2
    execute_job(job, candidate, out, inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
