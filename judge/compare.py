"""Comparison with the reference: where the candidate's own pipeline first diverges (a trace entry, a
report figure, a module's failure) with every layer's cycle error, and the first field where one stage's
output on the reference's inputs differs from the reference's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from judge.harness import wire
from judge.jobs import Task, TaskRun
from judge.reference_runs import FIGURES, figures_of, reference_run
from reference_sim import contract as reference_contract
from reference_sim.compare import first_figure_difference, first_trace_difference, values_equal
from reference_sim.contract import MemoryResult

TRACE_NAMES: tuple[str, ...] = reference_contract.TraceSet.NAMES


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
            return (f"{where}: {self.trace} trace row {self.row} (cycle {number_text(self.cycle)}), {port}: "
                    f"expected {number_text(self.expected)}, got {number_text(self.actual)}{self.evidence}")
        if self.kind == "figure":
            return (f"{where}: report figure {self.figure}: expected {number_text(self.expected)}, "
                    f"got {number_text(self.actual)}")
        if self.kind == "error":
            return f"{where}: the {self.module} module failed: {self.evidence}"
        return f"{where}: {self.evidence}"


def number_text(value: Any) -> str:
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
        ports = [number_text(float(v)) for v in a[row, first:first + width]]
        return ("[" + number_text(float(a[row, 0])) + (", ..., " if first > 1 else ", ") + ", ".join(ports)
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
    text = number_text(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
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
