"""Built-in ``batch``: B images per layer, as an extension of the reference.

A stackable layer (:func:`features.semantics.stackable`) runs as the reference layer of ``B * ifmap_h``
rows: its operand matrices are exactly the batch's (``B * M`` ofmap pixels, image after image).  Any
other layer runs image by image with the image's address offsets, each image starting when the one
before it ends, and the results are merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from reference_sim.contract import OPERANDS, Hardware, Layer, OperandName, TraceSet
from reference_sim.engine import LayerResult, check_work, layer_shape, simulate_layer

from ..api import FeatureRun, Params
from ..semantics import BATCH_PARAM, image_hardware, stackable, stacked_layer


def run(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    """One result per layer covering all ``batch_images`` images; with traces off a layer of the same shape as
    an earlier one reuses its result, as :func:`reference_sim.engine.simulate` does."""
    images = int(params.get(BATCH_PARAM, 1))
    for index, layer in enumerate(layers):
        check_work(stacked_layer(layer, images) if stackable(layer) else layer, hardware, index=index,
                   traces=traces)
    results: list[LayerResult] = []
    done: dict[Layer, LayerResult] = {}
    for index, layer in enumerate(layers):
        earlier = None if traces else done.get(layer_shape(layer))
        if earlier is not None:
            results.append(replace(earlier, index=index, name=layer.name))
            continue
        result = batch_layer(layer, hardware, images, index=index, traces=traces)
        if not traces:
            done[layer_shape(layer)] = result
        results.append(result)
    return FeatureRun(results)


def batch_layer(layer: Layer, hardware: Hardware, images: int, *, index: int = 0, traces: bool = False) -> LayerResult:
    """``images`` images of one layer."""
    if images == 1:
        return simulate_layer(layer, hardware, index=index, traces=traces)
    if stackable(layer):
        return simulate_layer(stacked_layer(layer, images), hardware, index=index, traces=traces)
    per_image = [simulate_layer(layer, image_hardware(hardware, layer, image), index=index, traces=traces)
                 for image in range(images)]
    return merge_images(layer, hardware, per_image)


def merge_images(layer: Layer, hardware: Hardware, per_image: Sequence[LayerResult]) -> LayerResult:
    """Images run back to back: every cycle of image ``b`` moves by the cycles (total + 1: SRAM trace cycles run
    from 1 to total + 1) of the images before it."""
    cycles = np.array([r.total_cycles for r in per_image], dtype=np.int64)
    shifts = np.concatenate([[0], np.cumsum(cycles + 1)[:-1]])
    first, last = per_image[0], per_image[-1]
    total = int(shifts[-1] + cycles[-1])

    def span(name: str, op: OperandName) -> tuple[float, float]:
        start = getattr(first, name)[op][0]
        stop = getattr(last, name)[op][1] + int(shifts[-1])
        return start, stop

    merged_traces = None
    if first.traces is not None:
        arrays: dict[str, np.ndarray] = {}
        for key in TraceSet.NAMES:
            parts = []
            for result, shift in zip(per_image, shifts):
                assert result.traces is not None
                part = np.array(getattr(result.traces, key), copy=True)
                part[:, 0] += shift
                parts.append(part)
            arrays[key] = np.concatenate(parts)
        merged_traces = TraceSet(**arrays)
    return replace(
        first,
        total_cycles=total,
        stall_cycles=sum(r.stall_cycles for r in per_image),
        overall_util_pct=(len(per_image) * layer.macs * 100) / (total * hardware.array_rows * hardware.array_cols),
        sram_accesses={op: sum(r.sram_accesses[op] for r in per_image) for op in OPERANDS},
        dram_accesses={op: sum(r.dram_accesses[op] for r in per_image) for op in OPERANDS},
        sram_start_stop={op: span("sram_start_stop", op) for op in OPERANDS},
        dram_start_stop={op: span("dram_start_stop", op) for op in OPERANDS},
        traces=merged_traces,
    )
