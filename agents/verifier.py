"""The verifier: run a candidate simulator on the workload suite, diff it against the reference, blame a module.

Pure functions, no LangGraph.  Execution is behind :class:`Executor`: :class:`InProcessExecutor` calls
the modules directly (unit tests, the mutant power test) and :class:`SandboxExecutor` runs
``sandbox/runner.py`` in one sandbox container per call (all workloads inside).  The flow of
:func:`verify`:

1. run the candidate (all three modules its own) on every workload of the suite;
2. compare each layer's report figures and six traces with the reference's (computed in-process
   and cached): per-layer and total cycle error, and the **first divergence** (the earliest
   differing trace row of the first differing layer, or the first differing figure);
3. on a failure, **blame by substitution**: re-run with each candidate module swapped for the
   reference one (one more container); the module whose swap removes the divergence is blamed;
   when no single swap does, pairs are tried and every module involved is named;
4. a bounded diagnosis text for the repairer.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reference_sim.contract import Hardware, Layer
from reference_sim.reports import BINARY_TRACE_FILE
from sandbox.base import CODE_MOUNT, Outcome, Sandbox
from sandbox.runner import (
    FIGURES,
    JOB_FILE,
    JOB_FORMAT,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    REPORTS_FILE,
    ROLES,
    TRACE_NAMES,
    CandidateLoader,
    LayerRecord,
    ModuleAdapter,
    ModuleFaultError,
    RunRecord,
    reference_adapters,
    run_workload,
    trace_digest,
    trace_key,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO_ROOT / "scale_sim.yaml"
RUNNER_COMMAND = ("python3", f"{CODE_MOUNT}/sandbox/runner.py")
REL_TOL = 1e-9
DIAGNOSIS_CHARS = 1200
MANIFEST_LIMIT_BYTES = 4 * 1024 * 1024
REPORTS_LIMIT_BYTES = 4 * 1024 * 1024
CANDIDATE = "candidate"


# --------------------------------------------------------------------------- the suite


@dataclass(frozen=True)
class Workload:
    """One verification workload: layers on one architecture (``id`` is ``<workload>@<variant>``)."""

    id: str
    hardware: Hardware
    layers: tuple[Layer, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "hardware": dataclasses.asdict(self.hardware),
                "layers": [dataclasses.asdict(layer) for layer in self.layers]}


Suite = tuple[Workload, ...]


def load_suite(spec_path: str | Path = DEFAULT_SPEC) -> Suite:
    """The spec's verification suite: every ``verification.workloads`` entry under every variant."""
    from reference_sim.spec import load_spec

    loaded = load_spec(spec_path)
    verification = loaded.spec.verification
    if verification is None:
        raise ValueError(f"{spec_path}: the spec has no verification section")
    return tuple(
        Workload(f"{name}@{variant.name}", loaded.spec.hardware(variant), tuple(loaded.workload(name)))
        for name in verification.workloads
        for variant in verification.variants
    )


@functools.cache
def default_suite() -> Suite:
    """``scale_sim.yaml``'s suite: ``edge_cases`` under its six architecture variants."""
    return load_suite(DEFAULT_SPEC)


# --------------------------------------------------------------------------- mixes and jobs


@dataclass(frozen=True)
class Mix:
    """Which roles use the candidate's module (the others use the reference's)."""

    id: str
    candidate_roles: frozenset[str]

    def modules(self) -> dict[str, str]:
        return {role: CANDIDATE if role in self.candidate_roles else "reference" for role in ROLES}

    @property
    def swapped(self) -> tuple[str, ...]:
        """Roles replaced by the reference."""
        return tuple(role for role in ROLES if role not in self.candidate_roles)


CANDIDATE_MIX = Mix(CANDIDATE, frozenset(ROLES))


def swap_mix(*roles: str) -> Mix:
    """The candidate with ``roles`` swapped for the reference's modules."""
    return Mix("swap-" + "+".join(roles), frozenset(ROLES) - frozenset(roles))


SINGLE_SWAPS: tuple[Mix, ...] = tuple(swap_mix(role) for role in ROLES)
PAIR_SWAPS: tuple[Mix, ...] = tuple(swap_mix(a, b) for i, a in enumerate(ROLES) for b in ROLES[i + 1 :])


