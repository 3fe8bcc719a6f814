"""The verifier: an honest judge of a candidate simulator, and evidence a repairer can act on.

Pure functions, no LangGraph.  Nothing of the reference enters the candidate's sandbox: the
container gets the candidate folder, the contract, the harness (:mod:`judge.harness`) and the
job's inputs; expected results are the built-in reference's, computed here on the host, or a user's
reference's, from its own sandbox run (:mod:`judge.user_reference`).  The flow of :func:`verify`:

1. **static check** of the candidate's sources (:func:`judge.harness.rules.check_folder`: parsed,
   never run): a refused import or name ends the verification as ``forbidden``, naming file and line;
2. **end to end**, in one sandbox run: the candidate's own pipeline on every suite workload with
   traces (reports and all six traces compared), again without traces (the report-only paths a
   generated simulator uses by default), and on the spec's ``final_check`` workloads (report
   figures); the verdict is this run's;
3. on a failure, **per-stage evidence**, in one more run: each candidate module on the reference's
   inputs to its stage (mapping on layer and hardware, network on the reference's mapping, memory on
   the reference's mapping and schedule, with traces on and off), every output compared field by
   field; the blame is every stage whose output differs on correct inputs, the first one leading;
   the candidate's network and memory on the reference's mapping are run too (substitution), which
   adds evidence when two modules are faulty;
4. a diagnosis of at most :data:`DIAGNOSIS_CHARS` characters that leads with the stage evidence.

Executors: :class:`InProcessExecutor` (unit tests, trusted code only) and :class:`SandboxExecutor`
(one sandbox run per job).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from judge.harness import harness, rules, wire
from reference_sim import contract as reference_contract
from reference_sim import engine
from reference_sim.compare import first_figure_difference, first_trace_difference, values_equal
from reference_sim.contract import Hardware, Layer, LayerMapping, MemoryResult, NetworkSchedule
from reference_sim.errors import SimCoderError
from sandbox.base import INPUTS_MOUNT, Outcome, RunResult, Sandbox

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO_ROOT / "scale_sim.yaml"
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
DIAGNOSIS_CHARS = 1200
MANIFEST_LIMIT_BYTES = 8 * 1024 * 1024
TAIL_CHARS = 2000
ROLES: tuple[str, ...] = harness.STAGES
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
TRACE_NAMES: tuple[str, ...] = reference_contract.TraceSet.NAMES


class BadOutputError(SimCoderError, ValueError):
    """The harness's output (manifest, arrays) is missing or malformed."""


class UserReferenceError(SimCoderError, RuntimeError):
    """A user's own reference gives no expected results: refused by the rules, crashed, or not run in the sandbox."""


# --------------------------------------------------------------------------- the suite


@dataclass(frozen=True)
class Workload:
    """One verification workload: layers on one architecture (``id`` is ``<workload>@<variant>``)."""

    id: str
    hardware: Hardware
    layers: tuple[Layer, ...]
    reference: engine.Modules | Path = engine.REFERENCE
    """What says what is expected: modules computed here on the host (the built-in reference), or the folder of a
    user's own reference under the same contract, which runs only in the sandbox (:mod:`judge.user_reference`)."""
    expected: tuple[ReferenceLayer, ...] | None = field(default=None, compare=False, hash=False, repr=False)
    """The user's reference's results with traces, from its sandbox run (``None``: not attached)."""
    expected_untraced: tuple[ReferenceLayer, ...] | None = field(default=None, compare=False, hash=False,
                                                                 repr=False)
    """The same without traces."""

    def __post_init__(self) -> None:
        if (self.expected is not None or self.expected_untraced is not None) and not isinstance(self.reference, Path):
            raise ValueError(f"{self.id}: expected results are attached only for a user's reference folder")


Suite = tuple[Workload, ...]


def load_suite(spec_path: str | Path = DEFAULT_SPEC, reference: engine.Modules | Path = engine.REFERENCE) -> Suite:
    """The spec's verification suite: every ``verification.workloads`` entry under every variant."""
    from reference_sim.spec import load_spec

    loaded = load_spec(spec_path)
    verification = loaded.spec.verification
    if verification is None:
        raise ValueError(f"{spec_path}: the spec has no verification section")
    return tuple(
        Workload(f"{name}@{variant.name}", loaded.spec.hardware(variant), tuple(loaded.workload(name)), reference)
        for name in verification.workloads
        for variant in verification.variants
    )


