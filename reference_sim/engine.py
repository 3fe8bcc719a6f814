"""Runs layers through any mix of mapping, network and memory modules and gathers SCALE-Sim's figures."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Protocol

from . import mapping as reference_mapping
from . import memory as reference_memory
from . import network as reference_network
from .contract import OPERANDS, Hardware, Layer, LayerMapping, MemoryResult, NetworkSchedule, OperandName, TraceSet
from .errors import InputError, SimulationError, WorkLimitError

MAX_REQUESTS_ENV = "SIMCODER_MAX_REQUESTS"
DEFAULT_MAX_REQUESTS = 2_000_000_000
"""Requests a layer may take (:func:`reference_sim.memory.estimate_requests`): a few minutes of work at most."""
RAISE_LIMIT = f"raise it with --max-requests N or {MAX_REQUESTS_ENV}=N"


class MappingModule(Protocol):
    def map_layer(self, layer: Layer, hardware: Hardware) -> LayerMapping: ...


class NetworkModule(Protocol):
    def schedule(self, mapping: LayerMapping, hardware: Hardware) -> NetworkSchedule: ...


class MemoryModule(Protocol):
    def simulate(
        self, mapping: LayerMapping, network: NetworkSchedule, hardware: Hardware, *, traces: bool = False
    ) -> MemoryResult: ...


@dataclass(frozen=True)
class Modules:
    """One implementation of each module; any mix runs together."""

    mapping: MappingModule | ModuleType
    network: NetworkModule | ModuleType
    memory: MemoryModule | ModuleType

    def with_module(self, role: str, module: Any) -> Modules:
        """A copy with the module of ``role`` (``mapping``, ``network`` or ``memory``) replaced."""
        return replace(self, **{role: module})


REFERENCE = Modules(reference_mapping, reference_network, reference_memory)


@dataclass(frozen=True)
class LayerResult:
    """SCALE-Sim's per-layer figures (the rows of its three reports) and, on request, the traces."""

    index: int
    name: str
    total_cycles: int
    stall_cycles: int
    overall_util_pct: float
    mapping_efficiency_pct: float
    compute_util_pct: float
    sram_accesses: dict[OperandName, int]
    sram_start_stop: dict[OperandName, tuple[float, float]]
    dram_start_stop: dict[OperandName, tuple[float, float]]
    dram_accesses: dict[OperandName, int]
    traces: TraceSet | None = None

    @property
    def compute_row(self) -> list[int | float]:
        return [self.total_cycles, self.stall_cycles, self.overall_util_pct, self.mapping_efficiency_pct,
                self.compute_util_pct]

    @property
    def bandwidth_row(self) -> list[float]:
        sram = [self.sram_accesses[name] / self.total_cycles for name in OPERANDS]
        dram = [self.dram_accesses[name] / (stop - start + 1)
                for name, (start, stop) in ((n, self.dram_start_stop[n]) for n in OPERANDS)]
        return sram + dram

    @property
    def detail_row(self) -> list[int | float]:
        row: list[int | float] = []
        for name in OPERANDS:
            row += [*self.sram_start_stop[name], self.sram_accesses[name]]
        for name in OPERANDS:
            row += [*self.dram_start_stop[name], self.dram_accesses[name]]
        return row


def parse_max_requests(text: str, source: str) -> int:
    """A request limit written as an integer (``2000000000``, ``2_000_000_000``) or in e-notation (``2e9``)."""
    try:
        value = float(text.strip().replace("_", "")) if text.strip() else -1.0
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise InputError(source, f"must be a positive whole number of requests such as 2e9, got {text!r}")
    return int(value)


def max_requests(limit: int | None = None) -> int:
    """``limit`` if given, else ``$SIMCODER_MAX_REQUESTS``, else :data:`DEFAULT_MAX_REQUESTS`."""
    if limit is not None:
        return limit
    text = os.environ.get(MAX_REQUESTS_ENV)
    return DEFAULT_MAX_REQUESTS if text is None else parse_max_requests(text, MAX_REQUESTS_ENV)


FOLD_REQUESTS = 1000
"""What one fold costs a memory module that does not estimate its own work, counted in requests."""


