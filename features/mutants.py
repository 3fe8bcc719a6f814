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

ENERGY_MUTANTS += [
    Mutant("energy", "idle_square_array", "idle PE-cycles count array_rows x array_rows PEs",
           "idle = hardware.array_rows * hardware.array_cols * cycles - macs",
           "idle = hardware.array_rows * hardware.array_rows * cycles - macs"),
    Mutant("energy", "total_in_float32", "total_pj summed in single precision",
           "total = energy.sum(axis=1)", "total = energy.astype(np.float32).sum(axis=1).astype(np.float64)"),
    Mutant("energy", "dram_reads_count_prefetch_twice", "DRAM reads count the ifmap words once more per layer "
           "after the first", "dram[:, 0] + dram[:, 1], dram[:, 2],",
           "dram[:, 0] * np.r_[1, np.full(len(results) - 1, 2)] + dram[:, 1], dram[:, 2],"),
]

BATCH_MUTANTS += [
    Mutant("batch", "shift_by_first_image", "every image moved by multiples of image 0's cycles",
           "shifts = np.concatenate([[0], np.cumsum(cycles + 1)[:-1]])",
           "shifts = np.arange(cycles.size) * (cycles[0] + 1)"),
    Mutant("batch", "stack_every_1x1", "also stacks 1x1 layers of stride 2 (their images do not stack)",
           "if stackable(layer):", "if stackable(layer) or layer.filter_h == 1:"),
    Mutant("batch", "util_per_first_image_cycles", "overall utilisation over B x image 0's cycles",
           "(total * hardware.array_rows * hardware.array_cols)",
           "(len(per_image) * first.total_cycles * hardware.array_rows * hardware.array_cols)"),
]

CORES_MUTANTS = [
    Mutant("cores", "starts_round_up", "block edges at ceil(c x U / C) instead of floor (still a balanced split)",
           "starts = (np.arange(cores, dtype=np.int64) * cut) // cores",
           "starts = -((-np.arange(cores, dtype=np.int64) * cut) // cores)"),
    Mutant("cores", "hanging_row_alone", "a hanging bottom ofmap row may be a block of its own",
           "cut = units - int(hangs)", "cut = units"),
    Mutant("cores", "hang_test_inclusive", "a bottom row that exactly fits counts as hanging",
           "+ layer.filter_h > layer.ifmap_h", "+ layer.filter_h >= layer.ifmap_h"),
    Mutant("cores", "share_floor_only", "each core gets floor(w / C), the remainder is lost",
           "words // cores + (np.arange(cores) < words % cores)",
           "words // cores + 0 * (np.arange(cores) < words % cores)"),
    Mutant("cores", "share_remainder_to_last", "the remainder words go to the last cores, not the first",
           "(np.arange(cores) < words % cores)", "(np.arange(cores) >= cores - words % cores)"),
    Mutant("cores", "bandwidth_not_shared", "every core gets the whole USER bandwidth",
           "share = np.maximum(1, ", "share = words + 0 * np.maximum(1, "),
    Mutant("cores", "ofmap_global_columns", "a filter block's ofmap starts at its first filter's column",
           "ofmap_offset=hardware.ofmap_offset + first * layer.ofmap_pixels)",
           "ofmap_offset=hardware.ofmap_offset + first)"),
    Mutant("cores", "filter_not_moved", "every filter block reads filter 0's weights",
           "filter_offset=hardware.filter_offset + first * layer.window,",
           "filter_offset=hardware.filter_offset,"),
    Mutant("cores", "ifmap_rows_by_filter_h", "a row block's ifmap starts filter_h (not stride_h) rows per ofmap row "
           "down", "skipped = first * layer.stride_h * layer.ifmap_w",
           "skipped = first * layer.filter_h * layer.ifmap_w"),
    Mutant("cores", "rows_not_clipped", "the last row block's ifmap is not clipped at the ifmap's bottom",
           "rows = min((stop - first - 1) * layer.stride_h + layer.filter_h, layer.ifmap_h - first * layer.stride_h)",
           "rows = (stop - first - 1) * layer.stride_h + layer.filter_h"),
    Mutant("cores", "cycles_summed", "layer cycles are the sum over cores", "total = int(cycles.max())",
           "total = int(cycles.sum())"),
    Mutant("cores", "stalls_of_core_zero", "layer stalls are the first busy core's, not the slowest's",
           "stall_cycles=slowest.stall_cycles", "stall_cycles=busy[0][0].stall_cycles"),
    Mutant("cores", "util_busy_arrays_only", "overall utilisation over the busy cores' arrays only",
           "pes = hardware.array_rows * hardware.array_cols * len(plan)",
           "pes = hardware.array_rows * hardware.array_cols * len(busy)"),
    Mutant("cores", "efficiency_unweighted", "mapping efficiency a plain mean over cores, not over folds",
           "mapping_efficiency_pct=float((efficiency * folds).sum() / folds.sum()),",
           "mapping_efficiency_pct=float(efficiency.mean()),"),
    Mutant("cores", "start_of_core_zero", "start cycles are the first busy core's",
           "{op: (min(getattr(r, name)[op][0] for r, _ in busy)", "{op: (getattr(busy[0][0], name)[op][0]"),
    Mutant("cores", "idle_core_no_columns", "an idle core has no SRAM trace columns",
           "widths = [lanes if lanes else", "widths = [(lanes if t is not None else 0) if lanes else"),
]