def load_final_check(spec_path: str | Path = DEFAULT_SPEC,
                     reference: engine.Modules | Path = engine.REFERENCE) -> Suite:
    """The spec's ``final_check`` workloads (whole networks) on the spec's own architecture."""
    from reference_sim.spec import load_spec

    loaded = load_spec(spec_path)
    verification = loaded.spec.verification
    names = verification.final_check if verification is not None else []
    hardware = loaded.spec.hardware()
    return tuple(Workload(f"{name}@final_check", hardware, tuple(loaded.workload(name)), reference)
                 for name in names)


@functools.cache
def default_suite() -> Suite:
    """``scale_sim.yaml``'s suite: ``edge_cases`` under its architecture variants."""
    return load_suite(DEFAULT_SPEC)


@functools.cache
def default_final_check() -> Suite:
    """``scale_sim.yaml``'s ``final_check`` workloads."""
    return load_final_check(DEFAULT_SPEC)


# --------------------------------------------------------------------------- expected results


@dataclass(frozen=True)
class StageOutputs:
    """One layer's outputs of the stages a task ran."""

    layer: Layer
    mapping: LayerMapping | None = None
    schedule: NetworkSchedule | None = None
    memory: MemoryResult | None = None


@dataclass(frozen=True)
class ReferenceLayer:
    """The reference's outputs for one layer and its figures; ``memory`` is traced when the run was."""

    layer: Layer
    mapping: LayerMapping
    schedule: NetworkSchedule
    memory: MemoryResult
    memory_untraced: MemoryResult
    figures: dict[str, float]
    """Report figures of ``memory``."""


def reference_run(workload: Workload, traces: bool = True) -> tuple[ReferenceLayer, ...]:
    """The reference on a workload, stage by stage: the results attached to it (a user's reference, run in the
    sandbox), else its modules computed here on the host (cached).

    Never runs a user's reference folder: without attached results it raises :class:`UserReferenceError`.
    """
    attached = workload.expected if traces else workload.expected_untraced
    if attached is not None:
        if tuple(r.layer for r in attached[:len(workload.layers)]) != workload.layers:
            raise UserReferenceError(f"{workload.id}: the expected results attached are for other layers")
        return attached[:len(workload.layers)]
    if isinstance(workload.reference, Path):
        raise _not_run(workload, traces)
    return _host_reference_run(workload, traces)


def _not_run(workload: Workload, traces: bool) -> UserReferenceError:
    return UserReferenceError(
        f"the user's reference in {workload.reference} has no expected results {'with' if traces else 'without'}"
        f" traces for {workload.id}: they come from its sandbox run (judge.user_reference.expected_suites)")


def require_expected(suite: Sequence[Workload], final_check: Sequence[Workload] = ()) -> None:
    """Raise :class:`UserReferenceError` unless every workload of a user's reference has its results attached
    (traced and untraced for the suite, untraced for the final check)."""
    for workloads, traced in ((suite, True), (final_check, False)):
        for w in workloads:
            if isinstance(w.reference, Path) and w.expected_untraced is None:
                raise _not_run(w, False)
            if isinstance(w.reference, Path) and traced and w.expected is None:
                raise _not_run(w, True)


@functools.lru_cache(maxsize=64)
def _host_reference_run(workload: Workload, traces: bool) -> tuple[ReferenceLayer, ...]:
    """:func:`reference_run` of modules on the host; the traced run adds the traced memory to the untraced run's
    mapping, schedule and report-only result."""
    ref = workload.reference
    assert isinstance(ref, engine.Modules)
    if traces:
        out: list[ReferenceLayer] = []
        for base in _host_reference_run(workload, False):
            traced = ref.memory.simulate(base.mapping, base.schedule, workload.hardware, traces=True)
            out.append(dataclasses.replace(base, memory=traced,
                                           figures=figures_of(base.layer, workload.hardware, base.mapping, traced)))
        return tuple(out)
    untraced_run: list[ReferenceLayer] = []
    for layer in workload.layers:
        mapping = ref.mapping.map_layer(layer, workload.hardware)
        schedule = ref.network.schedule(mapping, workload.hardware)
        untraced = ref.memory.simulate(mapping, schedule, workload.hardware, traces=False)
        figures = figures_of(layer, workload.hardware, mapping, untraced)
        untraced_run.append(ReferenceLayer(layer, mapping, schedule, untraced, untraced, figures))
    return tuple(untraced_run)


def figures_of(layer: Layer, hardware: Hardware, mapping: LayerMapping, memory: MemoryResult) -> dict[str, float]:
    """SCALE-Sim's per-layer figures (:data:`FIGURES`) from a mapping and a memory result."""
    result = engine.layer_result(layer, hardware, mapping, memory)
    values: list[float] = [result.total_cycles, result.stall_cycles, result.overall_util_pct,
                           result.mapping_efficiency_pct, result.compute_util_pct]
    for stops, counts in ((result.sram_start_stop, result.sram_accesses),
                          (result.dram_start_stop, result.dram_accesses)):
        for op in reference_contract.OPERANDS:
            values += [*stops[op], counts[op]]
    return {name: float(v) for name, v in zip(FIGURES, values, strict=True)}


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Task:
    """One harness task: stages ``start``..``stop`` of the candidate over a workload's layers."""

    id: str
    workload: Workload
    start: str
    stop: str
    traces: bool


