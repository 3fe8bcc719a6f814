"""Properties of the ``cores`` feature: conservation of work and ofmap words over cores, the layer as its
slowest core, per-core ideal cycles, the shared USER bandwidth, and more cores never adding compute cycles."""

from __future__ import annotations

import random

import numpy as np

from reference_sim import mapping as reference_mapping
from reference_sim import network as reference_network
from reference_sim.contract import NO_REQUEST, OPERANDS

from .api import Case, FeatureRun, TableRow
from .property_base import FEATURE, Property, PropertyFailure, close, fail, pes, set_mismatch, trace_addresses
from .semantics import (
    CORES_PARAM,
    CORES_REPORT,
    SPLIT_PARAM,
    core_hardware,
    core_layer,
    core_ranges,
    core_words_per_cycle,
)

MAX_CORES = 64


def _cores(case: Case) -> int:
    return int(case.params.get(CORES_PARAM, 1))


def _rows(name: str, case: Case, run: FeatureRun) -> list[list[TableRow]] | PropertyFailure:
    """The report's rows, grouped per layer (one per core)."""
    rows = run.tables.get(CORES_REPORT)
    cores = _cores(case)
    if rows is None or len(rows) != cores * len(case.layers) or len(run.results) != len(case.layers):
        return fail(name, case, None, f"{CORES_REPORT} with {cores} rows per layer and one result per layer",
                    "missing" if rows is None else f"{len(rows)} rows, {len(run.results)} results", FEATURE)
    return [rows[i * cores:(i + 1) * cores] for i in range(len(case.layers))]


