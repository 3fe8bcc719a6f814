"""Runs layers through any mix of mapping, network and memory modules and gathers SCALE-Sim's figures."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Protocol

from . import mapping as reference_mapping
from . import memory as reference_memory
from . import network as reference_network
from .contract import OPERANDS, Hardware, Layer, LayerMapping, MemoryResult, NetworkSchedule, OperandName, TraceSet


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


def simulate_layer(
    layer: Layer, hardware: Hardware, modules: Modules = REFERENCE, *, index: int = 0, traces: bool = False
) -> LayerResult:
    """Simulate one layer: mapping, then network, then memory."""
    mapped = modules.mapping.map_layer(layer, hardware)
    scheduled = modules.network.schedule(mapped, hardware)
    memory = modules.memory.simulate(mapped, scheduled, hardware, traces=traces)
    return layer_result(layer, hardware, mapped, memory, index=index)


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
) -> list[LayerResult]:
    """Simulate a topology layer by layer.

    ``on_layer`` sees each result (with its traces) as soon as it is ready; with
    ``keep_traces=False`` the returned results drop their traces so memory stays flat.
    """
    results = []
    for index, layer in enumerate(layers):
        result = simulate_layer(layer, hardware, modules, index=index, traces=traces)
        if on_layer is not None:
            on_layer(result)
        results.append(result if keep_traces else replace(result, traces=None))
    return results
