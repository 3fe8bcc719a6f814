"""The written-feature run's format: the job, the results and their limits, shared by host and harness.

Job (:data:`JOB_FILE`, format :data:`JOB_FORMAT`, no input arrays today)::

    {"format": ..., "cases": [{"id": "...", "layers": [Layer, ...], "hardware": Hardware,
      "params": {"name": number}, "traces": true}]}

Results (:data:`MANIFEST_FILE`, format :data:`RESULTS_FORMAT`; case ``i``'s trace arrays in
:func:`case_arrays_file`)::

    {"format": ..., "cases": [{"id": "...", "status": "ok"|"error", "error": "TypeError: ..."|null,
      "results": [LayerResult, ...], "tables": {"ENERGY_REPORT.csv": [{"column": number}]},
      "refused": ["..."], "seconds": 0.1}]}

Layers, hardware and layer results are in the wire format (:mod:`wire`, arrays stored as 32-bit
integers where lossless).  :func:`tables_from` is the one check of a feature's tables, applied in the
sandbox to what the candidate returned and on the host to what the manifest says.

This file is shipped into the sandbox with the harness: standard library, numpy and :mod:`wire` only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np

from . import wire

JOB_FORMAT = "simcoder-feature-job/1"
RESULTS_FORMAT = "simcoder-feature-result/1"
JOB_FILE = "feature-job.json"
MANIFEST_FILE = "feature-manifest.json"
PROGRAM = "feature_harness"
"""The shipped module whose ``main()`` runs a feature job in the sandbox."""

FEATURE_MODULE = "feature"
FEATURE_FUNCTION = "run"
ROLES: tuple[str, ...] = ("mapping", "network", "memory")
"""The run's three modules, given as sources (the reference's or a verified candidate's)."""
SHIPPED_MODULES: tuple[str, ...] = ("contract", "errors", "engine", "feature_api")
"""The verifier's own modules in the package, copied as they are."""
TRUSTED_MODULES = frozenset({"engine"})
"""Shipped modules imported without the guard (the engine reads ``os.environ`` for its work limit), after
the run's modules they import."""
PACKAGE_MODULES = frozenset({*SHIPPED_MODULES, *ROLES, FEATURE_MODULE})
"""Every module of the package a candidate feature runs in."""

MAX_CASES = 256
MAX_RESULTS = 1024
"""Layer results one case may return (the host checks it returned exactly one per layer)."""
MAX_PARAMS = 64
MAX_TABLES = 8
MAX_ROWS = 1024
MAX_COLUMNS = 64
MAX_CELLS = 20_000
"""Numbers all of one case's tables may hold together."""
MAX_NAME_CHARS = 120
ERROR_CHARS = 500
MAX_REFUSALS = 20
MANIFEST_LIMIT_BYTES = 16 * 1024 * 1024


class JobCase(TypedDict):
    """One case of a feature job."""

    id: str
    layers: list[dict[str, Any]]
    hardware: dict[str, Any]
    params: dict[str, int | float]
    traces: bool


class Job(TypedDict):
    """A feature job: its format and cases."""

    format: str
    cases: list[JobCase]


class CaseResult(TypedDict):
    """One case's entry in the results manifest."""

    id: str
    status: str
    error: str | None
    results: list[dict[str, Any]]
    tables: dict[str, list[dict[str, float]]]
    refused: list[str]
    seconds: float


class Results(TypedDict):
    """The results manifest."""

    format: str
    python: str
    numpy: str
    cases: list[CaseResult]
    seconds: float


class FeatureJobError(ValueError):
    """The feature job is malformed (the host is at fault, not the candidate)."""


def case_arrays_file(index: int) -> str:
    """The file holding case ``index``'s trace arrays."""
    return f"case{index}.npz"


def bounded(text: str, limit: int = ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _name(path: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS:
        raise wire.WireError(path, f"expected a name of 1 to {MAX_NAME_CHARS} characters, got {wire._show(value)}")
    return value


def _number(path: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise wire.WireError(path, f"expected a number, got {wire._show(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise wire.WireError(path, f"expected a finite number, got {number}")
    return number


def tables_from(value: Any, path: str = "tables") -> dict[str, list[dict[str, float]]]:
    """A feature's tables as plain data (file name -> rows of column -> float), within the limits above;
    raises :class:`wire.WireError` naming the first table, row or column that is wrong."""
    if not isinstance(value, Mapping):
        raise wire.WireError(path, f"expected a dict of tables, got {type(value).__name__}")
    if len(value) > MAX_TABLES:
        raise wire.WireError(path, f"{len(value)} tables (at most {MAX_TABLES})")
    tables: dict[str, list[dict[str, float]]] = {}
    cells = 0
    for raw_name, raw_rows in value.items():
        name = _name(f"{path} key", raw_name)
        where = f"{path}[{name!r}]"
        if not isinstance(raw_rows, (list, tuple)):
            raise wire.WireError(where, f"expected a list of rows, got {type(raw_rows).__name__}")
        if len(raw_rows) > MAX_ROWS:
            raise wire.WireError(where, f"{len(raw_rows)} rows (at most {MAX_ROWS})")
        rows: list[dict[str, float]] = []
        for index, raw_row in enumerate(raw_rows):
            at = f"{where}[{index}]"
            if not isinstance(raw_row, Mapping):
                raise wire.WireError(at, f"expected a row (column -> number), got {type(raw_row).__name__}")
            if len(raw_row) > MAX_COLUMNS:
                raise wire.WireError(at, f"{len(raw_row)} columns (at most {MAX_COLUMNS})")
            cells += len(raw_row)
            if cells > MAX_CELLS:
                raise wire.WireError(where, f"the tables hold more than {MAX_CELLS} numbers")
            row: dict[str, float] = {}
            for column, number in raw_row.items():
                key = _name(f"{at} column", column)
                row[key] = _number(f"{at}.{key}", number)
            rows.append(row)
        tables[name] = rows
    return tables


def validate_job(job: Any) -> Job:
    """Check a feature job's shape; raises :class:`FeatureJobError` naming the first problem."""
    if not isinstance(job, dict) or job.get("format") != JOB_FORMAT:
        raise FeatureJobError(f"the job is not a {JOB_FORMAT} document")
    cases = job.get("cases")
    if not isinstance(cases, list) or not 0 < len(cases) <= MAX_CASES:
        raise FeatureJobError(f"job.cases must be a list of 1 to {MAX_CASES} cases")
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            raise FeatureJobError(f"cases[{i}] needs an id")
        if not isinstance(case.get("layers"), list) or not isinstance(case.get("hardware"), dict):
            raise FeatureJobError(f"cases[{i}] needs layers and hardware")
        params = case.get("params")
        if not isinstance(params, dict) or len(params) > MAX_PARAMS or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in params.items()):
            raise FeatureJobError(f"cases[{i}].params must map at most {MAX_PARAMS} names to numbers")
        if not isinstance(case.get("traces"), bool):
            raise FeatureJobError(f"cases[{i}].traces must be true or false")
    return job  # type: ignore[return-value]