SPARSITY_MUTANTS = [
    Mutant("sparsity", "kept_ceil_ratio", "nonzeros ceil(L x N / M) instead of per group",
           "return (length // group) * kept + min(kept, length % group)", "return -(-length * kept // group)"),
    Mutant("sparsity", "kept_floor_ratio", "nonzeros floor(L x N / M), at least 1",
           "return (length // group) * kept + min(kept, length % group)", "return max(1, length * kept // group)"),
    Mutant("sparsity", "partial_group_whole", "a last partial group keeps all its positions",
           "min(kept, length % group)", "length % group"),
    Mutant("sparsity", "partial_group_dropped", "a last partial group keeps nothing (at least one kept)",
           "return (length // group) * kept + min(kept, length % group)", "return max(1, (length // group) * kept)"),
    Mutant("sparsity", "gemm_dense", "one-channel GEMM-shaped layers stay dense",
           "if layer.filter_w == layer.ifmap_w:", "if False:"),
    Mutant("sparsity", "gemm_ifmap_not_cut", "a GEMM's filter width is cut but not its ifmap width",
           "return replace(layer, ifmap_w=width, filter_w=width)", "return replace(layer, filter_w=width)"),
    Mutant("sparsity", "small_channels_dense", "layers of fewer channels than M stay dense",
           "if layer.channels > 1:", "if layer.channels >= group:"),
    Mutant("sparsity", "metadata_bits_floor_log2", "metadata bits floor(log2 M) instead of ceil",
           "(group - 1).bit_length()", "(group.bit_length() - 1)"),
    Mutant("sparsity", "metadata_bits_of_n", "metadata bits from N instead of M",
           "(group - 1).bit_length()", "kept.bit_length()"),
    Mutant("sparsity", "metadata_packed_per_layer", "metadata packed over the whole layer, not filter by filter",
           "metadata = layer.num_filters * -(-layer_sparse.window * bits // word_bits)",
           "metadata = -(-layer.num_filters * layer_sparse.window * bits // word_bits)"),
    Mutant("sparsity", "metadata_dense_positions", "metadata counts every dense position",
           "-(-layer_sparse.window * bits // word_bits)", "-(-layer.window * bits // word_bits)"),
    Mutant("sparsity", "metadata_when_dense", "a dense setting still reports metadata",
           "bits = 0 if kept == group else (group - 1).bit_length()", "bits = (group - 1).bit_length()"),
    Mutant("sparsity", "metadata_in_bytes", "metadata packed into bytes whatever the word size",
           "word_bits = 8 * hardware.word_bytes", "word_bits = 8"),
    Mutant("sparsity", "filter_words_dense", "filter words reported dense",
           "filter_words = layer_sparse.window * layer.num_filters", "filter_words = layer.window * layer.num_filters"),
    Mutant("sparsity", "report_dense_macs", "the report's MACs are the dense ones",
           '"macs": float(layer_sparse.macs)', '"macs": float(layer.macs)'),
]

