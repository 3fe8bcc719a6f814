"""Writes a feature's report tables (e.g. ``ENERGY_REPORT.csv``) beside SCALE-Sim's three reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reference_sim.reports import writing

from .api import TableRow


def table_text(rows: Sequence[TableRow], columns: Sequence[str]) -> str:
    """CSV text in SCALE-Sim's style: a header of column names, then one line per row; whole numbers
    without a decimal point."""
    def cell(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else repr(float(value))

    lines = [", ".join(columns) + ","]
    lines += [", ".join(cell(row[c]) for c in columns) + "," for row in rows]
    return "\n".join(lines) + "\n"


def write_tables(tables: dict[str, list[TableRow]], columns: dict[str, Sequence[str]], directory: Path) -> list[Path]:
    """Write each table named in ``columns`` into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, order in columns.items():
        path = directory / name
        with writing(path):
            path.write_text(table_text(tables.get(name, []), order))
        paths.append(path)
    return paths