def cores_macs_conserved(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "cores_macs_conserved"
    grouped = _rows(name, case, run)
    if isinstance(grouped, PropertyFailure):
        return grouped
    for index, (layer, rows, result) in enumerate(zip(case.layers, grouped, run.results)):
        per_unit = layer.macs // (layer.num_filters if int(case.params.get(SPLIT_PARAM, 0)) == 0 else layer.ofmap_h)
        if sum(r.get("units", 0) for r in rows) != (layer.num_filters if int(case.params.get(SPLIT_PARAM, 0)) == 0
                                                    else layer.ofmap_h):
            return fail(name, case, index, "units summing to the split axis", [r.get("units") for r in rows], FEATURE)
        for row in rows:
            if not close(row.get("macs", -1.0), row.get("units", 0.0) * per_unit):
                return fail(name, case, index, f"core {row.get('core_id')}: units x {per_unit} MACs", row.get("macs"),
                            FEATURE)
        done = result.overall_util_pct * result.total_cycles * pes(case.hardware) * _cores(case) / 100
        if not close(done, layer.macs):
            return fail(name, case, index, f"{layer.macs} MACs (util x cycles x PEs x cores)", f"{done:.6g}", FEATURE)
    return None


def cores_layer_is_slowest_core(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "cores_layer_is_slowest_core"
    grouped = _rows(name, case, run)
    if isinstance(grouped, PropertyFailure):
        return grouped
    for index, (rows, result) in enumerate(zip(grouped, run.results)):
        busy = [r for r in rows if r.get("units", 0) > 0]
        slowest = max(busy, key=lambda r: r.get("total_cycles", 0.0))
        if result.total_cycles != slowest.get("total_cycles") or result.stall_cycles != slowest.get("stall_cycles"):
            return fail(name, case, index, f"the slowest core's cycles and stalls {slowest.get('total_cycles')}, "
                        f"{slowest.get('stall_cycles')}", f"{result.total_cycles}, {result.stall_cycles}", FEATURE)
        for op in OPERANDS:
            column = {"ifmap": "ifmap_sram_reads_words", "filter": "filter_sram_reads_words",
                      "ofmap": "ofmap_sram_writes_words"}[op]
            if result.sram_accesses[op] != sum(r.get(column, 0.0) for r in rows):
                return fail(name, case, index, f"SRAM {op} = the cores' sum", result.sram_accesses[op], FEATURE)
            column = f"{op}_dram_{'writes' if op == 'ofmap' else 'reads'}_words"
            if result.dram_accesses[op] != sum(r.get(column, 0.0) for r in rows):
                return fail(name, case, index, f"DRAM {op} = the cores' sum", result.dram_accesses[op], FEATURE)
    return None


def cores_at_least_ideal(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "cores_at_least_ideal"
    grouped = _rows(name, case, run)
    if isinstance(grouped, PropertyFailure):
        return grouped
    cores, axis = _cores(case), int(case.params.get(SPLIT_PARAM, 0))
    for index, (layer, rows) in enumerate(zip(case.layers, grouped)):
        for core, ((first, stop), row) in enumerate(zip(core_ranges(layer, cores, axis), rows)):
            if stop == first:
                continue
            part = core_layer(layer, axis, first, stop)
            hw = core_hardware(case.hardware, layer, axis, first, core, cores)
            mapped = reference_mapping.map_layer(part, hw)
            ideal = mapped.num_folds * reference_network.schedule(mapped, hw).fold_cycles - 1
            done = row.get("total_cycles", 0.0) - row.get("stall_cycles", 0.0)
            if done < ideal:
                return fail(name, case, index, f"core {core}: total - stall cycles >= {ideal} (its partition's "
                            "folds x fold cycles - 1)", done, FEATURE)
    return None


def cores_ofmap_written_once(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "cores_ofmap_written_once"
    hw = case.hardware
    for index, (layer, result) in enumerate(zip(case.layers, run.results)):
        if result.traces is None:
            continue
        trace = np.asarray(result.traces.ofmap_sram)
        want = hw.ofmap_offset + np.arange(layer.ofmap_pixels * layer.num_filters)
        mismatch = set_mismatch(want, trace_addresses(trace))
        if mismatch is not None:
            return fail(name, case, index, f"ofmap_sram: {mismatch[0]}", mismatch[1], FEATURE)
        lanes = reference_mapping.map_layer(layer, hw).tilings["ofmap"].lanes
        if trace.shape[1] != 1 + lanes * _cores(case):
            return fail(name, case, index, f"{lanes} ofmap ports per core", trace.shape[1] - 1, FEATURE)
        owner: dict[int, int] = {}
        for core in range(_cores(case)):
            cells = trace[:, 1 + core * lanes:1 + (core + 1) * lanes]
            for address in np.unique(cells[cells != NO_REQUEST]).astype(np.int64).tolist():
                if owner.setdefault(address, core) != core:
                    return fail(name, case, index, f"ofmap word {address} written by one core",
                                f"cores {owner[address]} and {core}", FEATURE)
    return None


def cores_user_bandwidth_shared(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "cores_user_bandwidth_shared"
    if case.hardware.bandwidth_mode != "USER":
        return None
    cores = _cores(case)
    limit = sum(core_words_per_cycle(case.hardware.dram_words_per_cycle, c, cores) for c in range(cores))
    for index, result in enumerate(run.results):
        if result.traces is None:
            continue
        for key in ("ifmap_dram", "filter_dram"):
            trace = np.asarray(getattr(result.traces, key))
            _, where = np.unique(trace[:, 0], return_inverse=True)
            words = np.bincount(where.reshape(-1), weights=(trace[:, 1:] != NO_REQUEST).sum(axis=1))
            if words.size and words.max() > limit:
                return fail(name, case, index, f"{key}: <= {limit} words per cycle over all cores",
                            int(words.max()), FEATURE)
    return None


def _more_cores(case: Case, rng: random.Random) -> Case | None:
    cores = _cores(case)
    return None if cores * 2 > MAX_CORES else case.with_params(**{CORES_PARAM: cores * 2})


def more_cores_no_more_compute(base: Case, base_run: FeatureRun, other: Case,
                               other_run: FeatureRun) -> PropertyFailure | None:
    name = "more_cores_no_more_compute"
    before, after = _rows(name, base, base_run), _rows(name, other, other_run)
    if isinstance(before, PropertyFailure):
        return before
    if isinstance(after, PropertyFailure):
        return after
    for index, (a, b) in enumerate(zip(before, after)):
        worst_a = max(r.get("total_cycles", 0.0) - r.get("stall_cycles", 0.0) for r in a)
        worst_b = max(r.get("total_cycles", 0.0) - r.get("stall_cycles", 0.0) for r in b)
        if worst_b > worst_a:
            return fail(name, other, index, f"slowest core's compute cycles <= {worst_a:g} (with half the cores)",
                        f"{worst_b:g}", FEATURE)
    return None


CORES_PROPERTIES = [
    Property("cores_macs_conserved", "conservation",
             "The cores' units (filters or ofmap rows) add up to the split axis, each core does its units' MACs, "
             "and overall utilisation x cycles x PEs x cores / 100 is the layer's MACs.", single=cores_macs_conserved),
    Property("cores_ofmap_written_once", "conservation",
             "Across cores every ofmap word of the layer (ofmap_offset to ofmap_offset + M x N - 1) is written and no "
             "other; the merged ofmap SRAM trace has each core's ofmap ports side by side and no word is written by "
             "two cores.", single=cores_ofmap_written_once, needs_traces=True),
    Property("cores_layer_is_slowest_core", "conservation",
             "The layer's total and stall cycles are the slowest core's; its SRAM and DRAM accesses are the sums "
             f"of the cores' in {CORES_REPORT}.", single=cores_layer_is_slowest_core),
    Property("cores_at_least_ideal", "bounds",
             "Every core's total - stall cycles are at least its partition's ideal compute cycles (folds x fold "
             "cycles - 1 of the partition's layer).", single=cores_at_least_ideal),
    Property("cores_user_bandwidth_shared", "bounds",
             "Under USER bandwidth the cores together never read more DRAM words in one cycle than the sum of their "
             "shares (w words per cycle when w >= C; C when w < C: each core gets at least one).",
             single=cores_user_bandwidth_shared, needs_traces=True),
    Property("more_cores_no_more_compute", "monotonicity",
             "Doubling the cores never adds compute cycles: the largest total - stall cycles over cores does not "
             "grow (the largest block shrinks or stays; fold rounding may keep it equal).",
             pair=more_cores_no_more_compute, vary=_more_cores),
]
