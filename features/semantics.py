"""The definitions the features are specified by, shared by the property library and the oracles.

Batch: image ``b`` of a layer reads its ifmap at ``ifmap_offset + b * image_words`` and writes its ofmap at
``ofmap_offset + b * ofmap_words``; the filter is shared.  A layer whose images stack (``filter_h ==
stride_h`` and ``ifmap_h`` a multiple of ``stride_h``: every GEMM, every 1x1 stride-1 conv) runs as one
layer of ``B * ifmap_h`` rows, i.e. ``B * M`` ofmap pixels image after image; any other layer runs its
images back to back.  Energy: each pJ column is one count of the run times one coefficient of the table.
"""

from __future__ import annotations

from dataclasses import replace

from reference_sim.contract import Hardware, Layer

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
