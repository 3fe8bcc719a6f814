"""Built-in ``sparsity``: N:M structured weight sparsity, as an extension of the reference.

A sparse layer runs as the reference layer whose reduction keeps only the nonzeros (the filter stored
compressed, the MACs of zero weights skipped); the report adds the dense and compressed filter words
and the metadata words (``ceil(log2 M)`` bits per nonzero, packed filter by filter into words).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reference_sim.contract import Hardware, Layer
from reference_sim.engine import simulate
from reference_sim.errors import InputError

from ..api import FeatureRun, Params, TableRow
from ..semantics import GROUP_PARAM, KEPT_PARAM, SPARSITY_REPORT


def run(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    """The reference run of the sparse layers and one ``SPARSITY_REPORT.csv`` row per layer."""
    kept, group = int(params.get(KEPT_PARAM, 1)), int(params.get(GROUP_PARAM, 1))
    if kept > group:
        raise InputError("features.sparsity", f"{KEPT_PARAM} {kept} is above {GROUP_PARAM} {group}",
                         field=f"features.sparsity.{KEPT_PARAM}")
    sparse = [compressed(layer, kept, group) for layer in layers]
    results = simulate(sparse, hardware, traces=traces)
    bits = 0 if kept == group else (group - 1).bit_length()
    word_bits = 8 * hardware.word_bytes
    rows: list[TableRow] = []
    for index, (layer, layer_sparse) in enumerate(zip(layers, sparse)):
        metadata = layer.num_filters * -(-layer_sparse.window * bits // word_bits)
        filter_words = layer_sparse.window * layer.num_filters
        rows.append({"layer_id": float(index), "dense_macs": float(layer.macs), "macs": float(layer_sparse.macs),
                     "dense_filter_words": float(layer.window * layer.num_filters),
                     "filter_words": float(filter_words), "metadata_bits_per_nonzero": float(bits),
                     "metadata_words": float(metadata), "filter_and_metadata_words": float(filter_words + metadata)})
    return FeatureRun(results, {SPARSITY_REPORT: rows})


def keep(length: int, kept: int, group: int) -> int:
    """Positions N:M keeps of ``length``: N per whole group, ``min(N, rest)`` of a partial last group."""
    return (length // group) * kept + min(kept, length % group)


def compressed(layer: Layer, kept: int, group: int) -> Layer:
    """The layer of nonzeros: channels cut N:M, or the width of a one-channel layer whose filter spans it."""
    if kept == group:
        return layer
    if layer.channels > 1:
        return replace(layer, channels=keep(layer.channels, kept, group))
    if layer.filter_w == layer.ifmap_w:
        width = keep(layer.filter_w, kept, group)
        return replace(layer, ifmap_w=width, filter_w=width)
    return layer
