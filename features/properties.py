"""The property library: named checks over a feature run's reports and traces.

Each property is a pure function over one run (``single``) or over a run and a varied run (``pair``,
with ``vary`` making the varied case from the base case); it returns ``None`` or a
:class:`PropertyFailure` diagnosed like a trace divergence.  Families: conservation, bounds,
monotonicity, metamorphic.  Statements are in ``docs/features.md`` and in each :class:`Property`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from reference_sim import mapping as reference_mapping
from reference_sim import network as reference_network
from reference_sim.contract import NO_REQUEST, Hardware, Layer, OperandName
from reference_sim.engine import LayerResult

from .api import Case, FeatureRun, TableRow
from .compare import REL_TOL, result_difference
from .properties_banks import BANKS_PROPERTIES
from .properties_cores import CORES_PROPERTIES
from .properties_sparsity import SPARSITY_PROPERTIES
from .property_base import FEATURE as FEATURE
from .property_base import Family as Family
from .property_base import PairCheck, Property
from .property_base import PropertyFailure as PropertyFailure
from .property_base import close as _close
from .property_base import count_check as _count_check
from .property_base import fail as _fail
from .property_base import layers as _layers
from .property_base import operand_set as _operand_set
from .property_base import pes as _pes
from .property_base import set_mismatch as _set_mismatch
from .property_base import trace_addresses as _trace_addresses
from .semantics import (
    BATCH_PARAM,
    ENERGY_COUNT_COLUMNS,
    ENERGY_PJ_COLUMNS,
    ENERGY_REPORT,
    image_words,
    ofmap_words,
    stackable,
    stacked_layer,
)


def images(case: Case) -> int:
    return int(case.params.get(BATCH_PARAM, 1))


def expected_addresses(layer: Layer, hardware: Hardware, name: OperandName, count: int) -> np.ndarray:
    """Distinct addresses of an operand over ``count`` images (the filter is shared)."""
    one = _operand_set(layer, hardware, name)
    if name == "filter" or count == 1:
        return one
    step = image_words(layer) if name == "ifmap" else ofmap_words(layer)
    return np.unique((one[None, :] + step * np.arange(count)[:, None]).reshape(-1))


# --------------------------------------------------------------------------- conservation


def macs_done_once(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "macs_done_once"
    if (bad := _count_check(name, case, run)) is not None:
        return bad
    rows = run.tables.get(ENERGY_REPORT)
    for index, layer, result in _layers(case, run):
        want = images(case) * layer.macs
        done = result.overall_util_pct * result.total_cycles * _pes(case.hardware) / 100
        if not _close(done, want):
            return _fail(name, case, index, f"{want} MACs (util x cycles x PEs)", f"{done:.6g}", FEATURE)
        if rows is not None and index < len(rows) and not _close(rows[index].get("macs", -1.0), want):
            return _fail(name, case, index, f"{want} MACs in {ENERGY_REPORT}", rows[index].get("macs"), FEATURE)
    return None


def ofmap_words_covered(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "ofmap_words_covered"
    for index, layer, result in _layers(case, run):
        if result.traces is None:
            continue
        want = expected_addresses(layer, case.hardware, "ofmap", images(case))
        for key, blame in (("ofmap_sram", "mapping"), ("ofmap_dram", "memory")):
            mismatch = _set_mismatch(want, _trace_addresses(getattr(result.traces, key)))
            if mismatch is not None:
                return _fail(name, case, index, f"{key}: {mismatch[0]}", mismatch[1], FEATURE if images(case) > 1
                             else blame)
    return None


def operand_addresses_per_image(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "operand_addresses_per_image"
    for index, layer, result in _layers(case, run):
        if result.traces is None:
            continue
        for op in ("ifmap", "filter"):
            want = expected_addresses(layer, case.hardware, op, images(case))
            mismatch = _set_mismatch(want, _trace_addresses(getattr(result.traces, f"{op}_sram")))
            if mismatch is not None:
                return _fail(name, case, index, f"{op}_sram: {mismatch[0]}", mismatch[1],
                             FEATURE if images(case) > 1 else "mapping")
    return None


def dram_reads_cover_distinct(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "dram_reads_cover_distinct"
    for index, layer, result in _layers(case, run):
        for op in ("ifmap", "filter", "ofmap"):
            distinct = expected_addresses(layer, case.hardware, op, images(case)).size
            if result.dram_accesses[op] < distinct:
                return _fail(name, case, index, f"DRAM {op} words >= {distinct} distinct addresses",
                             result.dram_accesses[op], "memory" if images(case) == 1 else FEATURE)
    return None


def _energy_rows(name: str, case: Case, run: FeatureRun) -> list[TableRow] | PropertyFailure:
    rows = run.tables.get(ENERGY_REPORT)
    if rows is None:
        return _fail(name, case, None, ENERGY_REPORT, "no such table", FEATURE)
    if len(rows) != len(case.layers):
        return _fail(name, case, None, f"{len(case.layers)} rows", len(rows), FEATURE)
    return rows


def energy_counts_match_run(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "energy_counts_match_run"
    rows = _energy_rows(name, case, run)
    if isinstance(rows, PropertyFailure):
        return rows
    for index, layer, result in _layers(case, run):
        sram, dram = result.sram_accesses, result.dram_accesses
        macs = images(case) * layer.macs
        want = {
            "macs": macs, "idle_pe_cycles": _pes(case.hardware) * result.total_cycles - macs,
            "ifmap_sram_reads_words": sram["ifmap"], "filter_sram_reads_words": sram["filter"],
            "ofmap_sram_reads_words": dram["ofmap"], "ifmap_sram_writes_words": dram["ifmap"],
            "filter_sram_writes_words": dram["filter"], "ofmap_sram_writes_words": sram["ofmap"],
            "dram_reads_words": dram["ifmap"] + dram["filter"], "dram_writes_words": dram["ofmap"],
        }
        for column in ENERGY_COUNT_COLUMNS:
            got = rows[index].get(column)
            if got is None or not _close(float(got), float(want[column])):
                return _fail(name, case, index, f"{column} = {want[column]}", got, FEATURE)
    return None


def energy_is_counts_times_table(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "energy_is_counts_times_table"
    rows = _energy_rows(name, case, run)
    if isinstance(rows, PropertyFailure):
        return rows
    for index, row in enumerate(rows):
        total = 0.0
        for column, (count, coefficient) in ENERGY_PJ_COLUMNS.items():
            want = row.get(count, math.nan) * float(case.params[coefficient])
            got = row.get(column)
            if got is None or not _close(float(got), want):
                return _fail(name, case, index, f"{column} = {count} x {coefficient} = {want:.6g}", got, FEATURE)
            total += want
        if not _close(row.get("total_pj", math.nan), total):
            return _fail(name, case, index, f"total_pj = {total:.6g}", row.get("total_pj"), FEATURE)
    return None


def energy_table_complete(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "energy_table_complete"
    rows = _energy_rows(name, case, run)
    if isinstance(rows, PropertyFailure):
        return rows
    for index, (row, result) in enumerate(zip(rows, run.results)):
        if row.get("layer_id") != result.index:
            return _fail(name, case, index, f"layer_id {result.index}", row.get("layer_id"), FEATURE)
        missing = [c for c in (*ENERGY_COUNT_COLUMNS, *ENERGY_PJ_COLUMNS, "total_pj") if c not in row]
        if missing:
            return _fail(name, case, index, "every column", f"missing {', '.join(missing)}", FEATURE)
    return None


# --------------------------------------------------------------------------- bounds


def ideal_compute_cycles(layer: Layer, hardware: Hardware, count: int) -> int:
    """Cycles of the folds alone (fill, stream, drain; no stalls) for ``count`` images as the batch runs them."""
    shape, times = (stacked_layer(layer, count), 1) if count > 1 and stackable(layer) else (layer, count)
    mapped = reference_mapping.map_layer(shape, hardware)
    return times * mapped.num_folds * reference_network.schedule(mapped, hardware).fold_cycles - 1


def cycles_at_least_ideal(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "cycles_at_least_ideal"
    for index, layer, result in _layers(case, run):
        ideal = ideal_compute_cycles(layer, case.hardware, images(case))
        if result.total_cycles - result.stall_cycles < ideal:
            return _fail(name, case, index, f"total - stall cycles >= {ideal}",
                         result.total_cycles - result.stall_cycles, FEATURE if images(case) > 1 else "network")
    return None


def stalls_within_cycles(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "stalls_within_cycles"
    for index, _, result in _layers(case, run):
        if not 0 <= result.stall_cycles <= result.total_cycles:
            return _fail(name, case, index, f"0 <= stall cycles <= {result.total_cycles}", result.stall_cycles,
                         "memory")
    return None


def user_dram_rate(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "user_dram_rate"
    if case.hardware.bandwidth_mode != "USER":
        return None
    limit = case.hardware.dram_words_per_cycle
    for index, _, result in _layers(case, run):
        if result.traces is None:
            continue
        for key in ("ifmap_dram", "filter_dram"):
            trace = np.asarray(getattr(result.traces, key))
            if trace.size == 0:
                continue
            segment = np.concatenate([[0], np.cumsum(np.diff(trace[:, 0]) < 0)])
            _, where = np.unique(np.column_stack([segment, trace[:, 0]]), axis=0, return_inverse=True)
            words = np.bincount(where.reshape(-1), weights=(trace[:, 1:] != NO_REQUEST).sum(axis=1))
            worst = int(np.argmax(words))
            if words[worst] > limit:
                cycle = trace[int(np.argmax(where.reshape(-1) == worst)), 0]
                return _fail(name, case, index, f"{key}: <= {limit} words per cycle",
                             f"{int(words[worst])} words in cycle {cycle:g}", "network")
    return None


def utilisation_in_range(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "utilisation_in_range"
    for index, _, result in _layers(case, run):
        for label in ("overall_util_pct", "mapping_efficiency_pct", "compute_util_pct"):
            value = getattr(result, label)
            if not 0 < value <= 100 * (1 + REL_TOL):
                return _fail(name, case, index, f"0 < {label} <= 100", value, "mapping")
    return None


def trace_cycles_increase(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "trace_cycles_increase"
    for index, _, result in _layers(case, run):
        if result.traces is None:
            continue
        for key in ("ifmap_sram", "filter_sram", "ofmap_sram"):
            cycles = np.asarray(getattr(result.traces, key))[:, 0]
            steps = np.diff(cycles)
            if steps.size and steps.min() <= 0:
                row = int(np.argmin(steps)) + 1
                return _fail(name, case, index, f"{key} cycles increasing at row {row}",
                             f"{cycles[row - 1]:g} then {cycles[row]:g}", FEATURE if images(case) > 1 else "network")
            if cycles.size and cycles[-1] > result.total_cycles + 1:
                return _fail(name, case, index, f"{key} last cycle <= {result.total_cycles + 1}", f"{cycles[-1]:g}",
                             FEATURE if images(case) > 1 else "network")
    return None


def start_stop_match_traces(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "start_stop_match_traces"
    for index, _, result in _layers(case, run):
        if result.traces is None:
            continue
        for op in ("ifmap", "filter", "ofmap"):
            for kind in ("sram", "dram"):
                trace = np.asarray(getattr(result.traces, f"{op}_{kind}"))
                cycles = trace[(trace[:, 1:] != NO_REQUEST).any(axis=1), 0]
                if cycles.size == 0:
                    continue
                start, stop = getattr(result, f"{kind}_start_stop")[op]
                want: tuple[float, ...] = (cycles.min(), cycles.max()) if kind == "sram" else (cycles.min(),)
                got: tuple[float, ...] = (start, stop) if kind == "sram" else (start,)
                if want != got:
                    return _fail(name, case, index, f"{kind} {op} start/stop {want}", got,
                                 FEATURE if images(case) > 1 else "memory")
    return None


def energy_non_negative(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "energy_non_negative"
    rows = _energy_rows(name, case, run)
    if isinstance(rows, PropertyFailure):
        return rows
    for index, row in enumerate(rows):
        for column, value in row.items():
            if not value >= 0:
                return _fail(name, case, index, f"{column} >= 0", value, FEATURE)
    return None


# --------------------------------------------------------------------------- monotonicity


def _scaled_bandwidth(case: Case, rng: random.Random) -> Case | None:
    hw = case.hardware
    if hw.bandwidth_mode != "USER":
        return None
    return replace(case, hardware=replace(hw, dram_words_per_cycle=hw.dram_words_per_cycle * 2))


def _scaled_sram(case: Case, rng: random.Random) -> Case | None:
    hw = case.hardware
    if hw.bandwidth_mode != "CALC":
        return None
    return replace(case, hardware=replace(hw, ifmap_sram_kib=hw.ifmap_sram_kib * 2,
                                          filter_sram_kib=hw.filter_sram_kib * 2,
                                          ofmap_sram_kib=hw.ofmap_sram_kib * 2))


def _no_more_cycles(name: str) -> PairCheck:
    def check(base: Case, base_run: FeatureRun, other: Case, other_run: FeatureRun) -> PropertyFailure | None:
        for index, (a, b) in enumerate(zip(base_run.results, other_run.results)):
            if b.total_cycles > a.total_cycles:
                return _fail(name, other, index, f"<= {a.total_cycles} cycles (the smaller configuration's)",
                             b.total_cycles, "memory")
        return None
    return check


def _one_more_image(case: Case, rng: random.Random) -> Case | None:
    if BATCH_PARAM not in case.params:
        return None
    return case.with_params(**{BATCH_PARAM: images(case) + 1})


def more_images_more_work(base: Case, base_run: FeatureRun, other: Case,
                          other_run: FeatureRun) -> PropertyFailure | None:
    name = "more_images_more_work"
    pes = _pes(base.hardware)
    for index, (layer, a, b) in enumerate(zip(base.layers, base_run.results, other_run.results)):
        if b.total_cycles < a.total_cycles:
            return _fail(name, other, index, f">= {a.total_cycles} cycles (one image fewer)", b.total_cycles, FEATURE)
        added = (b.overall_util_pct * b.total_cycles - a.overall_util_pct * a.total_cycles) * pes / 100
        if not _close(added, layer.macs):
            return _fail(name, other, index, f"{layer.macs} more MACs", f"{added:.6g}", FEATURE)
        for op in ("ifmap", "ofmap"):
            if b.dram_accesses[op] < a.dram_accesses[op]:
                return _fail(name, other, index, f">= {a.dram_accesses[op]} DRAM {op} words", b.dram_accesses[op],
                             FEATURE)
    return None


def _coefficients(case: Case) -> list[str]:
    return [c for _, c in ENERGY_PJ_COLUMNS.values() if c in case.params]


def _raise_one_coefficient(case: Case, rng: random.Random) -> Case | None:
    names = _coefficients(case)
    if not names:
        return None
    chosen = rng.choice(names)
    return case.with_params(**{chosen: float(case.params[chosen]) * 2 + 1.0})


def energy_monotone_in_table(base: Case, base_run: FeatureRun, other: Case,
                             other_run: FeatureRun) -> PropertyFailure | None:
    name = "energy_monotone_in_table"
    raised = {c for c in _coefficients(base) if other.params[c] != base.params[c]}
    before, after = base_run.tables.get(ENERGY_REPORT, []), other_run.tables.get(ENERGY_REPORT, [])
    for index, (a, b) in enumerate(zip(before, after)):
        for column, (_, coefficient) in ENERGY_PJ_COLUMNS.items():
            if coefficient in raised:
                if b.get(column, -1.0) < a.get(column, 0.0):
                    return _fail(name, other, index, f"{column} >= {a.get(column)}", b.get(column), FEATURE)
            elif not _close(b.get(column, math.nan), a.get(column, math.nan)):
                return _fail(name, other, index, f"{column} unchanged ({coefficient} was not raised)",
                             b.get(column), FEATURE)
        if b.get("total_pj", -1.0) < a.get("total_pj", 0.0):
            return _fail(name, other, index, f"total_pj >= {a.get('total_pj')}", b.get("total_pj"), FEATURE)
    return None


# --------------------------------------------------------------------------- metamorphic


def _stack_batch(case: Case, rng: random.Random) -> Case | None:
    count = images(case)
    layers = tuple(stacked_layer(layer, count) for layer in case.layers if stackable(layer))
    if count == 1 or not layers:
        return None
    return Case(case.feature, case.workload + "-stacked", layers, case.hardware, {**case.params, BATCH_PARAM: 1})


def gemm_batch_is_tall_gemm(base: Case, base_run: FeatureRun, other: Case,
                            other_run: FeatureRun) -> PropertyFailure | None:
    name = "gemm_batch_is_tall_gemm"
    stacked = [i for i, layer in enumerate(base.layers) if stackable(layer)]
    for position, index in enumerate(stacked):
        want, got = other_run.results[position], base_run.results[index]
        difference = result_difference(want, got, traces=want.traces is not None)
        if difference is not None:
            return _fail(name, base, index, f"{difference.where} {difference.expected} (as one layer of "
                         f"{images(base)} x M rows)", difference.actual, FEATURE)
    return None


def _one_image(case: Case, rng: random.Random) -> Case | None:
    if images(case) == 1 or all(stackable(layer) for layer in case.layers):
        return None
    return case.with_params(**{BATCH_PARAM: 1})


def _repeat_image(layer: Layer, one: LayerResult, count: int) -> dict[str, np.ndarray]:
    assert one.traces is not None
    out: dict[str, np.ndarray] = {}
    for key, trace in one.traces.as_dict().items():
        step = {"ifmap": image_words(layer), "ofmap": ofmap_words(layer)}.get(key.split("_")[0], 0)
        parts = []
        for image in range(count):
            part = np.array(trace, dtype=np.float64, copy=True)
            part[:, 0] += image * (one.total_cycles + 1)
            cells = part[:, 1:]
            cells[cells != NO_REQUEST] += image * step
            parts.append(part)
        out[key] = np.concatenate(parts)
    return out


def _dram_signature(trace: np.ndarray) -> np.ndarray:
    """A DRAM trace up to its words: each row's cycle and word count.  Which words a CALC epoch fetches, and
    in what order, changes when the addresses move (SCALE-Sim works with address sets)."""
    return np.concatenate([trace[:, 0], (trace[:, 1:] != NO_REQUEST).sum(axis=1)])


def batch_is_images_back_to_back(base: Case, base_run: FeatureRun, other: Case,
                                 other_run: FeatureRun) -> PropertyFailure | None:
    name = "batch_is_images_back_to_back"
    count = images(base)
    for index, layer in enumerate(base.layers):
        if stackable(layer):
            continue
        one, got = other_run.results[index], base_run.results[index]
        want = {"total_cycles": count * (one.total_cycles + 1) - 1, "stall_cycles": count * one.stall_cycles,
                **{f"sram {op}": count * v for op, v in one.sram_accesses.items()},
                **{f"dram {op}": count * v for op, v in one.dram_accesses.items()}}
        have = {"total_cycles": got.total_cycles, "stall_cycles": got.stall_cycles,
                **{f"sram {op}": v for op, v in got.sram_accesses.items()},
                **{f"dram {op}": v for op, v in got.dram_accesses.items()}}
        for key, value in want.items():
            if have.get(key) != value:
                return _fail(name, base, index, f"{key} = {count} x one image = {value}", have.get(key), FEATURE)
        if one.traces is not None and got.traces is not None:
            for key, trace in _repeat_image(layer, one, count).items():
                actual = np.asarray(getattr(got.traces, key))
                if key.endswith("_dram") and actual.shape == trace.shape:
                    actual, trace = _dram_signature(actual), _dram_signature(trace)
                if actual.shape != trace.shape or not np.array_equal(actual, trace):
                    return _fail(name, base, index, f"{key}: {count} copies of one image's trace, moved per image",
                                 f"shape {actual.shape}" if actual.shape != trace.shape else "different cells",
                                 FEATURE)
    return None


def _double_table(case: Case, rng: random.Random) -> Case | None:
    names = _coefficients(case)
    return case.with_params(**{c: float(case.params[c]) * 2 for c in names}) if names else None


def energy_linear_in_table(base: Case, base_run: FeatureRun, other: Case,
                           other_run: FeatureRun) -> PropertyFailure | None:
    name = "energy_linear_in_table"
    before, after = base_run.tables.get(ENERGY_REPORT, []), other_run.tables.get(ENERGY_REPORT, [])
    for index, (a, b) in enumerate(zip(before, after)):
        for column in (*ENERGY_PJ_COLUMNS, "total_pj"):
            if not _close(b.get(column, math.nan), 2 * a.get(column, math.nan)):
                return _fail(name, other, index, f"{column} = 2 x {a.get(column)}", b.get(column), FEATURE)
        for column in ENERGY_COUNT_COLUMNS:
            if b.get(column) != a.get(column):
                return _fail(name, other, index, f"{column} unchanged = {a.get(column)}", b.get(column), FEATURE)
    return None


def _reversed_layers(case: Case, rng: random.Random) -> Case | None:
    if len(case.layers) < 2:
        return None
    return replace(case, workload=case.workload + "-reversed", layers=tuple(reversed(case.layers)))


def energy_additive_over_layers(base: Case, base_run: FeatureRun, other: Case,
                                other_run: FeatureRun) -> PropertyFailure | None:
    name = "energy_additive_over_layers"
    before, after = base_run.tables.get(ENERGY_REPORT, []), other_run.tables.get(ENERGY_REPORT, [])
    last = len(before) - 1
    for index, row in enumerate(before):
        if last - index >= len(after):
            return _fail(name, base, index, "a row for every layer", f"{len(after)} rows", FEATURE)
        mirror = after[last - index]
        for column in (*ENERGY_COUNT_COLUMNS, *ENERGY_PJ_COLUMNS, "total_pj"):
            if not _close(mirror.get(column, math.nan), row.get(column, math.nan)):
                return _fail(name, base, index, f"{column} = {row.get(column)} whatever the layer order",
                             mirror.get(column), FEATURE)
    return None


def _neutral_table(case: Case, rng: random.Random) -> Case | None:
    names = _coefficients(case)
    return case.with_params(**dict.fromkeys(names, 0.0)) if names else None


def energy_leaves_timing(base: Case, base_run: FeatureRun, other: Case,
                         other_run: FeatureRun) -> PropertyFailure | None:
    name = "energy_leaves_timing"
    for index, (a, b) in enumerate(zip(other_run.results, base_run.results)):
        difference = result_difference(a, b, traces=a.traces is not None and b.traces is not None)
        if difference is not None:
            return _fail(name, base, index, f"{difference.where} {difference.expected} (as with no energy table)",
                         difference.actual, FEATURE)
    return None


def _all(properties: Sequence[Property]) -> dict[str, Property]:
    return {p.name: p for p in properties}


PROPERTIES: dict[str, Property] = _all([
    Property("macs_done_once", "conservation",
             "Every MAC is done once: overall utilisation x cycles x PEs / 100 equals the layer's MACs times the "
             "images, and so does the energy report's `macs`.", single=macs_done_once),
    Property("ofmap_words_covered", "conservation",
             "Every ofmap word of every image is written, to SRAM and to DRAM, and no other ofmap address is: the "
             "distinct addresses of both ofmap traces are image b's ofmap moved by b x ofmap words.",
             single=ofmap_words_covered, needs_traces=True),
    Property("operand_addresses_per_image", "conservation",
             "The ifmap SRAM trace requests exactly the union over images b of one image's ifmap addresses moved "
             "by b x image words; the filter SRAM trace exactly one image's filter addresses (shared).",
             single=operand_addresses_per_image, needs_traces=True),
    Property("dram_reads_cover_distinct", "conservation",
             "DRAM words per operand are at least the distinct addresses that operand holds over all images.",
             single=dram_reads_cover_distinct),
    Property("energy_counts_match_run", "conservation",
             "The energy report's counts are the run's own: MACs, idle PE-cycles = PEs x cycles - MACs, SRAM "
             "reads and writes per operand, DRAM reads and writes.", single=energy_counts_match_run),
    Property("energy_is_counts_times_table", "conservation",
             "Every pJ column is its count times its coefficient, and total_pj is their sum.",
             single=energy_is_counts_times_table),
    Property("energy_table_complete", "conservation",
             "The energy report has one row per layer, in order, with every column.", single=energy_table_complete),
    Property("cycles_at_least_ideal", "bounds",
             "Total minus stall cycles are at least the ideal compute cycles: folds x fold cycles - 1, the folds "
             "of the stacked layer or of every image back to back.", single=cycles_at_least_ideal),
    Property("stalls_within_cycles", "bounds", "Stall cycles are never negative and never above total cycles.",
             single=stalls_within_cycles),
    Property("user_dram_rate", "bounds",
             "Under USER bandwidth no DRAM read trace moves more than its words per cycle in any cycle (ofmap "
             "writes can bunch in SCALE-Sim v2, so the write trace is not checked; cycles counted "
             "within each run of increasing cycles: one image's or one layer's prefetch may overlap the one "
             "before, as SCALE-Sim's layers do).",
             single=user_dram_rate, needs_traces=True),
    Property("utilisation_in_range", "bounds",
             "Overall utilisation, mapping efficiency and compute utilisation lie in (0, 100] %.",
             single=utilisation_in_range),
    Property("trace_cycles_increase", "bounds",
             "SRAM trace cycles strictly increase and never pass the layer's total cycles + 1 (SCALE-Sim's SRAM "
             "cycles run from 1 to total + 1).",
             single=trace_cycles_increase, needs_traces=True),
    Property("start_stop_match_traces", "bounds",
             "SRAM start and stop cycles are the first and last cycles with a request in that operand's SRAM "
             "trace; a DRAM start cycle is the first with a request in its DRAM trace.",
             single=start_stop_match_traces, needs_traces=True),
    Property("energy_non_negative", "bounds", "Every count and pJ figure of the energy report is >= 0.",
             single=energy_non_negative),
    Property("more_bandwidth_no_more_cycles", "monotonicity",
             "Doubling USER DRAM words per cycle never adds cycles to a layer.",
             pair=_no_more_cycles("more_bandwidth_no_more_cycles"), vary=_scaled_bandwidth),
    Property("more_sram_no_more_cycles", "monotonicity",
             "Doubling all three SRAMs never adds cycles to a layer under CALC bandwidth (under USER it can: "
             "SCALE-Sim v2's prefetch lines change with the buffer size).",
             pair=_no_more_cycles("more_sram_no_more_cycles"), vary=_scaled_sram),
    Property("more_images_more_work", "monotonicity",
             "One more image never takes fewer cycles or DRAM ifmap/ofmap words, and adds exactly one image's "
             "MACs.", pair=more_images_more_work, vary=_one_more_image),
    Property("energy_monotone_in_table", "monotonicity",
             "Raising one coefficient never lowers its pJ column or the total, and leaves every other pJ column "
             "unchanged.", pair=energy_monotone_in_table, vary=_raise_one_coefficient),
    Property("gemm_batch_is_tall_gemm", "metamorphic",
             "A batch of B images of a stackable layer (every GEMM) equals, figure for figure and trace for trace, "
             "one image of the layer with B x ifmap_h rows (a GEMM of B x M rows).",
             pair=gemm_batch_is_tall_gemm, vary=_stack_batch),
    Property("batch_is_images_back_to_back", "metamorphic",
             "A batch of B images of a non-stackable layer takes B x (one image's cycles + 1) - 1 cycles and B x its "
             "stalls and accesses (moving addresses changes no count), and its traces are one image's, image b "
             "moved by b x (the image's cycles + 1) and by b x image (ofmap) words "
             "(DRAM traces compared by each row's cycle and word count only).",
             pair=batch_is_images_back_to_back, vary=_one_image),
    Property("energy_linear_in_table", "metamorphic",
             "Doubling the whole table doubles every pJ column and leaves every count unchanged.",
             pair=energy_linear_in_table, vary=_double_table),
    Property("energy_additive_over_layers", "metamorphic",
             "A layer's energy row does not depend on the other layers or their order.",
             pair=energy_additive_over_layers, vary=_reversed_layers),
    Property("energy_leaves_timing", "metamorphic",
             "An energy table changes no figure and no trace of the run (equal to the run with an all-zero table).",
             pair=energy_leaves_timing, vary=_neutral_table),
    *CORES_PROPERTIES, *SPARSITY_PROPERTIES, *BANKS_PROPERTIES,
])