def make_job(suite: Sequence[Workload], mixes: Sequence[Mix], *, traces: bool = True,
             digests: bool = False) -> dict[str, Any]:
    """The runner's job document (see docs/verifier.md); ``digests``: trace fingerprints instead of traces."""
    return {"format": JOB_FORMAT, "traces": traces, "compress_traces": False, "trace_digests": digests,
            "workloads": [w.to_json() for w in suite],
            "mixes": [{"id": m.id, "modules": m.modules()} for m in mixes]}


# --------------------------------------------------------------------------- execution


class BadOutputError(ValueError):
    """The runner's output (manifest, reports, traces) is missing or malformed."""


@dataclass
class Execution:
    """The result of running one job: how the run ended and a lazy view of its run records."""

    outcome: Outcome
    message: str
    seconds: float
    fetch: Callable[[str, str], RunRecord] | None = None
    cleanup: Callable[[], None] | None = None
    stderr_tail: str = ""
    _cache: dict[tuple[str, str], RunRecord] = field(default_factory=dict)

    def record(self, mix: str, workload: str) -> RunRecord:
        """The run of ``mix`` over ``workload``; raises :class:`BadOutputError` when it is missing or malformed."""
        key = (mix, workload)
        if key not in self._cache:
            if self.fetch is None:
                raise BadOutputError(f"no run of {mix} over {workload}: {self.message}")
            self._cache[key] = self.fetch(mix, workload)
        return self._cache[key]

    def close(self) -> None:
        self._cache.clear()
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None


class Executor(Protocol):
    """Runs a job (workloads x mixes) and returns its records."""

    def run(self, job: dict[str, Any]) -> Execution: ...


class InProcessExecutor:
    """Runs mixes in this process: candidate modules given as objects, or loaded from a folder.

    Runs are computed lazily, one (mix, workload) at a time, so the verifier's early exits save work.
    No isolation: for tests and trusted code only.
    """

    def __init__(self, candidate: Mapping[str, Any] | Path) -> None:
        self._loader = CandidateLoader(candidate) if isinstance(candidate, Path) else None
        self._modules = dict(candidate) if not isinstance(candidate, Path) else {}
        self._reference = reference_adapters()

    def _module(self, role: str) -> Any:
        if self._loader is not None:
            return self._loader.module(role)
        return ModuleAdapter(role, self._modules[role])

    def run(self, job: dict[str, Any]) -> Execution:
        start = time.perf_counter()
        workloads = {str(w["id"]): w for w in job["workloads"]}
        mixes = {str(m["id"]): m["modules"] for m in job["mixes"]}
        traces = bool(job.get("traces", True))

        def fetch(mix: str, workload: str) -> RunRecord:
            if mix not in mixes or workload not in workloads:
                raise BadOutputError(f"the job has no run of {mix} over {workload}")
            try:
                modules = {role: self._reference[role] if source == "reference" else self._module(role)
                           for role, source in mixes[mix].items()}
            except ModuleFaultError as fault:
                return RunRecord(mix, workload, "error", error=fault.as_dict())
            return run_workload(mix, workloads[workload], modules, traces=traces)

        return Execution(Outcome.PASSED, "ran in-process", time.perf_counter() - start, fetch)


class SandboxExecutor:
    """Runs each job in one sandbox container: ``sandbox/runner.py`` over the candidate folder."""

    def __init__(self, sandbox: Sandbox, candidate_dir: Path, *, timeout_s: float | None = None,
                 workdir: Path | None = None, workers: int | None = None) -> None:
        self.sandbox = sandbox
        self.candidate_dir = candidate_dir
        self.timeout_s = timeout_s
        self.workdir = workdir
        config = getattr(sandbox, "config", None)
        cpus = getattr(config, "cpus", 1.0)
        self.workers = workers if workers is not None else max(1, math.floor(cpus))
        """Processes the runner forks to share the workloads (default: the sandbox's whole CPUs)."""

    def run(self, job: dict[str, Any]) -> Execution:
        start = time.perf_counter()
        base = Path(tempfile.mkdtemp(prefix="simcoder-verify-", dir=self.workdir))
        inputs, out = base / "inputs", base / "out"
        inputs.mkdir()
        (inputs / JOB_FILE).write_text(json.dumps({**job, "workers": self.workers}))

        def cleanup() -> None:
            shutil.rmtree(base, ignore_errors=True)

        try:
            result = self.sandbox.run(self.candidate_dir, inputs, out, list(RUNNER_COMMAND), timeout_s=self.timeout_s)
        except BaseException:
            cleanup()
            raise
        tail = result.stderr[-600:]
        if not result.passed:
            return Execution(result.outcome, result.message, time.perf_counter() - start, None, cleanup, tail)
        try:
            runs = _read_manifest(out)
        except BadOutputError as exc:
            return Execution(Outcome.BAD_OUTPUT, f"The runner's output is not acceptable: {exc}",
                             time.perf_counter() - start, None, cleanup, tail)

        def fetch(mix: str, workload: str) -> RunRecord:
            entry = runs.get((mix, workload))
            if entry is None:
                raise BadOutputError(f"the manifest has no run of {mix} over {workload}")
            return _read_run(out, entry)

        return Execution(Outcome.PASSED, result.message, time.perf_counter() - start, fetch, cleanup, tail)


