"""Reference mapping module: SCALE-Sim v2's operand matrices, folds and ideal compute figures.

``map_layer(layer, hardware)`` returns a :class:`LayerMapping`.  Per dataflow it chooses which
operand axes go to array rows (``Sr``), array columns (``Sc``) and time (``T``), cuts them into
folds (column fold outer, row fold inner) and says how each operand's fold block is laid out over
array ports.  No skew here: the network module owns fill and drain.
"""

from __future__ import annotations

import math

import numpy as np

from .contract import (
    AffineOperand,
    Hardware,
    Layer,
    LayerMapping,
    OperandName,
    OperandTiling,
    WindowOperand,
)


def _tilings(hardware: Hardware) -> dict[OperandName, OperandTiling]:
    """Per operand: which fold index selects its rows and columns, its lane count, and prefetch order."""
    rows, cols = hardware.array_rows, hardware.array_cols
    if hardware.dataflow == "os":
        return {
            "ifmap": OperandTiling("row", "row", "none", rows, prefetch_rollout=True),
            "filter": OperandTiling("col", "col", "none", cols, prefetch_rollout=True),
            "ofmap": OperandTiling("col", "col", "row", cols, prefetch_rollout=False),
        }
    if hardware.dataflow == "ws":
        return {
            "ifmap": OperandTiling("col", "row", "none", rows, prefetch_rollout=True),
            "filter": OperandTiling("col", "col", "row", cols, prefetch_rollout=False),
            "ofmap": OperandTiling("col", "col", "none", cols, prefetch_rollout=False),
        }
    return {
        "ifmap": OperandTiling("row", "col", "row", cols, prefetch_rollout=False),
        "filter": OperandTiling("row", "row", "none", rows, prefetch_rollout=True),
        "ofmap": OperandTiling("row", "col", "none", cols, prefetch_rollout=False),
    }


def map_layer(layer: Layer, hardware: Hardware) -> LayerMapping:
    """Map one layer onto the array for the hardware's dataflow."""
    m, n, k = layer.ofmap_pixels, layer.num_filters, layer.window
    rows, cols = hardware.array_rows, hardware.array_cols
    spatial_rows, spatial_cols, temporal = {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[
        hardware.dataflow
    ]
    row_folds = math.ceil(spatial_rows / rows)
    col_folds = math.ceil(spatial_cols / cols)
    num_folds = row_folds * col_folds
    fold_order = (
        np.tile(np.arange(row_folds, dtype=np.int64), col_folds),
        np.repeat(np.arange(col_folds, dtype=np.int64), row_folds),
    )

    mapped_macs = spatial_rows * spatial_cols
    ideal_fold_cycles = temporal + rows + cols - 2 if hardware.dataflow == "os" else 2 * rows + 2 * cols + temporal - 3
    mapping_efficiency = mapped_macs / (rows * cols * num_folds)
    compute_utilisation = mapped_macs * temporal / (rows * cols * ideal_fold_cycles * num_folds)

    block_reads = {
        "os": (temporal * spatial_rows * col_folds, temporal * spatial_cols * row_folds,
               mapped_macs + num_folds * (rows + cols)),
        "ws": (temporal * spatial_rows * col_folds, mapped_macs, temporal * spatial_cols * row_folds),
        "is": (mapped_macs, temporal * spatial_rows * col_folds, temporal * spatial_cols * row_folds),
    }[hardware.dataflow]

    return LayerMapping(
        layer=layer,
        dataflow=hardware.dataflow,
        array_rows=rows,
        array_cols=cols,
        spatial_rows=spatial_rows,
        spatial_cols=spatial_cols,
        temporal=temporal,
        row_folds=row_folds,
        col_folds=col_folds,
        fold_order=fold_order,
        ifmap=WindowOperand(
            offset=hardware.ifmap_offset,
            ifmap_h=layer.ifmap_h,
            ifmap_w=layer.ifmap_w,
            channels=layer.channels,
            filter_h=layer.filter_h,
            filter_w=layer.filter_w,
            stride_h=layer.stride_h,
            stride_w=layer.stride_w,
            ofmap_h=layer.ofmap_h,
            ofmap_w=layer.ofmap_w,
        ),
        filter=AffineOperand(offset=hardware.filter_offset, n_rows=k, n_cols=n, row_stride=1, col_stride=k),
        ofmap=AffineOperand(offset=hardware.ofmap_offset, n_rows=m, n_cols=n, row_stride=n, col_stride=1),
        tilings=_tilings(hardware),
        mapping_efficiency=mapping_efficiency,
        compute_utilisation=compute_utilisation,
        sram_reads_ifmap=block_reads[0],
        sram_reads_filter=block_reads[1],
        sram_writes_ofmap=block_reads[2],
    )
