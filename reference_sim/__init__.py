"""The reference simulator: SCALE-Sim v2 (commit 22f88b1) cycle for cycle, computed fold by fold.

The core imports numpy and the standard library only.  In-process use::

    from reference_sim import Hardware, Layer, simulate
    hw = Hardware(array_rows=32, array_cols=32, dataflow="os",
                  ifmap_sram_kib=64, filter_sram_kib=64, ofmap_sram_kib=64)
    results = simulate([Layer("conv1", 56, 56, 3, 3, 64, 64, 1, 1)], hw)
    results[0].total_cycles
"""

from .contract import Hardware, Layer, MemoryResult, TraceSet
from .engine import REFERENCE, LayerResult, Modules, simulate, simulate_layer
from .errors import InputError, SimulationError
from .scalesim_io import read_config, read_topology

__all__ = [
    "REFERENCE",
    "Hardware",
    "InputError",
    "Layer",
    "LayerResult",
    "MemoryResult",
    "Modules",
    "SimulationError",
    "TraceSet",
    "read_config",
    "read_topology",
    "simulate",
    "simulate_layer",
]