def _read_json(path: Path, limit: int) -> Any:
    try:
        size = path.stat().st_size
    except OSError:
        raise BadOutputError(f"{path.name} is missing") from None
    if size > limit:
        raise BadOutputError(f"{path.name} is {size} bytes (limit {limit})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadOutputError(f"{path.name} is not valid JSON ({type(exc).__name__})") from None


def _read_manifest(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    manifest = _read_json(out / MANIFEST_FILE, MANIFEST_LIMIT_BYTES)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(
            manifest.get("runs"), list):
        raise BadOutputError(f"{MANIFEST_FILE} is not a {MANIFEST_FORMAT} document")
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in manifest["runs"]:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("mix", "workload", "dir",
                                                                                       "status")):
            raise BadOutputError(f"{MANIFEST_FILE} has a malformed run entry")
        runs[(entry["mix"], entry["workload"])] = entry
    return runs


def _safe_dir(out: Path, relative: str) -> Path:
    folder = (out / relative).resolve()
    if out.resolve() not in folder.parents:
        raise BadOutputError(f"run folder {relative!r} is outside the output folder")
    return folder


def _read_run(out: Path, entry: dict[str, Any]) -> RunRecord:
    folder = _safe_dir(out, entry["dir"])
    data = _read_json(folder / REPORTS_FILE, REPORTS_LIMIT_BYTES)
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise BadOutputError(f"{entry['dir']}/{REPORTS_FILE} is malformed")
    error = entry.get("error")
    record = RunRecord(entry["mix"], entry["workload"], entry["status"],
                       error=error if isinstance(error, dict) else None)
    npz = folder / BINARY_TRACE_FILE
    arrays: Any = None
    try:
        if npz.is_file():
            arrays = np.load(npz, allow_pickle=False)
        for i, layer in enumerate(data["layers"]):
            try:
                figures = {name: float(layer["figures"][name]) for name in FIGURES}
                index, name = int(layer["index"]), str(layer["name"])
            except (KeyError, TypeError, ValueError):
                raise BadOutputError(f"{entry['dir']}/{REPORTS_FILE}: layer {i} is malformed") from None
            digests = layer.get("digests")
            if digests is not None and not (isinstance(digests, dict) and all(
                    isinstance(digests.get(key), str) for key in TRACE_NAMES)):
                raise BadOutputError(f"{entry['dir']}/{REPORTS_FILE}: layer {i} has malformed digests")
            traces = None
            if arrays is not None and trace_key(index, TRACE_NAMES[0]) in arrays.files:
                traces = {key: np.asarray(arrays[trace_key(index, key)], dtype=np.float64) for key in TRACE_NAMES}
            record.layers.append(LayerRecord(index, name, figures, traces, digests))
    except (OSError, KeyError, ValueError, EOFError) as exc:
        if isinstance(exc, BadOutputError):
            raise
        raise BadOutputError(f"{entry['dir']}/{BINARY_TRACE_FILE} is unreadable ({type(exc).__name__})") from None
    finally:
        if arrays is not None:
            arrays.close()
    return record


# --------------------------------------------------------------------------- expected results


@functools.lru_cache(maxsize=32)
def _reference_run(workload: Workload) -> RunRecord:
    return run_workload("reference", workload.to_json(), reference_adapters(), traces=True)


def reference_records(suite: Sequence[Workload]) -> dict[str, RunRecord]:
    """The reference's runs of the suite (in-process, cached per workload)."""
    return {w.id: _reference_run(w) for w in suite}


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Divergence:
    """The first place where the candidate differs from the reference.

    ``kind``: ``trace`` (a trace row differs: ``trace`` names it, ``row``/``column`` locate the first
    differing entry, column 0 being the cycle), ``figure`` (traces equal, a report figure differs),
    ``error`` (a module raised or returned the wrong type; ``module`` and ``evidence`` say which and
    how), ``missing`` (fewer layers or runs than expected).
    """

    workload: str
    layer: int
    layer_name: str
    kind: str
    operand: str | None = None
    trace: str | None = None
    row: int | None = None
    column: int | None = None
    cycle: float | None = None
    expected: Any = None
    actual: Any = None
    figure: str | None = None
    module: str | None = None
    evidence: str = ""

    def describe(self) -> str:
        where = f"workload {self.workload}, layer {self.layer} {self.layer_name!r}"
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


def _figures_equal(expected: Mapping[str, float], actual: Mapping[str, float]) -> str | None:
    """The first figure that differs, or ``None``."""
    for name in FIGURES:
        e, a = expected[name], actual[name]
        if not abs(e - a) <= REL_TOL * max(1.0, abs(e)):
            return name
    return None


def first_trace_difference(expected: np.ndarray, actual: np.ndarray) -> tuple[int, int, str] | None:
    """``(row, column, note)`` of the first difference of two traces, or ``None`` when equal (no row loop)."""
    if expected.shape[1] != actual.shape[1]:
        return 0, min(expected.shape[1], actual.shape[1]), (
            f" (the trace has {actual.shape[1] - 1} ports, expected {expected.shape[1] - 1})")
    rows = min(expected.shape[0], actual.shape[0])
    diff = expected[:rows] != actual[:rows]
    bad = np.flatnonzero(diff.any(axis=1))
    if bad.size:
        row = int(bad[0])
        return row, int(np.flatnonzero(diff[row])[0]), ""
    if expected.shape[0] != actual.shape[0]:
        return rows, 0, f" (the trace has {actual.shape[0]} rows, expected {expected.shape[0]})"
    return None


def _trace_divergence(workload: str, exp: LayerRecord, got: LayerRecord) -> Divergence | None:
    """The earliest (by cycle, then trace order) first difference among the six traces of one layer."""
    assert exp.traces is not None
    if got.traces is None and got.digests is not None:
        if exp.digests is None:
            exp.digests = {name: trace_digest(array) for name, array in exp.traces.items()}
        for name in TRACE_NAMES:
            if got.digests[name] != exp.digests[name]:
                return Divergence(workload, exp.index, exp.name, "trace", operand=name.split("_")[0], trace=name,
                                  evidence=" (trace digests differ)")
        return None
    if got.traces is None:
        return Divergence(workload, exp.index, exp.name, "missing", evidence="the run wrote no traces")
    best: tuple[float, int, Divergence] | None = None
    for order, name in enumerate(TRACE_NAMES):
        e, a = exp.traces[name], got.traces[name]
        found = first_trace_difference(e, a)
        if found is None:
            continue
        row, col, note = found
        source = e if row < e.shape[0] else a
        cycle = float(source[row, 0]) if row < source.shape[0] else math.inf
        e_val = float(e[row, col]) if row < e.shape[0] and col < e.shape[1] else None
        a_val = float(a[row, col]) if row < a.shape[0] and col < a.shape[1] else None
        div = Divergence(workload, exp.index, exp.name, "trace", operand=name.split("_")[0], trace=name, row=row,
                         column=col, cycle=cycle, expected=e_val, actual=a_val,
                         evidence=note + _row_context(e, a, row))
        if best is None or (cycle, order) < best[:2]:
            best = (cycle, order, div)
    return best[2] if best is not None else None


def _row_context(expected: np.ndarray, actual: np.ndarray, row: int, width: int = 6) -> str:
    def show(a: np.ndarray) -> str:
        if row >= a.shape[0]:
            return "(no row)"
        values = [_num(float(v)) for v in a[row, :width]]
        return "[" + ", ".join(values) + (", ...]" if a.shape[1] > width else "]")

    return f"; expected row {show(expected)}, got {show(actual)}"


def compare_run(workload: str, expected: RunRecord, actual: RunRecord) -> tuple[list[CycleError], Divergence | None]:
    """Cycle errors of every layer the run produced, and its first divergence from the reference."""
    errors: list[CycleError] = []
    first: Divergence | None = None
    for exp in expected.layers:
        got = actual.layers[exp.index] if exp.index < len(actual.layers) else None
        errors.append(CycleError(workload, exp.index, exp.name, exp.figures["total_cycles"],
                                 got.figures["total_cycles"] if got is not None else None))
        if first is not None:
            continue
        if got is None:
            if actual.status == "error" and actual.error is not None:
                err = actual.error
                first = Divergence(workload, exp.index, exp.name, "error", module=str(err.get("module")),
                                   evidence=_error_text(err))
            else:
                first = Divergence(workload, exp.index, exp.name, "missing",
                                   evidence=f"the run has {len(actual.layers)} layers, expected {len(expected.layers)}")
            continue
        first = _trace_divergence(workload, exp, got) if exp.traces is not None else None
        if first is None:
            name = _figures_equal(exp.figures, got.figures)
            if name is not None:
                first = Divergence(workload, exp.index, exp.name, "figure", figure=name,
                                   expected=exp.figures[name], actual=got.figures[name])
    return errors, first


def _error_text(err: Mapping[str, Any]) -> str:
    stage = {"import": "import failed", "call": "raised", "result": "returned a wrong result"}.get(
        str(err.get("stage")), str(err.get("stage")))
    source = " (reference module, fed by the candidate's data)" if err.get("source") == "reference" else ""
    tb = str(err.get("traceback") or "")
    where = ""
    lines = [line.strip() for line in tb.splitlines() if line.strip().startswith("File ")]
    if lines:
        where = f" at {lines[-1][:160]}"
    return f"{stage}{source}: {str(err.get('message', ''))[:300]}{where}"


def _matches(execution: Execution, mix: str, workloads: Sequence[str],
             expected: Mapping[str, RunRecord]) -> tuple[bool, Divergence | None]:
    """Whether ``mix`` equals the reference on ``workloads`` (stops at the first divergence)."""
    for w in workloads:
        _, div = compare_run(w, expected[w], execution.record(mix, w))
        if div is not None:
            return False, div
    return True, None


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class Blame:
    """Which modules blame by substitution names, and what each swap showed."""

    modules: tuple[str, ...]
    evidence: tuple[str, ...]
    seconds: float
    outcome: Outcome = Outcome.PASSED
    """How the blame run itself ended (``passed`` when its container ran to the end)."""


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
    """Run plus diff (blame excluded; see ``blame.seconds``)."""

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


def verify(executor: Executor, suite: Sequence[Workload] | None = None, *, blame: bool = True) -> Verification:
    """Run the candidate on ``suite`` (default: scale_sim.yaml's), compare with the reference, blame a module."""
    suite = tuple(suite) if suite is not None else default_suite()
    start = time.perf_counter()
    expected = reference_records(suite)
    execution = executor.run(make_job(suite, [CANDIDATE_MIX]))
    errors: list[CycleError] = []
    failing: list[str] = []
    first: Divergence | None = None
    crashed = False
    try:
        if execution.outcome is not Outcome.PASSED:
            message = execution.message
            diagnosis = _bounded(f"REJECTED ({execution.outcome.value}): {message}"
                                 + (f"\nstderr tail: {execution.stderr_tail[-400:]}" if execution.stderr_tail else ""))
            return Verification(execution.outcome, message, None, (), tuple(w.id for w in suite), None, diagnosis,
                                time.perf_counter() - start)
        for w in suite:
            try:
                record = execution.record(CANDIDATE, w.id)
            except BadOutputError as exc:
                message = f"The runner's output is not acceptable: {exc}"
                return Verification(Outcome.BAD_OUTPUT, message, None, tuple(errors), (w.id,), None,
                                    _bounded(f"REJECTED (bad_output): {message}"), time.perf_counter() - start)
            layer_errors, div = compare_run(w.id, expected[w.id], record)
            errors += layer_errors
            crashed = crashed or record.status == "error"
            if div is not None:
                failing.append(w.id)
                first = first or div
    finally:
        execution.close()
    seconds = time.perf_counter() - start
    if first is None:
        message = f"The candidate matches the reference on {len(suite)} workloads ({len(errors)} layers)."
        return Verification(Outcome.PASSED, message, None, tuple(errors), (), None, f"PASSED: {message}", seconds)
    outcome = Outcome.CRASHED if crashed else Outcome.WRONG_RESULT
    found = blame_by_substitution(executor, suite, failing, expected) if blame else None
    message = (f"The candidate differs from the reference on {len(failing)} of {len(suite)} workloads; "
               f"first divergence: {first.describe()}")
    result = Verification(outcome, message, first, tuple(errors), tuple(failing), found, "", seconds)
    return dataclasses.replace(result, diagnosis=diagnose(result))


def blame_by_substitution(executor: Executor, suite: Sequence[Workload], failing: Sequence[str],
                          expected: Mapping[str, RunRecord]) -> Blame:
    """Swap candidate modules for the reference's (singles, then pairs) on the failing workloads; one job."""
    start = time.perf_counter()
    by_id = {w.id: w for w in suite}
    workloads = [by_id[w] for w in failing]
    execution = executor.run(make_job(workloads, [*SINGLE_SWAPS, *PAIR_SWAPS], digests=True))
    try:
        if execution.outcome is not Outcome.PASSED:
            return Blame((), (f"the blame run ended {execution.outcome.value}: {execution.message}",),
                         time.perf_counter() - start, execution.outcome)
        evidence: list[str] = []
        for level in (SINGLE_SWAPS, PAIR_SWAPS):
            fixed: list[Mix] = []
            for mix in level:
                try:
                    ok, div = _matches(execution, mix.id, list(failing), expected)
                except BadOutputError as exc:
                    ok, div = False, None
                    evidence.append(f"swapping {'+'.join(mix.swapped)}: unreadable output ({exc})")
                    continue
                if ok:
                    fixed.append(mix)
                    evidence.append(f"swapping in the reference {' and '.join(mix.swapped)} removes every divergence")
                elif div is not None:
                    evidence.append(f"swapping {'+'.join(mix.swapped)} still diverges at {div.workload} layer "
                                    f"{div.layer} ({div.kind}{' ' + div.trace if div.trace else ''})")
            if fixed:
                modules = sorted({role for mix in fixed for role in mix.swapped}, key=ROLES.index)
                return Blame(tuple(modules), tuple(evidence), time.perf_counter() - start)
        return Blame(ROLES, (*evidence, "no single or pair swap removes the divergence: all three modules differ"),
                     time.perf_counter() - start)
    finally:
        execution.close()


# --------------------------------------------------------------------------- diagnosis


def _bounded(text: str, limit: int = DIAGNOSIS_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def diagnose(result: Verification) -> str:
    """A short diagnosis for the repairer: what differs, where, the module, the evidence (bounded)."""
    if result.passed:
        return f"PASSED: {result.message}"
    lines = [f"REJECTED ({result.outcome.value}): the candidate differs from the reference on "
             f"{len(result.failing_workloads)} workload(s): {', '.join(result.failing_workloads[:4])}"
             + (" ..." if len(result.failing_workloads) > 4 else "") + "."]
    if result.divergence is not None:
        lines.append(f"First divergence: {result.divergence.describe()}.")
    if result.blame is not None:
        if result.blame.modules:
            lines.append(f"Blamed module(s): {', '.join(result.blame.modules)}.")
        lines.append("Evidence: " + "; ".join(result.blame.evidence[:4]) + ".")
    wrong = [e for e in result.cycle_errors if e.actual is None or e.actual != e.expected]
    if wrong:
        parts = [f"{e.workload} L{e.layer} {_num(e.expected)}->{_num(e.actual) if e.actual is not None else 'none'}"
                 for e in wrong[:4]]
        total = result.total_cycle_error
        lines.append(f"Cycle errors in {len(wrong)} of {len(result.cycle_errors)} layers (expected->got): "
                     + ", ".join(parts)
                     + (f"; total cycle error {total:+.3%}." if total is not None else "."))
    else:
        lines.append("Total cycles match on every layer; the difference is in the traces or report figures.")
    return _bounded("\n".join(lines))