def estimate_requests(layer: Layer, hardware: Hardware, memory: MemoryModule | ModuleType = reference_memory, *,
                      traces: bool = False) -> int:
    """About how many requests ``memory`` walks for ``layer``: its own ``estimate_requests`` if it has one,
    else every request of the three operands plus :data:`FOLD_REQUESTS` per fold."""
    own = getattr(memory, "estimate_requests", None)
    if own is not None:
        return int(own(layer, hardware, traces=traces))
    m, n, k = layer.ofmap_pixels, layer.num_filters, layer.window
    spatial_rows, spatial_cols, temporal = {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[hardware.dataflow]
    row_folds = -(-spatial_rows // hardware.array_rows)
    col_folds = -(-spatial_cols // hardware.array_cols)
    streamed = temporal * (spatial_rows * col_folds + spatial_cols * row_folds)
    return row_folds * col_folds * FOLD_REQUESTS + streamed + spatial_rows * spatial_cols


def check_work(layer: Layer, hardware: Hardware, modules: Modules = REFERENCE, *, index: int = 0,
               traces: bool = False, limit: int | None = None, where: str = "") -> None:
    """Refuse, with :class:`~reference_sim.errors.WorkLimitError`, a layer estimated above the request limit
    (``where``, e.g. a sweep's configuration, starts the message)."""
    allowed = max_requests(limit)
    estimate = estimate_requests(layer, hardware, modules.memory, traces=traces)
    if estimate > allowed:
        raise WorkLimitError(layer.name, index, estimate, allowed, how_to_raise=RAISE_LIMIT, where=where)


def layer_shape(layer: Layer) -> Layer:
    """The layer without its name: layers with equal shapes have equal results on one configuration."""
    return replace(layer, name="")


def simulate_layer(
    layer: Layer, hardware: Hardware, modules: Modules = REFERENCE, *, index: int = 0, traces: bool = False,
    limit: int | None = None,
) -> LayerResult:
    """Simulate one layer: mapping, then network, then memory.

    A layer estimated above the request limit (``limit``, ``$SIMCODER_MAX_REQUESTS`` or
    :data:`DEFAULT_MAX_REQUESTS`) is refused with :class:`~reference_sim.errors.WorkLimitError` first.
    """
    check_work(layer, hardware, modules, index=index, traces=traces, limit=limit)
    mapped = modules.mapping.map_layer(layer, hardware)
    scheduled = modules.network.schedule(mapped, hardware)
    memory = modules.memory.simulate(mapped, scheduled, hardware, traces=traces)
    return layer_result(layer, hardware, mapped, memory, index=index)


def without_srams(hardware: Hardware) -> Hardware:
    """``hardware`` with its SRAM sizes set aside: configurations equal here map and schedule a layer alike."""
    return replace(hardware, ifmap_sram_kib=1, filter_sram_kib=1, ofmap_sram_kib=1)


def simulate_layer_srams(layer: Layer, configs: Sequence[Hardware], *,
                         index: int = 0) -> list[LayerResult | SimulationError]:
    """One layer on configurations that differ only in SRAM sizes, with the reference modules and traces
    off: mapped and scheduled once, each read buffer worked out once per size it is given
    (:class:`reference_sim.memory.LayerDemand`).  Each configuration's result equals
    :func:`simulate_layer`'s, or is the :class:`~reference_sim.errors.SimulationError` it raises there.
    """
    if not configs:
        return []
    if len({without_srams(hw) for hw in configs}) > 1:
        raise ValueError("simulate_layer_srams takes configurations that differ only in SRAM sizes")
    mapped = reference_mapping.map_layer(layer, configs[0])
    demand = reference_memory.LayerDemand(mapped, reference_network.schedule(mapped, configs[0]))
    refused: dict[int, SimulationError] = {}
    for position, hardware in enumerate(configs):
        try:
            check_work(layer, hardware, index=index)
        except WorkLimitError as exc:
            refused[position] = exc
    demand.prepare(hw for position, hw in enumerate(configs) if position not in refused)
    results: list[LayerResult | SimulationError] = []
    for position, hardware in enumerate(configs):
        if position in refused:
            results.append(refused[position])
            continue
        try:
            results.append(layer_result(layer, hardware, mapped, demand.serve(hardware), index=index))
        except SimulationError as exc:
            results.append(exc)
    return results


def layer_result(layer: Layer, hardware: Hardware, mapped: LayerMapping, memory: MemoryResult, *,
                 index: int = 0) -> LayerResult:
    """SCALE-Sim's per-layer figures from one layer's mapping and memory results."""
    array_macs = hardware.array_rows * hardware.array_cols
    return LayerResult(
        index=index,
        name=layer.name,
        total_cycles=memory.total_cycles,
        stall_cycles=memory.stall_cycles,
        overall_util_pct=(layer.macs * 100) / (memory.total_cycles * array_macs),
        mapping_efficiency_pct=mapped.mapping_efficiency * 100,
        compute_util_pct=mapped.compute_utilisation * 100,
        sram_accesses={"ifmap": mapped.sram_reads_ifmap, "filter": mapped.sram_reads_filter,
                       "ofmap": mapped.sram_writes_ofmap},
        sram_start_stop=dict(memory.sram_start_stop),
        dram_start_stop=dict(memory.dram_start_stop),
        dram_accesses=dict(memory.dram_accesses),
        traces=memory.traces,
    )


def simulate(
    layers: Iterable[Layer],
    hardware: Hardware,
    modules: Modules = REFERENCE,
    *,
    traces: bool = False,
    on_layer: Callable[[LayerResult], None] | None = None,
    keep_traces: bool = True,
    limit: int | None = None,
) -> list[LayerResult]:
    """Simulate a topology layer by layer.

    ``on_layer`` sees each result (with its traces) as soon as it is ready; with
    ``keep_traces=False`` the returned results drop their traces so memory stays flat.  With the
    reference modules and traces off, a layer of the same shape as an earlier one (all fields but
    the name) reuses its result, which is the same by construction.  Every layer
    is checked against the request limit (see :func:`simulate_layer`) before the first one runs.
    """
    layers = list(layers)
    allowed = max_requests(limit)
    for index, layer in enumerate(layers):
        check_work(layer, hardware, modules, index=index, traces=traces, limit=allowed)
    results = []
    done: dict[Layer, LayerResult] = {}
    for index, layer in enumerate(layers):
        shape = layer_shape(layer)
        reuse = modules is REFERENCE and not traces
        earlier = done.get(shape) if reuse else None
        if earlier is not None:
            result = replace(earlier, index=index, name=layer.name)
        else:
            result = simulate_layer(layer, hardware, modules, index=index, traces=traces, limit=allowed)
            if reuse:
                done[shape] = result
        if on_layer is not None:
            on_layer(result)
        results.append(result if keep_traces else replace(result, traces=None))
    return results
