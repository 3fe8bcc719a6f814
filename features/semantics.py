"""The definitions the features are specified by, shared by the property library and the oracles.

Batch: image ``b`` of a layer reads its ifmap at ``ifmap_offset + b * image_words`` and writes its ofmap at
``ofmap_offset + b * ofmap_words``; the filter is shared.  A layer whose images stack (``filter_h ==
stride_h`` and ``ifmap_h`` a multiple of ``stride_h``: every GEMM, every 1x1 stride-1 conv) runs as one
layer of ``B * ifmap_h`` rows, i.e. ``B * M`` ofmap pixels image after image; any other layer runs its
images back to back.  Energy: each pJ column is one count of the run times one coefficient of the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from reference_sim.contract import NO_REQUEST, Hardware, Layer, OperandName

BATCH_PARAM = "batch_images"
ENERGY_REPORT = "ENERGY_REPORT.csv"

ENERGY_COUNT_COLUMNS = (
    "macs", "idle_pe_cycles",
    "ifmap_sram_reads_words", "filter_sram_reads_words", "ofmap_sram_reads_words",
    "ifmap_sram_writes_words", "filter_sram_writes_words", "ofmap_sram_writes_words",
    "dram_reads_words", "dram_writes_words",
)
ENERGY_PJ_COLUMNS = {
    "mac_pj": ("macs", "pj_per_mac"),
    "idle_pj": ("idle_pe_cycles", "idle_pj_per_pe_cycle"),
    "ifmap_sram_read_pj": ("ifmap_sram_reads_words", "ifmap_sram_read_pj_per_word"),
    "filter_sram_read_pj": ("filter_sram_reads_words", "filter_sram_read_pj_per_word"),
    "ofmap_sram_read_pj": ("ofmap_sram_reads_words", "ofmap_sram_read_pj_per_word"),
    "ifmap_sram_write_pj": ("ifmap_sram_writes_words", "ifmap_sram_write_pj_per_word"),
    "filter_sram_write_pj": ("filter_sram_writes_words", "filter_sram_write_pj_per_word"),
    "ofmap_sram_write_pj": ("ofmap_sram_writes_words", "ofmap_sram_write_pj_per_word"),
    "dram_read_pj": ("dram_reads_words", "dram_read_pj_per_word"),
    "dram_write_pj": ("dram_writes_words", "dram_write_pj_per_word"),
}
"""pJ column -> (the count it multiplies, the table coefficient)."""
ENERGY_COLUMNS = ("layer_id", *ENERGY_COUNT_COLUMNS, *ENERGY_PJ_COLUMNS, "total_pj")


def image_words(layer: Layer) -> int:
    """Words of one image's ifmap."""
    return layer.ifmap_h * layer.ifmap_w * layer.channels


def ofmap_words(layer: Layer) -> int:
    """Words of one image's ofmap."""
    return layer.ofmap_pixels * layer.num_filters


def stackable(layer: Layer) -> bool:
    """Whether B images stacked along ``ifmap_h`` form exactly the layer of ``B * M`` ofmap pixels."""
    return layer.filter_h == layer.stride_h and layer.ifmap_h % layer.stride_h == 0


def stacked_layer(layer: Layer, images: int) -> Layer:
    """The layer of ``images`` stacked images (only for a :func:`stackable` layer)."""
    return replace(layer, ifmap_h=layer.ifmap_h * images)


def image_hardware(hardware: Hardware, layer: Layer, image: int) -> Hardware:
    """The hardware whose address map puts image ``image`` of ``layer`` where the batch puts it."""
    return replace(hardware, ifmap_offset=hardware.ifmap_offset + image * image_words(layer),
                   ofmap_offset=hardware.ofmap_offset + image * ofmap_words(layer))


# --------------------------------------------------------------------------- cores

