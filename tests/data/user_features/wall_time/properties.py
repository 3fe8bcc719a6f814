"""The wall_time feature's own property: each layer's time is its cycles over the clock."""

from __future__ import annotations

import math

from features.api import Case, FeatureRun
from features.property_base import FEATURE, Property, PropertyFailure, fail

REPORT = "TIME_REPORT.csv"


def time_is_cycles_over_clock(case: Case, run: FeatureRun) -> PropertyFailure | None:
    """Every row's ``time_us`` is its layer's total cycles over ``clock_mhz``."""
    rows = run.tables.get(REPORT, [])
    if len(rows) != len(run.results):
        return fail("time_is_cycles_over_clock", case, None, f"{len(run.results)} rows", len(rows), FEATURE)
    for index, (row, result) in enumerate(zip(rows, run.results)):
        want = result.total_cycles / case.params["clock_mhz"]
        if not math.isclose(row["time_us"], want, rel_tol=1e-9):
            return fail("time_is_cycles_over_clock", case, index, f"time_us = {want:.6g}", row["time_us"], FEATURE)
    return None


PROPERTIES = [
    Property("time_is_cycles_over_clock", "conservation",
             "Each layer's time_us is its total cycles over clock_mhz.", single=time_is_cycles_over_clock),
]
