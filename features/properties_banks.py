"""Properties of the ``memory_banks`` feature: bank conflicts recomputed from the run's own SRAM traces,
each USER interface within its words per cycle, its DRAM side as the reference's with its ports, and
more banks never adding cycles."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np

from reference_sim import mapping as reference_mapping
from reference_sim import memory as reference_memory
from reference_sim import network as reference_network
from reference_sim.contract import NO_REQUEST, OPERANDS, DramPort, OperandName
from reference_sim.engine import layer_result

from .api import Case, FeatureRun
from .compare import result_difference
from .property_base import FEATURE, Property, PropertyFailure, fail
from .semantics import BANKS_PARAM, PORTS_PARAM, interface_words_per_cycle, row_conflicts

MAX_BANKS = 64


def interface_dram_rate(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "interface_dram_rate"
    if case.hardware.bandwidth_mode != "USER":
        return None
    for index, result in enumerate(run.results):
        if result.traces is None:
            continue
        for op in ("ifmap", "filter"):
            limit = interface_words_per_cycle(case.hardware, case.params, op)
            trace = np.asarray(getattr(result.traces, f"{op}_dram"))
            _, where = np.unique(trace[:, 0], return_inverse=True)
            words = np.bincount(where.reshape(-1), weights=(trace[:, 1:] != NO_REQUEST).sum(axis=1))
            if words.size and words.max() > limit:
                return fail(name, case, index, f"{op}_dram: <= {limit} words per cycle", int(words.max()), FEATURE)
    return None


def _no_conflicts(case: Case, rng: random.Random) -> Case | None:
    return case.with_params(**{PORTS_PARAM: 0})


def bank_conflicts_from_traces(base: Case, base_run: FeatureRun, other: Case,
                               other_run: FeatureRun) -> PropertyFailure | None:
    name = "bank_conflicts_from_traces"
    banks, ports = int(base.params.get(BANKS_PARAM, 1)), int(base.params.get(PORTS_PARAM, 0))
    for index, (got, free) in enumerate(zip(base_run.results, other_run.results)):
        if got.traces is None or free.traces is None:
            continue
        keys = ("ifmap_sram", "filter_sram", "ofmap_sram")
        extra = np.max([row_conflicts(np.asarray(getattr(got.traces, k))[:, 1:], banks, ports) for k in keys], axis=0)
        added = np.cumsum(extra)
        total = int(added[-1]) if added.size else 0
        if got.total_cycles != free.total_cycles + total or got.stall_cycles != free.stall_cycles + total:
            figures = f"{free.total_cycles + total}, {free.stall_cycles + total}"
            return fail(name, base, index, f"cycles and stalls {figures} (without conflicts + {total} conflict cycles "
                        "from the SRAM traces)",
                        f"{got.total_cycles}, {got.stall_cycles}", FEATURE)
        for key in keys:
            want = np.array(getattr(free.traces, key), dtype=np.float64, copy=True)
            want[:, 0] += added
            have = np.asarray(getattr(got.traces, key))
            if want.shape != have.shape or not np.array_equal(want, have):
                return fail(name, base, index, f"{key}: the conflict-free trace, row i moved by the conflict cycles "
                            "of rows 0..i", "a different trace", FEATURE)
        for key in ("ifmap_dram", "filter_dram", "ofmap_dram"):
            if not np.array_equal(np.asarray(getattr(got.traces, key)), np.asarray(getattr(free.traces, key))):
                return fail(name, base, index, f"{key} unchanged by bank conflicts", "a different trace", FEATURE)
        for op in OPERANDS:
            if got.sram_accesses[op] != free.sram_accesses[op] or got.dram_accesses[op] != free.dram_accesses[op]:
                return fail(name, base, index, f"{op} accesses unchanged by bank conflicts", "changed", FEATURE)
    return None


def interfaces_are_reference_ports(base: Case, base_run: FeatureRun, other: Case,
                                   other_run: FeatureRun) -> PropertyFailure | None:
    name = "interfaces_are_reference_ports"
    hw = other.hardware
    for index, (layer, got) in enumerate(zip(other.layers, other_run.results)):
        mapped = reference_mapping.map_layer(layer, hw)
        scheduled = reference_network.schedule(mapped, hw)
        if hw.bandwidth_mode == "USER":
            ports: dict[OperandName, DramPort] = {
                op: DramPort(interface_words_per_cycle(hw, other.params, op), port.latency_cycles)
                for op, port in scheduled.ports.items()}
            scheduled = replace(scheduled, ports=ports)
        want = layer_result(layer, hw, mapped,
                            reference_memory.simulate(mapped, scheduled, hw, traces=got.traces is not None),
                            index=index)
        difference = result_difference(want, got, traces=got.traces is not None)
        if difference is not None:
            return fail(name, other, index, f"{difference.where} {difference.expected} (the reference with each "
                        "interface's words per cycle)", difference.actual, FEATURE)
    return None


def _more_banks(case: Case, rng: random.Random) -> Case | None:
    banks = int(case.params.get(BANKS_PARAM, 1))
    return None if banks * 2 > MAX_BANKS else case.with_params(**{BANKS_PARAM: banks * 2})


def more_banks_no_more_cycles(base: Case, base_run: FeatureRun, other: Case,
                              other_run: FeatureRun) -> PropertyFailure | None:
    name = "more_banks_no_more_cycles"
    for index, (a, b) in enumerate(zip(base_run.results, other_run.results)):
        if b.total_cycles > a.total_cycles:
            return fail(name, other, index, f"<= {a.total_cycles} cycles (with half the banks)", b.total_cycles,
                        FEATURE)
    return None


BANKS_PROPERTIES = [
    Property("interface_dram_rate", "bounds",
             "Under USER bandwidth the ifmap and filter DRAM read traces never move more words in one cycle than "
             "that interface's own words per cycle (the global one where its parameter is 0).",
             single=interface_dram_rate, needs_traces=True),
    Property("bank_conflicts_from_traces", "metamorphic",
             "Recomputing the conflicts from the run's own SRAM traces (requests to bank address mod B, served "
             "ports per cycle): the run equals the conflict-free run (ports 0) with row i of each SRAM trace moved "
             "by the conflict cycles of rows 0..i, total and stall cycles grown by all of them, DRAM traces and "
             "access counts unchanged.", pair=bank_conflicts_from_traces, vary=_no_conflicts, needs_traces=True),
    Property("interfaces_are_reference_ports", "metamorphic",
             "Without conflicts (ports 0) the run equals the reference run whose USER DRAM ports have each "
             "interface's words per cycle, figure for figure and trace for trace.",
             pair=interfaces_are_reference_ports, vary=_no_conflicts),
    Property("more_banks_no_more_cycles", "monotonicity",
             "Doubling the banks never adds cycles (banks address mod 2B split banks address mod B).",
             pair=more_banks_no_more_cycles, vary=_more_banks),
]
