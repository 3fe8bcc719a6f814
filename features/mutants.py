"""Seeded mutants of the built-in feature implementations: faults in each feature's own logic.

A mutant is a one-place source edit of a built-in module (``old`` must occur exactly once), compiled
into a fresh module; it measures the judge's power (``benchmarks/bench_features.py``).
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from reference_sim.errors import SimCoderError

from .api import FeatureImpl

BUILTIN_FOLDER = Path(__file__).resolve().parent / "builtin"


class MutantError(SimCoderError, RuntimeError):
    """A mutant's edit does not apply to its built-in's source (the built-in changed)."""


@dataclass(frozen=True)
class Mutant:
    feature: str
    name: str
    fault: str
    old: str
    new: str

    def build(self) -> FeatureImpl:
        path = BUILTIN_FOLDER / f"{self.feature}.py"
        source = path.read_text(encoding="utf-8")
        if source.count(self.old) != 1:
            raise MutantError(f"{path}: mutant {self.name!r}: its edit matches {source.count(self.old)} places, not 1")
        module = types.ModuleType(f"features.builtin.mutant_{self.feature}_{self.name}")
        module.__package__ = "features.builtin"
        module.__file__ = str(path)
        exec(compile(source.replace(self.old, self.new), f"<mutant {self.feature}/{self.name}>", "exec"),
             module.__dict__)
        return cast(FeatureImpl, module.run)


ENERGY_MUTANTS = [
    Mutant("energy", "wrong_pj_column", "ifmap and filter SRAM read coefficients swapped",
           "energy = counts[:, which] * coefficients[None, :]",
           "energy = counts[:, which] * coefficients[None, [0, 1, 3, 2, 4, 5, 6, 7, 8, 9]]"),
    Mutant("energy", "forgot_idle", "idle energy left out",
           "idle = hardware.array_rows * hardware.array_cols * cycles - macs", "idle = 0 * cycles"),
    Mutant("energy", "idle_all_pe_cycles", "idle PE-cycles include the busy ones",
           "idle = hardware.array_rows * hardware.array_cols * cycles - macs",
           "idle = hardware.array_rows * hardware.array_cols * cycles"),
    Mutant("energy", "idle_per_cycle", "idle counted per cycle, not per PE-cycle",
           "idle = hardware.array_rows * hardware.array_cols * cycles - macs", "idle = cycles"),
    Mutant("energy", "idle_without_stalls", "idle PE-cycles leave out stall cycles",
           "cycles = np.array([r.total_cycles for r in results]",
           "cycles = np.array([r.total_cycles - r.stall_cycles for r in results]"),
    Mutant("energy", "dram_read_write_swapped", "DRAM reads and writes swapped",
           "dram[:, 0] + dram[:, 1], dram[:, 2],", "dram[:, 2], dram[:, 0] + dram[:, 1],"),
    Mutant("energy", "dram_reads_ifmap_only", "DRAM reads leave out the filter",
           "dram[:, 0] + dram[:, 1], dram[:, 2],", "dram[:, 0], dram[:, 2],"),
    Mutant("energy", "ofmap_sram_read_is_write", "ofmap SRAM reads taken from the ofmap SRAM writes",
           "sram[:, 0], sram[:, 1], dram[:, 2],", "sram[:, 0], sram[:, 1], sram[:, 2],"),
    Mutant("energy", "ifmap_sram_write_is_read", "ifmap SRAM writes taken from the ifmap SRAM reads",
           "dram[:, 0], dram[:, 1], sram[:, 2],", "sram[:, 0], dram[:, 1], sram[:, 2],"),
    Mutant("energy", "sram_reads_swapped", "ifmap and filter SRAM read counts swapped",
           "sram[:, 0], sram[:, 1], dram[:, 2],", "sram[:, 1], sram[:, 0], dram[:, 2],"),
    Mutant("energy", "total_misses_dram_write", "total_pj leaves out the last column (DRAM writes)",
           "total = energy.sum(axis=1)", "total = energy[:, :-1].sum(axis=1)"),
    Mutant("energy", "total_double_mac", "total_pj counts the MAC energy twice",
           "total = energy.sum(axis=1)", "total = energy.sum(axis=1) + energy[:, 0]"),
    Mutant("energy", "nanojoules", "every pJ column in nJ",
           "energy = counts[:, which] * coefficients[None, :]",
           "energy = counts[:, which] * coefficients[None, :] / 1000"),
    Mutant("energy", "layer_id_from_one", "layer_id counts from 1",
           '{"layer_id": float(result.index)}', '{"layer_id": float(result.index + 1)}'),
    Mutant("energy", "counts_of_first_layer", "every row's counts are the first layer's",
           "row.update({name: float(counts[position, i])", "row.update({name: float(counts[0, i])"),
    Mutant("energy", "macs_without_filters", "MACs leave out the filter count",
           "macs = np.array([layer.macs for layer in layers]",
           "macs = np.array([layer.ofmap_pixels * layer.window for layer in layers]"),
    Mutant("energy", "table_changes_timing", "with a table the run switches to CALC bandwidth",
           "results = simulate(layers, hardware, traces=traces)",
           "results = simulate(layers, hardware if not any(params.values()) else "
           "__import__('dataclasses').replace(hardware, bandwidth_mode='CALC'), traces=traces)"),
]

BATCH_MUTANTS = [
    Mutant("batch", "image_offset_off_by_one", "image b placed at (b + 1) x image words",
           "image_hardware(hardware, layer, image)", "image_hardware(hardware, layer, image + 1)"),
    Mutant("batch", "ofmap_not_offset", "every image writes image 0's ofmap",
           "image_hardware(hardware, layer, image)",
           "replace(image_hardware(hardware, layer, image), ofmap_offset=hardware.ofmap_offset)"),
    Mutant("batch", "filter_offset_per_image", "each image reads its own filter copy",
           "image_hardware(hardware, layer, image)",
           "replace(image_hardware(hardware, layer, image), "
           "filter_offset=hardware.filter_offset + image * layer.window * layer.num_filters)"),
    Mutant("batch", "image_words_without_channels", "image size leaves out the channels",
           "image_hardware(hardware, layer, image)",
           "replace(hardware, ifmap_offset=hardware.ifmap_offset + image * layer.ifmap_h * layer.ifmap_w, "
           "ofmap_offset=hardware.ofmap_offset + image * layer.ofmap_pixels * layer.num_filters)"),
    Mutant("batch", "always_stack", "stacks layers whose images do not stack (wrong layout)",
           "if stackable(layer):", "if True:"),
    Mutant("batch", "never_stack", "never stacks: the WS filter is not kept across images",
           "if stackable(layer):", "if False:"),
    Mutant("batch", "stack_ignores_divisibility", "stacks when filter_h == stride_h even if ifmap_h is not a "
           "multiple of stride_h", "if stackable(layer):", "if layer.filter_h == layer.stride_h:"),
    Mutant("batch", "stacked_by_width", "stacks images along the width",
           "simulate_layer(stacked_layer(layer, images), hardware",
           "simulate_layer(replace(layer, ifmap_w=layer.ifmap_w * images), hardware"),
    Mutant("batch", "one_image_fewer", "runs B - 1 images",
           "for image in range(images)]", "for image in range(max(1, images - 1))]"),
    Mutant("batch", "no_cycle_shift", "images' cycles not moved",
           "shifts = np.concatenate([[0], np.cumsum(cycles + 1)[:-1]])", "shifts = np.zeros_like(cycles)"),
    Mutant("batch", "shift_without_plus_one", "image b moved by the totals only (SRAM cycles collide)",
           "np.cumsum(cycles + 1)", "np.cumsum(cycles)"),
    Mutant("batch", "stalls_last_image", "stall cycles of the last image only",
           "stall_cycles=sum(r.stall_cycles for r in per_image)", "stall_cycles=last.stall_cycles"),
    Mutant("batch", "util_one_image", "overall utilisation from one image's MACs",
           "(len(per_image) * layer.macs * 100)", "(layer.macs * 100)"),
    Mutant("batch", "dram_first_image", "DRAM accesses of the first image only",
           "dram_accesses={op: sum(r.dram_accesses[op] for r in per_image) for op in OPERANDS},",
           "dram_accesses=dict(first.dram_accesses),"),
    Mutant("batch", "sram_last_image", "SRAM accesses of the last image only",
           "sram_accesses={op: sum(r.sram_accesses[op] for r in per_image) for op in OPERANDS},",
           "sram_accesses=dict(last.sram_accesses),"),
    Mutant("batch", "stop_not_moved", "stop cycles not moved to the last image",
           "stop = getattr(last, name)[op][1] + int(shifts[-1])", "stop = getattr(last, name)[op][1]"),
    Mutant("batch", "traces_not_moved", "trace cycles not moved per image",
           "part[:, 0] += shift", "part[:, 0] += 0 * shift"),
]

MUTANTS: dict[str, list[Mutant]] = {"energy": ENERGY_MUTANTS, "batch": BATCH_MUTANTS}
