"""Seeded judge workloads: small layers of Table-2-like shapes on architecture variants covering every
dataflow and both bandwidth modes, and the settings of a feature's parameters to run them with."""

from __future__ import annotations

import random
from dataclasses import dataclass

from reference_sim.contract import Dataflow, Hardware, Layer

from .api import Case, ParamValue
from .catalogue import FeatureDef


@dataclass(frozen=True)
class Variant:
    name: str
    hardware: Hardware


def _conv(rng: random.Random, name: str, kernel: int, stride: int) -> Layer:
    size = rng.randint(kernel + 2, kernel + 5)
    return Layer(name, size, rng.randint(kernel + 1, kernel + 4), kernel, kernel, rng.choice([1, 2, 3]),
                 rng.randint(2, 6), stride, stride)


def _gemm(rng: random.Random, name: str) -> Layer:
    k = rng.randint(3, 10)
    return Layer(name, rng.randint(3, 9), k, 1, k, 1, rng.randint(2, 6), 1, 1)


def workload(rng: random.Random) -> tuple[Layer, ...]:
    """Four small layers: a 3x3 (or strided 5x5) conv, a 1x1 (or 2x2 stride-2, stackable or not) conv, a GEMM
    (shapes like ResNet's, MobileNet's and a Transformer's layers scaled down) and a 3x3 conv over 8 channels
    whose ifmap (over 800 words) outgrows a 1 KiB SRAM's active half, so small SRAMs stall."""
    first = _conv(rng, "conv3x3", 3, 1) if rng.random() < 0.6 else _conv(rng, "conv5x5s2", 5, 2)
    second = _conv(rng, "conv1x1", 1, 1) if rng.random() < 0.6 else _conv(rng, "conv2x2s2", 2, 2)
    if second.stride_h == 2 and second.ifmap_h % 2 and rng.random() < 0.5:
        second = Layer(second.name, second.ifmap_h + 1, second.ifmap_w, 2, 2, second.channels,
                       second.num_filters, 2, 2)
    pressure = Layer("conv3x3big", rng.randint(10, 12), rng.randint(10, 12), 3, 3, 8, rng.randint(3, 6), 1, 1)
    return first, second, _gemm(rng, "gemm"), pressure


def variants(rng: random.Random) -> list[Variant]:
    """Six architectures: each dataflow under CALC and under USER bandwidth (a 1 KiB ifmap SRAM and 1-3 words
    per cycle, so the large layer stalls); the input-stationary CALC one has 2-byte words."""
    out = []
    dataflows: tuple[Dataflow, ...] = ("os", "ws", "is")
    for dataflow in dataflows:
        for mode in ("CALC", "USER"):
            rows, cols = rng.choice([(4, 4), (4, 8), (8, 4)])
            kib = [1 if mode == "USER" else rng.choice([1, 2, 64]), rng.choice([1, 2, 64]), rng.choice([1, 2, 64])]
            word_bytes = 2 if (dataflow, mode) == ("is", "CALC") else 1
            hw = Hardware(rows, cols, dataflow, kib[0], kib[1], kib[2], bandwidth_mode=mode,
                          dram_words_per_cycle=rng.choice([1, 2, 3]), word_bytes=word_bytes)
            out.append(Variant(f"{dataflow}-{mode.lower()}-{rows}x{cols}-{kib[0]}.{kib[1]}.{kib[2]}kib"
                               f"{'-2byte' if word_bytes == 2 else ''}", hw))
    return out


def setting(feature: FeatureDef, rng: random.Random) -> dict[str, ParamValue]:
    """A non-neutral setting: each int parameter one of its judge values; each float a value drawn between
    its judge values (so no two coefficients are equal)."""
    params: dict[str, ParamValue] = {}
    for p in feature.parameters:
        values = p.judge_values()
        if p.type == "int":
            params[p.name] = rng.choice(values)
        else:
            params[p.name] = round(rng.uniform(min(values), max(values)), 4)
    return params


def neutral_cases(feature: FeatureDef, seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [Case(feature.name, f"neutral-{v.name}", workload(rng), v.hardware, feature.neutral())
            for v in variants(random.Random(seed + 1))]


def judged_cases(feature: FeatureDef, seed: int) -> list[Case]:
    """One case per variant with its own workload and non-neutral setting."""
    rng = random.Random(seed + 2)
    return [Case(feature.name, f"w{i}-{v.name}", workload(rng), v.hardware, setting(feature, rng))
            for i, v in enumerate(variants(random.Random(seed + 3)))]
