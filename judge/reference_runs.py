"""Expected results: the reference on a workload, stage by stage, and SCALE-Sim's per-layer report figures.

The built-in reference's modules run here on the host (cached).  A user's reference never runs here:
its results come attached to the workloads from its sandbox run (:mod:`judge.user_reference`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from judge.harness import harness
from judge.suites import ReferenceLayer, Workload
from reference_sim import contract as reference_contract
from reference_sim import engine
from reference_sim.contract import Hardware, Layer, LayerMapping, MemoryResult
from reference_sim.errors import SimCoderError


class UserReferenceError(SimCoderError, RuntimeError):
    """A user's own reference gives no expected results: refused by the rules, crashed, or not run in the sandbox."""


FIGURES: tuple[str, ...] = (
    "total_cycles",
    "stall_cycles",
    "overall_util_pct",
    "mapping_efficiency_pct",
    "compute_util_pct",
    *(f"{where}_{op}_{what}" for where in ("sram", "dram") for op in reference_contract.OPERANDS
      for what in ("start", "stop", "accesses")),
)
"""The per-layer figures of SCALE-Sim's compute and detailed-access reports (the bandwidth report derives from them)."""


def reference_run(workload: Workload, traces: bool = True) -> tuple[ReferenceLayer, ...]:
    """The reference on a workload, stage by stage: the results attached to it (a user's reference, run in the
    sandbox), else its modules computed here on the host (cached).

    Never runs a user's reference folder: without attached results it raises :class:`UserReferenceError`.
    """
    attached = workload.expected if traces else workload.expected_untraced
    if attached is not None:
        if tuple(r.layer for r in attached[:len(workload.layers)]) != workload.layers:
            raise UserReferenceError(f"{workload.id}: the expected results attached are for other layers")
        return attached[:len(workload.layers)]
    if isinstance(workload.reference, Path):
        raise _not_run(workload, traces)
    return _host_reference_run(workload, traces)


def _not_run(workload: Workload, traces: bool) -> UserReferenceError:
    return UserReferenceError(
        f"the user's reference in {workload.reference} has no expected results {'with' if traces else 'without'}"
        f" traces for {workload.id}: they come from its sandbox run (judge.user_reference.expected_suites)")


def require_expected(suite: Sequence[Workload], final_check: Sequence[Workload] = ()) -> None:
    """Raise :class:`UserReferenceError` unless every workload of a user's reference has its results attached
    (traced and untraced for the suite, untraced for the final check)."""
    for workloads, traced in ((suite, True), (final_check, False)):
        for w in workloads:
            if isinstance(w.reference, Path) and w.expected_untraced is None:
                raise _not_run(w, False)
            if isinstance(w.reference, Path) and traced and w.expected is None:
                raise _not_run(w, True)


@functools.lru_cache(maxsize=64)
def _host_reference_run(workload: Workload, traces: bool) -> tuple[ReferenceLayer, ...]:
    """:func:`reference_run` of modules on the host; the traced run adds the traced memory to the untraced run's
    mapping, schedule and report-only result."""
    ref = workload.reference
    assert isinstance(ref, engine.Modules)
    if traces:
        out: list[ReferenceLayer] = []
        for base in _host_reference_run(workload, False):
            traced = ref.memory.simulate(base.mapping, base.schedule, workload.hardware, traces=True)
            out.append(dataclasses.replace(base, memory=traced,
                                           figures=figures_of(base.layer, workload.hardware, base.mapping, traced)))
        return tuple(out)
    untraced_run: list[ReferenceLayer] = []
    for layer in workload.layers:
        mapping = ref.mapping.map_layer(layer, workload.hardware)
        schedule = ref.network.schedule(mapping, workload.hardware)
        untraced = ref.memory.simulate(mapping, schedule, workload.hardware, traces=False)
        figures = figures_of(layer, workload.hardware, mapping, untraced)
        untraced_run.append(ReferenceLayer(layer, mapping, schedule, untraced, untraced, figures))
    return tuple(untraced_run)


def figures_of(layer: Layer, hardware: Hardware, mapping: LayerMapping, memory: MemoryResult) -> dict[str, float]:
    """SCALE-Sim's per-layer figures (:data:`FIGURES`) from a mapping and a memory result."""
    result = engine.layer_result(layer, hardware, mapping, memory)
    values: list[float] = [result.total_cycles, result.stall_cycles, result.overall_util_pct,
                           result.mapping_efficiency_pct, result.compute_util_pct]
    for stops, counts in ((result.sram_start_stop, result.sram_accesses),
                          (result.dram_start_stop, result.dram_accesses)):
        for op in reference_contract.OPERANDS:
            values += [*stops[op], counts[op]]
    return {name: float(v) for name, v in zip(FIGURES, values, strict=True)}


def reference_modules() -> dict[str, ModuleType]:
    """The reference's three modules (the candidate that must pass)."""
    return {role: getattr(engine.REFERENCE, role) for role in harness.STAGES}


def reference_code(role: str) -> str:
    """The built-in verified module of ``role`` (the reference's fast module)."""
    return inspect.getsource(getattr(engine.REFERENCE, role))


@functools.cache
def reference_sources() -> dict[str, str]:
    """The three reference modules' sources by role (what a written feature runs over while it is written)."""
    return {role: reference_code(role) for role in harness.STAGES}