CORES_PARAM = "cores"
SPLIT_PARAM = "split_axis"
SPLIT_FILTERS = 0
"""``split_axis`` 0: each core computes a block of filters (ofmap columns)."""
SPLIT_PIXELS = 1
"""``split_axis`` 1: each core computes a block of ofmap rows (ofmap pixels, whole image rows)."""
CORES_REPORT = "CORES_REPORT.csv"
CORES_COLUMNS = (
    "layer_id", "core_id", "first_unit", "units", "dram_words_per_cycle", "total_cycles", "stall_cycles", "macs",
    "ifmap_sram_reads_words", "filter_sram_reads_words", "ofmap_sram_writes_words",
    "ifmap_dram_reads_words", "filter_dram_reads_words", "ofmap_dram_writes_words",
)


def bottom_row_hangs(layer: Layer) -> bool:
    """Whether the last ofmap row's windows reach below the ifmap (only the last row can)."""
    return (layer.ofmap_h - 1) * layer.stride_h + layer.filter_h > layer.ifmap_h


def core_ranges(layer: Layer, cores: int, axis: int) -> list[tuple[int, int]]:
    """Per core, its ``[first, stop)`` block of filters or of ofmap rows.  ``U`` units (filters, or ofmap rows
    less a hanging bottom row) are cut at ``floor(c * U / cores)``; the last block also takes a hanging bottom
    row, so no core's ifmap is shorter than the filter."""
    units = layer.num_filters if axis == SPLIT_FILTERS else layer.ofmap_h
    cut = units - (1 if axis == SPLIT_PIXELS and bottom_row_hangs(layer) else 0)
    starts = [c * cut // cores for c in range(cores)]
    return list(zip(starts, [*starts[1:], units]))


def core_layer(layer: Layer, axis: int, first: int, stop: int) -> Layer:
    """The layer one core runs: ``stop - first`` filters, or the ifmap rows that ofmap rows ``first..stop-1``
    read (clipped at the ifmap's bottom)."""
    if axis == SPLIT_FILTERS:
        return replace(layer, num_filters=stop - first)
    rows = min((stop - first - 1) * layer.stride_h + layer.filter_h, layer.ifmap_h - first * layer.stride_h)
    return replace(layer, ifmap_h=rows)


def core_words_per_cycle(words_per_cycle: int, core: int, cores: int) -> int:
    """Core ``core``'s USER DRAM words per cycle: ``floor(w / cores)``, one more for the first ``w mod cores``
    cores, and at least 1."""
    return max(1, words_per_cycle // cores + (1 if core < words_per_cycle % cores else 0))


def core_hardware(hardware: Hardware, layer: Layer, axis: int, first: int, core: int, cores: int) -> Hardware:
    """The hardware one core sees: its operands' offsets and its share of the DRAM bandwidth.  A core writes its
    ofmap block contiguously after the blocks of the cores before it."""
    if axis == SPLIT_FILTERS:
        moved = replace(hardware, filter_offset=hardware.filter_offset + first * layer.window,
                        ofmap_offset=hardware.ofmap_offset + first * layer.ofmap_pixels)
    else:
        moved = replace(hardware,
                        ifmap_offset=hardware.ifmap_offset + first * layer.stride_h * layer.ifmap_w * layer.channels,
                        ofmap_offset=hardware.ofmap_offset + first * layer.ofmap_w * layer.num_filters)
    return replace(moved, dram_words_per_cycle=core_words_per_cycle(hardware.dram_words_per_cycle, core, cores))


# --------------------------------------------------------------------------- sparsity

KEPT_PARAM = "kept_weights"
GROUP_PARAM = "group_weights"
SPARSITY_REPORT = "SPARSITY_REPORT.csv"
SPARSITY_COLUMNS = ("layer_id", "dense_macs", "macs", "dense_filter_words", "filter_words",
                    "metadata_bits_per_nonzero", "metadata_words", "filter_and_metadata_words")


def kept_of(length: int, kept: int, group: int) -> int:
    """Nonzeros N:M keeps of ``length`` positions: ``N`` of every whole group of ``M``, and ``min(N, rest)``
    of a last partial group."""
    return (length // group) * kept + min(kept, length % group)


def sparse_layer(layer: Layer, kept: int, group: int) -> Layer:
    """The layer a N:M sparse layer runs as.  Groups run along the channels (within each filter tap); a
    one-channel layer whose filter spans the ifmap width (every GEMM) has them along the width instead; any
    other one-channel layer stays dense."""
    if kept >= group:
        return layer
    if layer.channels > 1:
        return replace(layer, channels=kept_of(layer.channels, kept, group))
    if layer.filter_w == layer.ifmap_w:
        width = kept_of(layer.filter_w, kept, group)
        return replace(layer, ifmap_w=width, filter_w=width)
    return layer


def metadata_bits(kept: int, group: int) -> int:
    """Bits of metadata per nonzero: ``ceil(log2(M))`` (the nonzero's position in its group); none when dense."""
    return 0 if kept >= group else (group - 1).bit_length()


def metadata_words(layer: Layer, kept: int, group: int, word_bytes: int) -> int:
    """Metadata words of a layer: each filter's nonzeros' bits packed into whole words of ``8 x word_bytes``
    bits, filter by filter."""
    nonzeros = sparse_layer(layer, kept, group).window
    word_bits = 8 * word_bytes
    return layer.num_filters * -(-nonzeros * metadata_bits(kept, group) // word_bits)


def effective_layer(params: Mapping[str, float], layer: Layer) -> Layer:
    """The layer as a feature's setting makes it (the sparse layer under ``sparsity``; else unchanged)."""
    if KEPT_PARAM in params and GROUP_PARAM in params:
        return sparse_layer(layer, int(params[KEPT_PARAM]), int(params[GROUP_PARAM]))
    return layer


# --------------------------------------------------------------------------- memory banks

BANKS_PARAM = "sram_banks"
PORTS_PARAM = "sram_bank_ports"
INTERFACE_PARAMS: dict[OperandName, str] = {
    "ifmap": "ifmap_dram_words_per_cycle", "filter": "filter_dram_words_per_cycle",
    "ofmap": "ofmap_dram_words_per_cycle",
}
BANKS_REPORT = "BANKS_REPORT.csv"
BANKS_COLUMNS = ("layer_id", "conflict_cycles", "ifmap_conflict_rows", "filter_conflict_rows", "ofmap_conflict_rows",
                 "ifmap_dram_words_per_cycle", "filter_dram_words_per_cycle", "ofmap_dram_words_per_cycle")


def interface_words_per_cycle(hardware: Hardware, params: Mapping[str, float], name: OperandName) -> int:
    """An interface's USER DRAM words per cycle: its own parameter, or the global one where that is 0."""
    own = int(params.get(INTERFACE_PARAMS[name], 0))
    return own if own > 0 else hardware.dram_words_per_cycle


def row_conflicts(addresses: np.ndarray, banks: int, ports: int) -> np.ndarray:
    """Extra cycles of each row of an SRAM trace (addresses, ``-1`` for none): with ``ports`` > 0 the row's
    requests to bank ``address mod banks`` are served ``ports`` per cycle, so the row takes
    ``ceil(busiest bank's requests / ports) - 1`` extra cycles (requests for one address count separately)."""
    rows = np.asarray(addresses, dtype=np.int64)
    if ports == 0 or rows.size == 0:
        return np.zeros(rows.shape[0], dtype=np.int64)
    valid = rows != NO_REQUEST
    keys = (np.arange(rows.shape[0], dtype=np.int64)[:, None] * banks + rows % banks)[valid]
    load = np.bincount(keys, minlength=rows.shape[0] * banks).reshape(rows.shape[0], banks).max(axis=1)
    extra: np.ndarray = np.maximum(0, -(-load // ports) - 1)
    return extra
