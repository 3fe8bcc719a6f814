"""The one way results are compared with the reference: one tolerance, first difference named.

Used by the tests, the verifier and the benchmarks.  Integers compare exactly; other numbers to
:data:`REL_TOL` relative (SCALE-Sim's own float noise); traces entry by entry.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .reports import REPORT_FILES

REL_TOL = 1e-9
"""Relative tolerance for non-integer figures (``abs(e - a) <= REL_TOL * max(1, abs(e))``)."""


def values_equal(expected: float, actual: float) -> bool:
    """Two report figures agree: equal within :data:`REL_TOL` relative (exact for integers)."""
    return abs(expected - actual) <= REL_TOL * max(1.0, abs(expected))


def first_figure_difference(names: Iterable[str], expected: Mapping[str, float],
                            actual: Mapping[str, float]) -> str | None:
    """The first of ``names`` whose figures differ, or ``None``."""
    for name in names:
        if not values_equal(expected[name], actual[name]):
            return name
    return None


def first_trace_difference(expected: np.ndarray, actual: np.ndarray) -> tuple[int, int, str] | None:
    """``(row, column, note)`` of the first difference of two traces, or ``None`` when equal (no row loop)."""
    if expected.ndim != 2 or actual.ndim != 2:
        return 0, 0, f" (the trace has {actual.ndim} dimensions, expected 2)"
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


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def cells_equal(expected: str, got: str) -> bool:
    """Two report CSV cells agree: integers exactly, other numbers by :func:`values_equal`, text exactly."""
    if _is_int(expected) and _is_int(got):
        return int(expected) == int(got)
    try:
        e, g = float(expected), float(got)
    except ValueError:
        return expected == got
    return values_equal(e, g)


def read_cells(path: Path) -> list[list[str]]:
    """A report CSV as stripped cells, the trailing empty cell of SCALE-Sim's rows dropped."""
    with path.open() as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f)]
    return [row[:-1] if row and row[-1] == "" else row for row in rows if row]


def compare_report(expected: Path, got: Path) -> str | None:
    """``None`` when the two report CSVs agree; else the first difference (row, column, values)."""
    exp_rows, got_rows = read_cells(expected), read_cells(got)
    if len(exp_rows) != len(got_rows):
        return f"{expected.name}: {len(exp_rows) - 1} layers expected, got {len(got_rows) - 1}"
    header = exp_rows[0]
    if [h.lower() for h in header] != [h.lower() for h in got_rows[0]]:
        return f"{expected.name}: header differs: expected {header}, got {got_rows[0]}"
    for number, (e_row, g_row) in enumerate(zip(exp_rows[1:], got_rows[1:])):
        if len(e_row) != len(g_row):
            return f"{expected.name} row {number}: {len(e_row)} cells expected, got {len(g_row)}"
        for column, (e, g) in enumerate(zip(e_row, g_row)):
            if not cells_equal(e, g):
                return f"{expected.name} row {number} column {header[column]!r}: expected {e}, got {g}"
    return None


def compare_reports(expected_dir: Path, got_dir: Path) -> str | None:
    """All three SCALE-Sim reports of two folders; ``None`` when they agree."""
    for name in REPORT_FILES:
        if not (got_dir / name).is_file():
            return f"{name}: not written"
        difference = compare_report(expected_dir / name, got_dir / name)
        if difference is not None:
            return difference
    return None
