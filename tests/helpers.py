"""Comparison helpers shared by the tests: first differing field, numerically."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from judge.mutants import Mutant, mutate_module
from judge.verdict import Verification
from reference_sim.compare import first_trace_difference as trace_difference
from reference_sim.compare import values_equal
from reference_sim.contract import TraceSet
from reference_sim.engine import LayerResult
from reference_sim.reports import REPORT_FILES, TRACE_FILES
from sandbox.base import INPUTS_MOUNT, Outcome, RunResult, Sandbox


def read_report(path: Path) -> tuple[list[str], list[list[float]]]:
    """Header names and numeric rows (LayerID column dropped) of a SCALE-Sim report."""
    with path.open() as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f)]
    header = [h for h in rows[0] if h][1:]
    return header, [[float(x) for x in row[1:] if x != ""] for row in rows[1:] if row]


def rows_of(results: list[LayerResult], report: str) -> list[list[float]]:
    attr = {"COMPUTE_REPORT.csv": "compute_row", "BANDWIDTH_REPORT.csv": "bandwidth_row",
            "DETAILED_ACCESS_REPORT.csv": "detail_row"}[report]
    return [[float(v) for v in getattr(r, attr)] for r in results]


def first_report_difference(case: str, results: list[LayerResult], folder: Path) -> str | None:
    """``None`` when all three reports match SCALE-Sim's in ``folder``; else the first differing field."""
    for report in REPORT_FILES:
        header, expected = read_report(folder / report)
        got = rows_of(results, report)
        if len(expected) != len(got):
            return f"{case}: {report}: {len(expected)} rows expected, got {len(got)}"
        for row, (exp_row, got_row) in enumerate(zip(expected, got)):
            for col, (e, g) in enumerate(zip(exp_row, got_row)):
                if not values_equal(e, g):
                    return f"{case}: {report} row {row} column {header[col]!r}: expected {e!r}, got {g!r}"
    return None


def first_trace_difference(case: str, expected: TraceSet, got: TraceSet) -> str | None:
    """``None`` when all six traces are equal; else the first differing trace, row and value."""
    for key in TRACE_FILES:
        e, g = getattr(expected, key), getattr(got, key)
        found = trace_difference(e, g)
        if found is not None:
            r, c, note = found
            return (f"{case}: {key} row {r} column {c}: expected {_cell(e, r, c)}, got {_cell(g, r, c)}{note}")
    return None


def _cell(trace: np.ndarray, row: int, column: int) -> str:
    return repr(trace[row, column]) if row < trace.shape[0] and column < trace.shape[1] else "nothing"


def load_csv_traces(folder: Path) -> TraceSet:
    return TraceSet(**{key: np.loadtxt(folder / name, delimiter=",", ndmin=2) for key, name in TRACE_FILES.items()})


def first_result_difference(case: str, expected: list[LayerResult], got: list[LayerResult]) -> str | None:
    """Compare two runs field by field (reports, then traces when both have them)."""
    for report in REPORT_FILES:
        for row, (e_row, g_row) in enumerate(zip(rows_of(expected, report), rows_of(got, report))):
            for col, (e, g) in enumerate(zip(e_row, g_row)):
                if not values_equal(e, g):
                    return f"{case}: {report} row {row} column {col}: expected {e!r}, got {g!r}"
    for e_res, g_res in zip(expected, got):
        if e_res.traces is not None and g_res.traces is not None:
            diff = first_trace_difference(f"{case} layer {e_res.index}", e_res.traces, g_res.traces)
            if diff:
                return diff
    return None


def load_variant(module: ModuleType, replacements: list[tuple[str, str]], name: str) -> ModuleType:
    """A copy of ``module`` made from its source with textual replacements (each must apply once)."""
    return mutate_module(module, replacements, name)