def make_job(tasks: Sequence[Task], workers: int = 1) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The harness's job document and its input arrays (the reference's stage outputs where a task needs them)."""
    encoder = wire.Encoder(prefix="in.")
    documents: list[dict[str, Any]] = []
    for task in tasks:
        first = ROLES.index(task.start)
        layers: list[dict[str, Any]] = []
        reference = reference_run(task.workload, False) if first > 0 else ()
        for i, layer in enumerate(task.workload.layers):
            entry: dict[str, Any] = {"layer": encoder.encode("Layer", layer), "mapping": None, "schedule": None}
            if first > 0:
                entry["mapping"] = encoder.encode("LayerMapping", reference[i].mapping)
            if first > 1:
                entry["schedule"] = encoder.encode("NetworkSchedule", reference[i].schedule)
            layers.append(entry)
        documents.append({"id": task.id, "start": task.start, "stop": task.stop, "traces": task.traces,
                          "hardware": encoder.encode("Hardware", task.workload.hardware), "layers": layers})
    return {"format": harness.JOB_FORMAT, "workers": workers, "tasks": documents}, encoder.arrays


# --------------------------------------------------------------------------- execution


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

    _lock = threading.Lock()

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


def read_manifest(out: Path, tasks: int) -> dict[str, Any]:
    """The harness's manifest, checked for size and shape; raises :class:`BadOutputError`."""
    path = out / harness.MANIFEST_FILE
    try:
        size = path.stat().st_size
    except OSError:
        raise BadOutputError(f"{harness.MANIFEST_FILE} is missing") from None
    if size > MANIFEST_LIMIT_BYTES:
        raise BadOutputError(f"{harness.MANIFEST_FILE} is {size} bytes (limit {MANIFEST_LIMIT_BYTES})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadOutputError(f"{harness.MANIFEST_FILE} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != harness.RESULTS_FORMAT:
        raise BadOutputError(f"{harness.MANIFEST_FILE} is not a {harness.RESULTS_FORMAT} document")
    entries = manifest.get("tasks")
    if not isinstance(entries, list) or len(entries) != tasks or not all(
            isinstance(e, dict) and isinstance(e.get("status"), str) and isinstance(e.get("layers"), list)
            for e in entries):
        raise BadOutputError(f"{harness.MANIFEST_FILE} does not list the job's {tasks} tasks")
    return manifest


def read_task_arrays(out: Path, index: int) -> dict[str, np.ndarray]:
    """Task ``index``'s output arrays (none when it wrote no file); raises :class:`BadOutputError`."""
    path = out / harness.task_arrays_file(index)
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise BadOutputError(f"{path.name} is unreadable ({type(exc).__name__})") from None


# --------------------------------------------------------------------------- reading results


@dataclass(frozen=True)
class TaskRun:
    """One task's decoded outputs per layer, its error (a module fault) and what the guard refused."""

    layers: tuple[StageOutputs, ...]
    error: dict[str, Any] | None
    refused: tuple[str, ...]


def read_task(execution: Execution, index: int, task: Task) -> TaskRun:
    """Decode task ``index`` with the reference's contract; a malformed stage output is that module's fault."""
    assert execution.manifest is not None and execution.arrays is not None
    entry = execution.manifest["tasks"][index]
    refused = tuple(str(r)[:300] for r in entry.get("refused") or ())[:20]
    error = entry.get("error") if isinstance(entry.get("error"), dict) else None
    if entry.get("status") != "ok" and error is None:
        error = {"module": "harness", "stage": "call", "message": f"task status {entry.get('status')!r}"}
    arrays = execution.arrays(index)
    decoder = wire.Decoder(reference_contract, arrays)
    layers: list[StageOutputs] = []
    for i, data in enumerate(entry["layers"][:len(task.workload.layers)]):
        values: dict[str, Any] = {}
        for stage in ROLES[ROLES.index(task.start):ROLES.index(task.stop) + 1]:
            key = harness.OUTPUT_KEYS[stage]
            try:
                values[key] = decoder.decode(wire.STAGE_TYPES[stage], data.get(key) if isinstance(data, dict)
                                             else None)
            except wire.WireError as exc:
                return TaskRun(tuple(layers), {"module": stage, "stage": "result", "layer": i,
                                               "message": f"its output does not fit the contract: {exc}"}, refused)
        layers.append(StageOutputs(task.workload.layers[i], **values))
    return TaskRun(tuple(layers), error, refused)


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Divergence:
    """The first place where the candidate's own pipeline differs from the reference.

    ``kind``: ``trace`` (``trace``, ``row``, ``column`` locate the first differing entry; column 0 is
    the cycle), ``figure`` (a report figure), ``error`` (a module raised or returned a wrong result;
    ``module`` and ``evidence`` say which and how), ``missing`` (fewer layers than expected).
    ``path``: ``traced``, ``untraced`` (the report-only path) or ``final_check``.
    """

    workload: str
    layer: int
    layer_name: str
    kind: str
    path: str = "traced"
    operand: str | None = None
    trace: str | None = None
    row: int | None = None
    column: int | None = None
    cycle: float | None = None
    figure: str | None = None
    expected: float | None = None
    actual: float | None = None
    module: str | None = None
    evidence: str = ""

    def describe(self) -> str:
        where = f"{self.workload} layer {self.layer} {self.layer_name!r}" + {
            "traced": "", "untraced": " (traces off)", "final_check": " (final check)"}.get(self.path, "")
        if self.kind == "trace":
            port = "the cycle column" if self.column == 0 else f"port {(self.column or 1) - 1}"
            return (f"{where}: {self.trace} trace row {self.row} (cycle {_num(self.cycle)}), {port}: "
                    f"expected {_num(self.expected)}, got {_num(self.actual)}{self.evidence}")
        if self.kind == "figure":
            return f"{where}: report figure {self.figure}: expected {_num(self.expected)}, got {_num(self.actual)}"
        if self.kind == "error":
            return f"{where}: the {self.module} module failed: {self.evidence}"
        return f"{where}: {self.evidence}"


def _num(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class CycleError:
    """Total cycles of one layer, expected and got; ``relative`` is ``(got - expected) / expected``."""

    workload: str
    layer: int
    name: str
    expected: float
    actual: float | None

    @property
    def relative(self) -> float | None:
        return None if self.actual is None else (self.actual - self.expected) / self.expected


def error_text(err: Mapping[str, Any]) -> str:
    stage = {"import": "import failed", "call": "raised", "result": "returned a wrong result"}.get(
        str(err.get("stage")), str(err.get("stage")))
    tb = str(err.get("traceback") or "")
    lines = [line.strip() for line in tb.splitlines() if line.strip().startswith("File ")]
    where = f" at {lines[-1][:160]}" if lines else ""
    return f"{stage}: {str(err.get('message', ''))[:300]}{where}"


def _trace_divergence(workload: str, index: int, name: str, expected: MemoryResult,
                      actual: MemoryResult) -> Divergence | None:
    """The earliest (by cycle, then trace order) first difference among the six traces of one layer."""
    assert expected.traces is not None
    if actual.traces is None:
        return Divergence(workload, index, name, "missing", evidence="simulate(traces=True) returned no traces")
    best: tuple[float, int, Divergence] | None = None
    for order, trace in enumerate(TRACE_NAMES):
        e = np.asarray(getattr(expected.traces, trace), dtype=np.float64)
        a = np.asarray(getattr(actual.traces, trace), dtype=np.float64)
        found = first_trace_difference(e, a)
        if found is None:
            continue
        row, col, note = found
        source = e if row < e.shape[0] else a
        cycle = float(source[row, 0]) if a.ndim == 2 and row < source.shape[0] else math.inf
        e_val = float(e[row, col]) if row < e.shape[0] and col < e.shape[1] else None
        a_val = float(a[row, col]) if a.ndim == 2 and row < a.shape[0] and col < a.shape[1] else None
        div = Divergence(workload, index, name, "trace", operand=trace.split("_")[0], trace=trace, row=row,
                         column=col, cycle=cycle, expected=e_val, actual=a_val,
                         evidence=note + (_row_context(e, a, row, col) if a.ndim == 2 else ""))
        if best is None or (cycle, order) < best[:2]:
            best = (cycle, order, div)
    return best[2] if best is not None else None


def _row_context(expected: np.ndarray, actual: np.ndarray, row: int, column: int, width: int = 5) -> str:
    """The differing row around ``column``: the cycle, then up to ``width`` ports centred on it."""
    first = max(1, min(column - width // 2, expected.shape[1] - width))

    def show(a: np.ndarray) -> str:
        if row >= a.shape[0]:
            return "(no row)"
        ports = [_num(float(v)) for v in a[row, first:first + width]]
        return ("[" + _num(float(a[row, 0])) + (", ..., " if first > 1 else ", ") + ", ".join(ports)
                + (", ...]" if a.shape[1] > first + width else "]"))

    return f"; expected row {show(expected)}, got {show(actual)}"


def compare_pipeline(task: Task, run: TaskRun, path: str) -> tuple[list[CycleError], Divergence | None]:
    """Cycle errors of every layer and the first divergence of an end-to-end task from the reference."""
    traced = path == "traced"
    expected = reference_run(task.workload, traced)
    errors: list[CycleError] = []
    first: Divergence | None = None
    for i, ref in enumerate(expected):
        got = run.layers[i] if i < len(run.layers) else None
        figures = None
        if got is not None and got.mapping is not None and got.memory is not None:
            try:
                figures = figures_of(ref.layer, task.workload.hardware, got.mapping, got.memory)
            except (ArithmeticError, KeyError, TypeError, ValueError) as exc:
                first = first or Divergence(task.workload.id, i, ref.layer.name, "error", path, module="memory",
                                            evidence=f"its result gives no report figures ({type(exc).__name__}: "
                                                     f"{str(exc)[:200]})")
        errors.append(CycleError(task.workload.id, i, ref.layer.name, ref.figures["total_cycles"],
                                 figures["total_cycles"] if figures is not None else None))
        if first is not None:
            continue
        if got is None:
            if run.error is not None:
                first = Divergence(task.workload.id, i, ref.layer.name, "error", path,
                                   module=str(run.error.get("module")), evidence=error_text(run.error))
            else:
                first = Divergence(task.workload.id, i, ref.layer.name, "missing", path,
                                   evidence=f"the run has {len(run.layers)} layers, expected {len(expected)}")
            continue
        if traced and got.memory is not None:
            first = _trace_divergence(task.workload.id, i, ref.layer.name, ref.memory, got.memory)
            if first is not None:
                first = dataclasses.replace(first, path=path)
        if first is None and figures is not None:
            name = first_figure_difference(FIGURES, ref.figures, figures)
            if name is not None:
                first = Divergence(task.workload.id, i, ref.layer.name, "figure", path, figure=name,
                                   expected=ref.figures[name], actual=figures[name])
    return errors, first


@dataclass(frozen=True)
class StageEvidence:
    """A candidate module's output on the reference's inputs to its stage, where it first differs.

    ``field`` is the contract path (``MemoryResult.dram_start_stop.filter[1]``), ``index`` the array
    index (for traces ``(row, column)``; for ``fold_order`` the fold), ``error`` the module's fault
    when it raised or returned something that is not the contract's type.
    """

    stage: str
    given: str
    workload: str
    layer: int
    layer_name: str
    traces: bool
    field: str = ""
    index: tuple[int, ...] | None = None
    expected: str = ""
    actual: str = ""
    error: str = ""

    def describe(self) -> str:
        where = (f"{self.stage}({self.given}) on {self.workload} layer {self.layer} {self.layer_name!r}"
                 + ("" if self.stage != "memory" else " with traces" if self.traces else " with traces off"))
        if self.error:
            return f"{where}: {self.error}"
        index = f" at index {list(self.index)}" if self.index is not None else ""
        return f"{where}: {self.field}{index}: expected {self.expected}, got {self.actual}"


STAGE_GIVEN = {"mapping": "layer, hardware", "network": "reference mapping",
               "memory": "reference mapping and schedule"}


def _short(value: Any) -> str:
    text = _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def first_field_difference(expected: Any, actual: Any, path: str) -> tuple[str, tuple[int, ...] | None, str,
                                                                            str] | None:
    """``(field, index, expected, actual)`` of the first difference of two contract values, or ``None``."""
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        for f in dataclasses.fields(expected):
            found = first_field_difference(getattr(expected, f.name), getattr(actual, f.name, None),
                                           f"{path}.{f.name}")
            if found is not None:
                return found
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(expected) != set(actual):
            return path, None, _short(sorted(expected)), _short(sorted(actual) if isinstance(actual, dict) else actual)
        for key in expected:
            found = first_field_difference(expected[key], actual[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(expected, tuple) and not isinstance(expected, np.ndarray):
        if not isinstance(actual, tuple) or len(actual) != len(expected):
            return path, None, _short(expected), _short(actual)
        for i, (e, a) in enumerate(zip(expected, actual)):
            found = first_field_difference(e, a, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(expected, np.ndarray):
        a = np.asarray(actual)
        e = np.asarray(expected)
        if e.ndim == 2 and a.ndim == 2:
            trace = first_trace_difference(e.astype(np.float64), a.astype(np.float64))
            if trace is None:
                return None
            row, col, note = trace
            exp_v = _short(float(e[row, col])) if row < e.shape[0] and col < e.shape[1] else "nothing"
            act_v = _short(float(a[row, col])) if row < a.shape[0] and col < a.shape[1] else "nothing"
            return path, (row, col), exp_v, act_v + note
        if e.shape != a.shape:
            return path, None, f"shape {e.shape}", f"shape {a.shape}"
        bad = np.flatnonzero(e.reshape(-1) != a.reshape(-1))
        if bad.size == 0:
            return None
        where = tuple(int(x) for x in np.unravel_index(int(bad[0]), e.shape))
        return path, where, _short(e.reshape(-1)[bad[0]].item()), _short(a.reshape(-1)[bad[0]].item())
    if isinstance(expected, float) or isinstance(actual, float):
        if isinstance(actual, (int, float)) and values_equal(float(expected), float(actual)):
            return None
        return path, None, _short(expected), _short(actual)
    if expected != actual:
        return path, None, _short(expected), _short(actual)
    return None


def compare_stage(task: Task, run: TaskRun) -> StageEvidence | None:
    """The first layer where a per-stage task's output differs from the reference's."""
    stage = task.start
    reference = reference_run(task.workload, task.traces)
    for i, ref in enumerate(reference):
        got = run.layers[i] if i < len(run.layers) else None
        base: dict[str, Any] = {"stage": stage, "given": STAGE_GIVEN[stage], "workload": task.workload.id, "layer": i,
                "layer_name": ref.layer.name, "traces": task.traces}
        if got is None:
            error = error_text(run.error) if run.error is not None else "no output"
            return StageEvidence(**base, error=error)
        expected: Any = {"mapping": ref.mapping, "network": ref.schedule, "memory": ref.memory}[stage]
        actual: Any = {"mapping": got.mapping, "network": got.schedule, "memory": got.memory}[stage]
        if stage == "memory" and not task.traces:
            expected = dataclasses.replace(expected, traces=None)
            actual = dataclasses.replace(actual, traces=None) if actual is not None else None
        found = first_field_difference(expected, actual, wire.STAGE_TYPES[stage])
        if found is not None:
            path, index, exp, act = found
            return StageEvidence(**base, field=path, index=index, expected=exp, actual=act)
    return None


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class Blame:
    """Which modules the per-stage evidence blames, that evidence, and what substitution added."""

    modules: tuple[str, ...]
    stages: tuple[StageEvidence, ...]
    evidence: tuple[str, ...]
    seconds: float
    outcome: Outcome = Outcome.PASSED
    """How the per-stage run itself ended (``passed`` when it ran to the end)."""


@dataclass(frozen=True)
class Verification:
    """The verifier's answer for one candidate."""

    outcome: Outcome
    message: str
    divergence: Divergence | None
    cycle_errors: tuple[CycleError, ...]
    failing_workloads: tuple[str, ...]
    blame: Blame | None
    diagnosis: str
    seconds: float
    """Static check, end-to-end run and comparison (the per-stage run excluded; see ``blame.seconds``)."""
    refusals: tuple[str, ...] = ()
    """What the static check or the run-time guard refused (``file:line: what (why)``)."""
    stdout_tail: str = ""
    stderr_tail: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    """Harness seconds per path (``traced``, ``untraced``, ``final_check``) and the run's wall time."""
    checked: tuple[tuple[str, str, bool], ...] = ()
    """Each end-to-end task: ``(path, workload id, matched)``."""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def blamed(self) -> tuple[str, ...]:
        return self.blame.modules if self.blame is not None else ()

    @property
    def total_cycle_error(self) -> float | None:
        """Relative error of the summed total cycles over the layers the candidate produced."""
        pairs = [(e.expected, e.actual) for e in self.cycle_errors if e.actual is not None]
        if not pairs:
            return None
        expected = sum(p[0] for p in pairs)
        return (sum(p[1] for p in pairs if p[1] is not None) - expected) / expected


PATHS = ("traced", "untraced", "final_check")


def _end_to_end_tasks(suite: Sequence[Workload], final_check: Sequence[Workload]) -> list[tuple[str, Task]]:
    tasks = [(path, Task(f"{path}/{w.id}", w, "mapping", "memory", path == "traced"))
             for path in ("traced", "untraced") for w in suite]
    return tasks + [("final_check", Task(f"final_check/{w.id}", w, "mapping", "memory", False))
                    for w in final_check]


def _rejected(outcome: Outcome, message: str, start: float, **extra: Any) -> Verification:
    diagnosis = _bounded(f"REJECTED ({outcome.value}): {message}")
    return Verification(outcome, message, None, (), (), None, diagnosis, time.perf_counter() - start, **extra)


def static_check(folder: Path) -> tuple[Outcome, str, tuple[str, ...]] | None:
    """``None`` when the candidate's sources pass the rules; else the outcome, a message and the refusals."""
    try:
        refusals = rules.check_folder(folder)
    except SyntaxError as exc:
        where = f"{Path(exc.filename or '?').name}:{exc.lineno}"
        return Outcome.CRASHED, f"{where}: the source does not parse: {exc.msg}", ()
    except OSError as exc:
        return Outcome.CRASHED, f"the candidate folder cannot be read: {exc}", ()
    if not refusals:
        return None
    lines = tuple(r.describe() for r in refusals)
    return (Outcome.FORBIDDEN, f"the candidate uses what the rules forbid: {lines[0]}"
            + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""), lines)


def verify(executor: Executor, suite: Sequence[Workload] | None = None, *,
           final_check: Sequence[Workload] | None = None, blame: bool = True) -> Verification:
    """Judge the candidate on ``suite`` (default: scale_sim.yaml's) with traces, without, and on ``final_check``."""
    suite = tuple(suite) if suite is not None else default_suite()
    final_check = tuple(final_check) if final_check is not None else default_final_check()
    start = time.perf_counter()
    require_expected(suite, final_check)
    folder = executor.candidate_dir
    if folder is not None:
        found = static_check(folder)
        if found is not None:
            outcome, message, lines = found
            return _rejected(outcome, message, start, refusals=lines)
    tasks = _end_to_end_tasks(suite, final_check)
    job, arrays = make_job([t for _, t in tasks])
    execution = executor.run(job, arrays)
    tails: dict[str, Any] = {"stdout_tail": execution.stdout_tail, "stderr_tail": execution.stderr_tail}
    try:
        if execution.outcome is not Outcome.PASSED or execution.manifest is None:
            return _rejected(execution.outcome, execution.message
                             + (f"\nstderr tail: {execution.stderr_tail[-400:]}" if execution.stderr_tail else ""),
                             start, **tails)
        manifest = execution.manifest
        errors: list[CycleError] = []
        failing: list[str] = []
        first: Divergence | None = None
        refused: list[str] = []
        import_faults: list[str] = []
        timings = {path: 0.0 for path in PATHS}
        checked: list[tuple[str, str, bool]] = []
        for index, (path, task) in enumerate(tasks):
            try:
                run = read_task(execution, index, task)
            except BadOutputError as exc:
                return _rejected(Outcome.BAD_OUTPUT, f"The harness's output is not acceptable: {exc}", start,
                                 **tails)
            timings[path] += float(manifest["tasks"][index].get("seconds") or 0.0)
            refused += [r for r in run.refused if r not in refused]
            if run.error is not None and run.error.get("stage") == "import":
                module = str(run.error.get("module"))
                if module not in import_faults:
                    import_faults.append(module)
            layer_errors, div = compare_pipeline(task, run, path)
            if path != "untraced":
                errors += layer_errors
            checked.append((path, task.workload.id, div is None))
            if div is not None:
                if task.workload.id not in failing:
                    failing.append(task.workload.id)
                first = first or div
        timings["run"] = execution.seconds
    finally:
        execution.close()
    seconds = time.perf_counter() - start
    if refused:
        message = f"the run-time guard refused {len(refused)} access(es): {refused[0]}"
        return Verification(Outcome.FORBIDDEN, message, first, tuple(errors), tuple(failing), None,
                            _bounded(f"REJECTED (forbidden): {message}"), seconds, tuple(refused), timings=timings,
                            checked=tuple(checked), **tails)
    if first is None:
        message = (f"The candidate matches the reference on {len(suite)} workloads with and without traces"
                   f" and on {len(final_check)} final-check workload(s) ({len(errors)} layers).")
        return Verification(Outcome.PASSED, message, None, tuple(errors), (), None, f"PASSED: {message}", seconds,
                            timings=timings, checked=tuple(checked), **tails)
    crashed = first.kind == "error" or bool(import_faults)
    outcome = Outcome.CRASHED if crashed else Outcome.WRONG_RESULT
    if import_faults:
        found_blame: Blame | None = Blame(tuple(m for m in ROLES if m in import_faults), (), tuple(
            f"the {m} module does not import (not run again for blame)" for m in import_faults), 0.0)
    else:
        by_id = {w.id: w for w in (*suite, *final_check)}
        found_blame = stage_blame(executor, [by_id[w] for w in failing]) if blame else None
    message = (f"The candidate differs from the reference on {len(failing)} of {len(suite) + len(final_check)} "
               f"workloads; first divergence: {first.describe()}")
    result = Verification(outcome, message, first, tuple(errors), tuple(failing), found_blame, "", seconds,
                          timings=timings, checked=tuple(checked), **tails)
    return dataclasses.replace(result, diagnosis=diagnose(result))


def stage_blame(executor: Executor, workloads: Sequence[Workload]) -> Blame:
    """Run every candidate module on the reference's inputs to its stage (one job) and blame those that differ."""
    start = time.perf_counter()
    tasks: list[Task] = []
    for w in workloads:
        traced = not w.id.endswith("@final_check")
        tasks += [Task(f"stage-mapping/{w.id}", w, "mapping", "mapping", False),
                  Task(f"stage-network/{w.id}", w, "network", "network", False)]
        if traced:
            tasks.append(Task(f"stage-memory/{w.id}", w, "memory", "memory", True))
        tasks.append(Task(f"stage-memory-untraced/{w.id}", w, "memory", "memory", False))
        if traced:
            tasks.append(Task(f"from-network/{w.id}", w, "network", "memory", True))
    job, arrays = make_job(tasks)
    execution = executor.run(job, arrays)
    try:
        if execution.outcome is not Outcome.PASSED or execution.manifest is None:
            return Blame((), (), (f"the per-stage run ended {execution.outcome.value}: {execution.message}",),
                         time.perf_counter() - start, execution.outcome)
        stages: dict[str, StageEvidence] = {}
        substitution: list[str] = []
        suffix_runs: list[Divergence | None] = []
        for index, task in enumerate(tasks):
            try:
                run = read_task(execution, index, task)
            except BadOutputError as exc:
                substitution.append(f"{task.id}: unreadable output ({exc})")
                continue
            if task.id.startswith("from-network/"):
                suffix_runs.append(compare_pipeline(task, run, "traced")[1])
                continue
            if task.start in stages:
                continue
            evidence = compare_stage(task, run)
            if evidence is not None:
                stages[task.start] = evidence
    finally:
        execution.close()
    diverging = [div for div in suffix_runs if div is not None]
    if suffix_runs:
        substitution.append("with the reference's mapping, the candidate's network and memory " + (
            f"still diverge on {len(diverging)} of {len(suffix_runs)} workloads, first at {diverging[0].workload} "
            f"layer {diverging[0].layer} ({diverging[0].kind} {diverging[0].trace or diverging[0].figure or ''})"
            if diverging else f"match on all {len(suffix_runs)} workloads"))
    ordered = tuple(stages[role] for role in ROLES if role in stages)
    modules = tuple(e.stage for e in ordered)
    notes = tuple(substitution) if len(modules) > 1 else ()
    if not modules:
        return Blame(ROLES, (), ("every module matches the reference on the reference's inputs, yet the candidate's "
                                 "own pipeline diverges: its modules disagree on the interface",
                                 *substitution), time.perf_counter() - start)
    return Blame(modules, ordered, notes, time.perf_counter() - start)


# --------------------------------------------------------------------------- diagnosis


def _bounded(text: str, limit: int = DIAGNOSIS_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def diagnose(result: Verification) -> str:
    """A short diagnosis for the repairer: the blamed module and its stage evidence first, then the rest."""
    if result.passed:
        return f"PASSED: {result.message}"
    lines = [f"REJECTED ({result.outcome.value})."]
    if result.blame is not None and result.blame.modules:
        lines[0] += f" Blamed: {', '.join(result.blame.modules)}."
        for evidence in result.blame.stages[:3]:
            lines.append(f"Stage evidence: {evidence.describe()}.")
        lines += [f"Note: {note}." for note in result.blame.evidence[:2]]
    if result.divergence is not None:
        lines.append(f"End to end, first divergence: {result.divergence.describe()}.")
    lines.append(f"Failing workloads ({len(result.failing_workloads)}): {', '.join(result.failing_workloads[:4])}"
                 + (" ..." if len(result.failing_workloads) > 4 else "") + ".")
    wrong = [e for e in result.cycle_errors if e.actual is None or e.actual != e.expected]
    if wrong:
        parts = [f"{e.workload} L{e.layer} {_num(e.expected)}->{_num(e.actual) if e.actual is not None else 'none'}"
                 for e in wrong[:3]]
        total = result.total_cycle_error
        lines.append(f"Cycle errors in {len(wrong)} of {len(result.cycle_errors)} layers: " + ", ".join(parts)
                     + (f"; total {total:+.3%}." if total is not None else "."))
    return _bounded("\n".join(lines))


def reference_modules() -> dict[str, ModuleType]:
    """The reference's three modules (the candidate that must pass)."""
    return {role: getattr(engine.REFERENCE, role) for role in ROLES}