BANKS_MUTANTS = [
    Mutant("memory_banks", "bank_high_bits", "bank from (address // B) mod B instead of address mod B",
           "bank = addresses % banks", "bank = (addresses // banks) % banks"),
    Mutant("memory_banks", "ports_round_down", "conflict cycles floor(load / ports) - 1",
           "-(-load // ports) - 1", "load // ports - 1"),
    Mutant("memory_banks", "conflict_every_row", "every row with a request pays one cycle",
           "np.maximum(0, -(-load // ports) - 1)", "np.maximum(0, -(-load // ports))"),
    Mutant("memory_banks", "conflicts_summed", "the three SRAMs' conflicts add up instead of overlapping",
           "extra = np.maximum(extra, per_fold)", "extra = extra + per_fold"),
    Mutant("memory_banks", "ofmap_banks_ignored", "the ofmap SRAM never conflicts",
           "if ports == 0:", 'if ports == 0 or name == "ofmap":'),
    Mutant("memory_banks", "own_row_not_delayed", "a row moves by the conflicts of the rows before it only",
           "added = np.cumsum(extra)", "added = np.cumsum(extra) - extra"),
    Mutant("memory_banks", "stalls_not_counted", "conflict cycles not counted as stalls",
           "stall_cycles=result.stall_cycles + total", "stall_cycles=result.stall_cycles"),
    Mutant("memory_banks", "start_stop_not_moved", "SRAM start and stop cycles not moved",
           "sram_start_stop=sram_start_stop,", "sram_start_stop=result.sram_start_stop,"),
    Mutant("memory_banks", "util_not_updated", "overall utilisation over the conflict-free cycles",
           "overall_util_pct=macs_pct_per_pe / (result.total_cycles + total),",
           "overall_util_pct=result.overall_util_pct,"),
    Mutant("memory_banks", "read_bandwidths_swapped", "ifmap and filter interfaces swapped",
           "ports = {op: DramPort(words[op], port.latency_cycles)",
           'ports = {op: DramPort(words[{"ifmap": "filter", "filter": "ifmap"}.get(op, op)], port.latency_cycles)'),
    Mutant("memory_banks", "ofmap_bandwidth_global", "the ofmap interface keeps the global words per cycle",
           "int(params.get(INTERFACE_PARAMS[op], 0))",
           'int(params.get(INTERFACE_PARAMS[op], 0) if op != "ofmap" else 0)'),
    Mutant("memory_banks", "interfaces_under_calc", "per-interface words per cycle also replace CALC's ports",
           'if hardware.bandwidth_mode != "USER":\n        return scheduled', "if False:\n        return scheduled"),
    Mutant("memory_banks", "zero_means_one", "an interface parameter of 0 means 1 word per cycle",
           "or hardware.dram_words_per_cycle for op", "or 1 for op"),
    Mutant("memory_banks", "same_address_merged", "requests for one address in one row count once",
           "keys = (at * banks + bank).reshape(-1) if every else at[valid] * banks + bank[valid]",
           "pairs = np.unique(np.column_stack([at[valid], addresses[valid]]), axis=0)\n"
           "    keys = pairs[:, 0] * banks + pairs[:, 1] % banks"),
]

MUTANTS: dict[str, list[Mutant]] = {"energy": ENERGY_MUTANTS, "batch": BATCH_MUTANTS, "cores": CORES_MUTANTS,
                                    "sparsity": SPARSITY_MUTANTS, "memory_banks": BANKS_MUTANTS}