def mutant_table(results: list[tuple[Mutant, Verification, float]]) -> tuple[list[str], list[str]]:
    """The verifier's power table (one line per mutant) and the mutants whose verdict or blame is wrong."""
    lines = [f"{'mutant':28} {'module':15} {'only':10} {'verdict':12} {'blame':16} {'':5} {'time':6}  "
             "stage evidence | first divergence"]
    wrong: list[str] = []
    for mutant, result, seconds in results:
        div = result.divergence
        where = "-"
        if div is not None:
            where = f"{div.workload.split('@')[1]} L{div.layer} " + (
                f"{div.trace} r{div.row} c{div.column}" if div.kind == "trace" else div.figure or div.kind)
        stages = result.blame.stages if result.blame is not None else ()
        evidence = "; ".join(f"{s.stage}: {s.field or s.error[:40]}"
                             + (f"{list(s.index)}" if s.index is not None else "") for s in stages) or "-"
        exact = (not result.passed and result.blamed == mutant.modules
                 and tuple(s.stage for s in stages) == mutant.modules)
        if not exact:
            wrong.append(mutant.id)
        lines.append(f"{mutant.id:28} {'+'.join(mutant.modules):15} {mutant.only or '-':10} "
                     f"{result.outcome.value:12} {'+'.join(result.blamed) or '-':16} {'ok' if exact else 'WRONG':5} "
                     f"{seconds:5.2f}s  {evidence} | {where}")
    rejected = sum(not r.passed for _, r, _ in results)
    lines.append(f"{len(results)} mutants: {rejected} rejected; exact blame with per-stage evidence for "
                 f"{len(results) - len(wrong)}")
    return lines, wrong


def show(request: object, lines: list[str]) -> None:
    """Print ``lines`` to the terminal even when output is captured."""
    config = request.config  # type: ignore[attr-defined]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and config.get_verbosity() >= 0:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


def write_folder(folder: Path, files: dict[str, str]) -> Path:
    """``folder`` (created) holding ``files`` (name -> text): a candidate, for instance."""
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def docker_sandbox(prefix: str, **limits: Any) -> Sandbox:
    """A Docker sandbox whose containers are named ``prefix...`` (2 CPUs), or the test skips (fails in CI)."""
    from sandbox import SandboxConfig, SandboxUnavailable, make_sandbox
    from tests.conftest import require

    try:
        return make_sandbox(SandboxConfig(name_prefix=prefix, cpus=2.0, **limits), kind="docker")
    except SandboxUnavailable as exc:
        require(False, f"no Docker sandbox: {exc}")
        raise


class FakeSandbox:
    """Runs the staged harness as a child process over the folders, then lets a test spoil the output."""

    name = "fake"

    def __init__(self, outcome: Outcome = Outcome.PASSED, spoil: Any = None) -> None:
        self.outcome = outcome
        self.spoil = spoil
        self.commands: list[Sequence[str]] = []
        self.inputs: list[set[str]] = []

    def run(self, candidate_dir: Path, inputs_dir: Path, output_dir: Path, command: Sequence[str], *,
            timeout_s: float | None = None) -> RunResult:
        self.commands.append(command)
        self.inputs.append({str(p.relative_to(inputs_dir)) for p in inputs_dir.rglob("*")})
        output_dir.mkdir(parents=True, exist_ok=True)
        stderr = "boom\n"
        if self.outcome is Outcome.PASSED:
            argv = [sys.executable, *[a.replace(INPUTS_MOUNT, str(inputs_dir)) for a in command[1:]]]
            env = {"SIMCODER_CANDIDATE": str(candidate_dir), "SIMCODER_INPUTS": str(inputs_dir),
                   "SIMCODER_OUT": str(output_dir), "PATH": os.environ.get("PATH", "")}
            done = subprocess.run(argv, env=env, cwd=output_dir, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            stderr += done.stderr
            if self.spoil is not None:
                self.spoil(output_dir)
        return RunResult(self.outcome, 0 if self.outcome is Outcome.PASSED else None, "out\n", stderr, 0.01,
                         output_dir, (), f"fake {self.outcome.value}")


def assert_same_layer_results(expected: list[LayerResult], actual: list[LayerResult] | None) -> None:
    """``actual`` are the host's own ``LayerResult`` (and ``TraceSet``) objects, equal to ``expected`` exactly."""
    assert actual is not None and len(actual) == len(expected)
    for want, got in zip(expected, actual):
        assert type(got) is LayerResult
        assert dataclasses.replace(got, traces=None) == dataclasses.replace(want, traces=None)
        assert (want.traces is None) == (got.traces is None)
        if want.traces is not None and got.traces is not None:
            assert type(got.traces) is TraceSet
            for name in TraceSet.NAMES:
                assert np.array_equal(getattr(want.traces, name), getattr(got.traces, name)), name
