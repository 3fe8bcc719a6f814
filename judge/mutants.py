"""Seeded mutants of the reference modules: the verifier's power test.

Each mutant is a textual replacement in the reference source of one module (or two), made in-process:
the modified source is executed as a new module with ``__package__ = "reference_sim"`` (so its
relative imports resolve to the reference's contract) and registered in ``sys.modules``.  No module
files are copied.  ``tests/unit/test_verifier_mutants.py`` runs :func:`judge.verifier.verify` on
every mutant and checks it is rejected and the right module is blamed.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from types import ModuleType

from reference_sim import contract, engine

ROLES = ("mapping", "network", "memory")


@dataclass(frozen=True)
class Mutant:
    """A seeded fault: ``edits`` are ``(module, old text, new text)``; each ``old`` must occur exactly once."""

    id: str
    change: str
    edits: tuple[tuple[str, str, str], ...]
    only: str = ""
    """Where alone the fault shows: ``""`` anywhere; ``"traces_off"`` only on the report-only path
    (``simulate(traces=False)``); ``"npot"`` only under sizes or bandwidths that are not powers of two."""

    @property
    def modules(self) -> tuple[str, ...]:
        """The mutated modules, in role order."""
        return tuple(role for role in ROLES if any(edit[0] == role for edit in self.edits))


def _m(id_: str, module: str, change: str, old: str, new: str, only: str = "") -> Mutant:
    return Mutant(id_, change, ((module, old, new),), only)


SINGLE_MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- mapping
    _m("map-row-folds-floor", "mapping", "row fold count rounded down (partial row folds dropped)",
       "row_folds = math.ceil(spatial_rows / rows)", "row_folds = max(1, spatial_rows // rows)"),
    _m("map-col-folds-floor", "mapping", "column fold count rounded down (partial column folds dropped)",
       "col_folds = math.ceil(spatial_cols / cols)", "col_folds = max(1, spatial_cols // cols)"),
    _m("map-fold-order-row-outer", "mapping", "folds run row fold outer instead of column fold outer",
       "np.tile(np.arange(row_folds, dtype=np.int64), col_folds),\n"
       "        np.repeat(np.arange(col_folds, dtype=np.int64), row_folds),",
       "np.repeat(np.arange(row_folds, dtype=np.int64), col_folds),\n"
       "        np.tile(np.arange(col_folds, dtype=np.int64), row_folds),"),
    _m("map-os-swap-dims", "mapping", "OS: ofmap pixels and filters swapped between array rows and columns",
       '"os": (m, n, k), "ws"', '"os": (n, m, k), "ws"'),
    _m("map-ifmap-offset", "mapping", "ifmap addresses start one word after the configured offset",
       "offset=hardware.ifmap_offset,", "offset=hardware.ifmap_offset + 1,"),
    _m("map-filter-transposed", "mapping", "filter matrix laid out row-major (K x N transposed addresses)",
       "row_stride=1, col_stride=k)", "row_stride=n, col_stride=1)"),
    _m("map-ofmap-transposed", "mapping", "ofmap matrix laid out column-major",
       "row_stride=n, col_stride=1)", "row_stride=1, col_stride=m)"),
    _m("map-stride-w", "mapping", "ifmap window uses the row stride for columns too",
       "stride_w=layer.stride_w,", "stride_w=layer.stride_h,"),
    _m("map-compute-util-fill", "mapping", "OS compute utilisation: ideal fold one cycle longer (fill/drain)",
       "temporal + rows + cols - 2 if", "temporal + rows + cols - 1 if"),
    _m("map-os-ofmap-writes", "mapping", "OS SRAM ofmap writes without SCALE-Sim's rows+cols per fold",
       "mapped_macs + num_folds * (rows + cols)", "mapped_macs"),
    _m("map-os-ifmap-rollout", "mapping", "OS ifmap USER prefetch read row by row instead of anti-diagonals",
       '"ifmap": OperandTiling("row", "row", "none", rows, prefetch_rollout=True)',
       '"ifmap": OperandTiling("row", "row", "none", rows, prefetch_rollout=False)'),
    _m("map-ws-swap-dims", "mapping", "WS: filters on array rows and the window on columns (spatial dims swapped)",
       '"ws": (k, n, m)', '"ws": (n, k, m)'),
    _m("map-stride-h", "mapping", "ifmap window uses the column stride for rows too",
       "stride_h=layer.stride_h,", "stride_h=layer.stride_w,"),
    _m("map-is-filter-rollout", "mapping", "IS filter USER prefetch read row by row instead of anti-diagonals",
       '"filter": OperandTiling("row", "row", "none", rows, prefetch_rollout=True)',
       '"filter": OperandTiling("row", "row", "none", rows, prefetch_rollout=False)'),
    _m("map-row-folds-shift", "mapping", "row fold count by a right shift: array rows taken as the next power of two",
       "row_folds = math.ceil(spatial_rows / rows)", "row_folds = -(-spatial_rows >> (rows - 1).bit_length())",
       only="npot"),
    _m("map-col-folds-shift", "mapping",
       "column fold count by a right shift: array cols taken as the next power of two",
       "col_folds = math.ceil(spatial_cols / cols)", "col_folds = -(-spatial_cols >> (cols - 1).bit_length())",
       only="npot"),
    # ---------------------------------------------------------------- network
    _m("net-os-fold-plus1", "network", "OS fold one cycle longer (fill/drain off by one)",
       "fold_cycles = temporal + rows + cols - 2", "fold_cycles = temporal + rows + cols - 1"),
    _m("net-wsis-fold-plus1", "network", "WS/IS fold one cycle longer (fill/drain off by one)",
       "fold_cycles = temporal + 2 * rows + cols - 2", "fold_cycles = temporal + 2 * rows + cols - 1"),
    _m("net-os-ifmap-no-skew", "network", "OS ifmap not skewed across array rows",
       '"ifmap": OperandTiming(start_step=0, flip_steps=0, skew=True)',
       '"ifmap": OperandTiming(start_step=0, flip_steps=0, skew=False)'),
    _m("net-os-ofmap-no-flip", "network", "OS ofmap drained in forward instead of reversed row order",
       "OperandTiming(start_step=temporal - 1, flip_steps=rows, skew=True)",
       "OperandTiming(start_step=temporal - 1, flip_steps=0, skew=True)"),
    _m("net-streamed-early", "network", "WS/IS streamed operand starts one cycle before the preload ends",
       "streamed = OperandTiming(start_step=rows, flip_steps=0, skew=True)",
       "streamed = OperandTiming(start_step=rows - 1, flip_steps=0, skew=True)"),
    _m("net-ofmap-write-early", "network", "WS/IS ofmap written one cycle early (ofmap write timing)",
       '"ofmap": OperandTiming(start_step=2 * rows - 1, flip_steps=0, skew=True)',
       '"ofmap": OperandTiming(start_step=2 * rows - 2, flip_steps=0, skew=True)'),
    _m("net-read-latency", "network", "DRAM read latency 2 cycles instead of 1 (prefetch timing)",
       "READ_LATENCY_CYCLES = 1", "READ_LATENCY_CYCLES = 2"),
    _m("net-write-latency", "network", "DRAM write latency 1 cycle instead of 0",
       "WRITE_LATENCY_CYCLES = 0", "WRITE_LATENCY_CYCLES = 1"),
    _m("net-calc-read-bw", "network", "CALC mode starts the read estimate at 8 words per cycle, not 10",
       "CALC_READ_WORDS_PER_CYCLE = 10", "CALC_READ_WORDS_PER_CYCLE = 8"),
    _m("net-bandwidth-mode", "network", "bandwidth mode always CALC (USER setting ignored)",
       "bandwidth_mode=hardware.bandwidth_mode", 'bandwidth_mode="CALC"'),
    _m("net-calc-write-bw", "network", "CALC ofmap write port array_rows wide instead of array_cols",
       '"ofmap": cols}', '"ofmap": rows}'),
    _m("net-stationary-forward", "network", "WS/IS stationary operand preloaded in forward instead of reversed order",
       "stationary = OperandTiming(start_step=0, flip_steps=rows, skew=False)",
       "stationary = OperandTiming(start_step=0, flip_steps=0, skew=False)"),
    _m("net-os-filter-no-skew", "network", "OS filter not skewed across array columns",
       '"filter": OperandTiming(start_step=0, flip_steps=0, skew=True)',
       '"filter": OperandTiming(start_step=0, flip_steps=0, skew=False)'),
    _m("net-calc-write-pot", "network", "CALC ofmap write port rounded down to a power of two words per cycle",
       '"ofmap": cols}', '"ofmap": 1 << (cols.bit_length() - 1)}', only="npot"),
    _m("net-user-bw-pot", "network", "USER DRAM bandwidth rounded down to a power of two words per cycle",
       "hardware.dram_words_per_cycle)", "1 << (hardware.dram_words_per_cycle.bit_length() - 1))", only="npot"),
    # ---------------------------------------------------------------- memory
    _m("mem-hit-latency", "memory", "SRAM read hits served without the one-cycle latency",
       "HIT_LATENCY_CYCLES = 1", "HIT_LATENCY_CYCLES = 0"),
    _m("mem-active-fraction", "memory", "double buffer split 60/40 instead of half and half",
       "ACTIVE_FRACTION = 0.5", "ACTIVE_FRACTION = 0.6"),
    _m("mem-calc-epoch", "memory", "CALC read-estimate epoch of 40 sets instead of 50",
       "ESTIMATE_SETS_PER_HALF = 50", "ESTIMATE_SETS_PER_HALF = 40"),
    _m("mem-drain-length", "memory", "ofmap drain lasts one cycle longer (ofmap write timing)",
       "return cycle + count - 1 + self.latency", "return cycle + count + self.latency"),
    _m("mem-prefetch-arrival", "memory", "USER prefetch data arrives one cycle later (prefetch timing)",
       "return -1 + count * (self.rows_per_prefetch + self.latency)",
       "return count * (self.rows_per_prefetch + self.latency)"),
    _m("mem-read-stall", "memory", "a read stall ignores the hit latency (one stall cycle more per miss)",
       "read = max(0, read_events[row] - cycle - HIT_LATENCY_CYCLES)", "read = max(0, read_events[row] - cycle)"),
    _m("mem-trace-columns", "memory", "SRAM trace port columns written in reverse order",
       "sram[name] = np.concatenate((out[:, None], demand), axis=1)",
       "sram[name] = np.concatenate((out[:, None], demand[:, ::-1]), axis=1)"),
    _m("mem-user-dram-reads", "memory", "USER DRAM reads omit the initial fill",
       "dram_accesses[name] = (pre.first_rows + pre.total * pre.rows_per_prefetch) * pre.bw",
       "dram_accesses[name] = (pre.total * pre.rows_per_prefetch) * pre.bw"),
    _m("mem-total-plus1", "memory", "total cycles one more than the last served row",
       "total_cycles=int(last_out),", "total_cycles=int(last_out) + 1,"),
    _m("mem-stall-total", "memory", "reported stall cycles miss the last stall event",
       "stall_cycles=int(change_totals[-1]) if change_totals else 0,",
       "stall_cycles=int(change_totals[-2]) if len(change_totals) > 1 else 0,"),
    _m("mem-kib-1000", "memory", "SRAM sizes computed with 1000 words per KiB",
       "return (kib[name] * 1024) // hardware.word_bytes", "return (kib[name] * 1000) // hardware.word_bytes"),
    _m("mem-first-fill-floor", "memory", "USER first fill rounded down to whole DRAM rows (ceil -> floor)",
       "min(math.ceil(buffer.active_words / bw), fetch_rows)", "min(buffer.active_words // bw, fetch_rows)",
       only="npot"),
    _m("mem-prefetch-rows-floor", "memory", "USER rows per prefetch rounded down (ceil -> floor)",
       "math.ceil(buffer.other_words / bw), latency,", "buffer.other_words // bw, latency,", only="npot"),
    _m("mem-drain-lines-floor", "memory", "ofmap lines per drain rounded down (ceil -> floor)",
       "per_drain = math.ceil(self.buffer.other_words / self.bw)",
       "per_drain = self.buffer.other_words // self.bw", only="npot"),
    _m("mem-first-fill-cut", "memory", "USER DRAM trace: the first fill's last row not cut at the active half",
       "cut = active % bw if over else 0", "cut = 0", only="npot"),
    _m("mem-blocks-reread-new", "memory",
       "report-only CALC epochs: a later fold rereading the block the epoch began in counts all of it as new",
       "np.where(ls < fold, sizes[lo:hi]", "np.where(ls <= fold, sizes[lo:hi]", only="traces_off"),
    _m("mem-blocks-late-end", "memory",
       "report-only CALC epochs: an epoch closing in a later fold ends one address late",
       "found = (lo + k, need - before - 1)", "found = (lo + k, need - before)", only="traces_off"),
    _m("mem-blocks-open-plus1", "memory", "report-only CALC epochs: the open epoch holds one distinct address more",
       "return ends, epoch_words - need", "return ends, epoch_words - need + 1", only="traces_off"),
    _m("mem-blocks-need-plus1", "memory",
       "report-only CALC epochs: an epoch running past its fold needs one address more",
       "need = epoch_words - rest", "need = epoch_words - rest + 1", only="traces_off"),
    _m("mem-blocks-first-read-seen", "memory",
       "report-only CALC epochs: a block read for the first time counts as already seen",
       "last_same = _previous_in_group(by_block, ids[by_block])[0]",
       "last_same = _previous_in_group(by_block, ids[by_block])[0]\n"
       "    last_same = np.where(last_same < 0, np.arange(ids.size), last_same)", only="traces_off"),
    _m("mem-estimate-start-late", "memory", "report-only CALC estimate starts one demand row late (DRAM start)",
       "first_row = stream.busy_rows()[0]", "first_row = stream.busy_rows()[0] + 1", only="traces_off"),
    _m("mem-few-distinct-plus1", "memory", "report-only CALC shortcut (no epoch closes) reads one DRAM word more",
       "found[i] = _Epochs([], distinct, first_row, set_words)",
       "found[i] = _Epochs([], distinct + 1, first_row, set_words)", only="traces_off"),
    _m("mem-covered-next-window", "memory",
       "report-only distinct ifmap count takes the positions just before a window as covered",
       "np.count_nonzero(lo <= hi)", "np.count_nonzero(lo <= hi + 1)", only="traces_off"),
    _m("mem-covered-wider", "memory", "report-only distinct ifmap count: every window one position wider",
       "lo = np.maximum(0, -((window - 1 - y) // stride))", "lo = np.maximum(0, -((window - y) // stride))",
       only="traces_off"),
    _m("mem-distinct-matrix-plus1", "memory", "report-only distinct count of an all-distinct matrix one too many",
       "return m.n_rows * m.n_cols", "return m.n_rows * m.n_cols + 1", only="traces_off"),
    _m("mem-distinct-stride-w", "memory", "report-only distinct ifmap count walks columns with the row stride",
       "m.ifmap_w, m.filter_w, m.stride_w, m.ofmap_w) * m.channels",
       "m.ifmap_w, m.filter_w, m.stride_h, m.ofmap_w) * m.channels", only="traces_off"),
)


def _combine(id_: str, change: str, *parts: str) -> Mutant:
    by_id = {m.id: m for m in SINGLE_MUTANTS}
    return Mutant(id_, change, tuple(edit for part in parts for edit in by_id[part].edits))


DOUBLE_MUTANTS: tuple[Mutant, ...] = (
    _combine("two-offset+read-latency", "ifmap offset +1 and DRAM read latency 2", "map-ifmap-offset",
             "net-read-latency"),
    _combine("two-fold-order+hit-latency", "row fold outer and no SRAM hit latency", "map-fold-order-row-outer",
             "mem-hit-latency"),
    _combine("two-os-fold+drain", "OS fold +1 and ofmap drain +1", "net-os-fold-plus1", "mem-drain-length"),
    _combine("two-swap-dims+calc-bw", "OS dims swapped and CALC read bandwidth 8", "map-os-swap-dims",
             "net-calc-read-bw"),
    _combine("two-no-skew+columns", "OS ifmap unskewed and SRAM trace columns reversed", "net-os-ifmap-no-skew",
             "mem-trace-columns"),
    _combine("two-filter+active", "filter transposed and 60/40 buffer split", "map-filter-transposed",
             "mem-active-fraction"),
    _combine("two-util+write-latency", "OS compute utilisation off by one and DRAM write latency 1",
             "map-compute-util-fill", "net-write-latency"),
)

MUTANTS: tuple[Mutant, ...] = SINGLE_MUTANTS + DOUBLE_MUTANTS


def mutate_module(module: ModuleType, replacements: list[tuple[str, str]], name: str) -> ModuleType:
    """A new module made from ``module``'s source with textual replacements (each must apply exactly once)."""
    source = inspect.getsource(module)
    for old, new in replacements:
        count = source.count(old)
        if count != 1:
            raise ValueError(f"mutant {name}: {old!r} occurs {count} times in {module.__name__}")
        source = source.replace(old, new)
    package = module.__name__.rpartition(".")[0]
    variant = ModuleType(f"{package}._mutant_{name.replace('-', '_').replace('+', '_')}")
    variant.__package__ = package
    sys.modules[variant.__name__] = variant
    exec(compile(source, f"<{module.__name__} mutant {name}>", "exec"), variant.__dict__)
    return variant


def build(mutant: Mutant) -> dict[str, ModuleType]:
    """The candidate's three modules: the mutated ones and the reference's for the rest."""
    modules: dict[str, ModuleType] = {}
    for role in ROLES:
        reference = getattr(engine.REFERENCE, role)
        assert isinstance(reference, ModuleType)
        edits = [(old, new) for module, old, new in mutant.edits if module == role]
        modules[role] = mutate_module(reference, edits, f"{mutant.id}_{role}") if edits else reference
    return modules


def candidate_files(mutant: Mutant | None = None) -> dict[str, str]:
    """A candidate folder's files: the three modules (mutated where ``mutant`` says) and a copy of the contract."""
    files: dict[str, str] = {}
    for role in ROLES:
        source = inspect.getsource(getattr(engine.REFERENCE, role))
        for module, old, new in mutant.edits if mutant is not None else ():
            if module == role:
                if source.count(old) != 1:
                    raise ValueError(f"mutant {mutant.id if mutant else ''}: {old!r} does not occur once in {role}")
                source = source.replace(old, new)
        files[f"{role}.py"] = source
    files["contract.py"] = inspect.getsource(contract)
    return files
