"""Closed forms for SCALE-Sim's compute figures, vectorised over configurations x layer shapes.

:func:`cycle_figures` gives, for every (configuration, layer) pair, the five figures of
SCALE-Sim's compute report (total and stall cycles, overall utilisation, mapping efficiency,
compute utilisation) without running the memory model, and a mask ``exact`` saying where these
equal :func:`reference_sim.simulate_layer` exactly.  Elsewhere the figures are 0 and the caller
runs the engine (:func:`reference_sim.sweep.sweep` does, per pair).

The figures.  With ``Sr, Sc, T`` the spatial-row, spatial-column and temporal extents of the
dataflow (OS ``M, N, K``; WS ``K, N, M``; IS ``K, M, N``), ``folds = ceil(Sr/R) * ceil(Sc/C)``
and the fold length ``T + R + C - 2`` (OS) or ``T + 2R + C - 2`` (WS, IS), the layer takes
``folds * fold_length - 1 + stalls`` cycles; mapping efficiency and compute utilisation come from
the folds alone (as :mod:`reference_sim.mapping` computes them) and overall utilisation from the
MACs and the total.  The only model figure is the stall count, and it is 0 whenever

* the ofmap write buffer never makes the array wait.  A drain of ``n`` lines of ``bw`` words
  frees at least ``(n - 1) * bw + 1`` words and lasts ``n - 1`` cycles; if no demand row holds
  more than ``bw`` ofmap words, fewer than ``(n - 1) * bw`` words arrive meanwhile and the buffer
  (never less than empty when a drain starts) cannot fill.  In CALC mode ``bw`` is the array's
  column count, the ofmap's port count, so this always holds; in USER mode ``bw`` is the DRAM
  words per cycle, checked against the most ofmap words in a row (``min(steps, lanes)`` of the
  skewed ofmap block).  The buffer must hold at least 2 words (a drain of 0 lines is no drain);
* the read buffers never make the array wait.  In CALC mode they never do.  In USER mode they
  wait only on a prefetch, and there is none when the active half of the buffer already holds
  every line with an entry of the operand's fetch order:
  ``ceil(active_words / line_words) >= ceil(valid_entries / line_words)`` with
  ``line_words = ceil(words / 100)`` (the valid entries counted exactly, windows hanging over the
  ifmap edge left out).

The closed form also declines pairs on which the engine could raise, so a sweep's errors are the
engine's: in CALC mode two read-estimate epochs (of ``50 * (words // 100)`` distinct addresses)
end in one cycle only if a demand row holds more requests than an epoch, which cannot happen when
the operand's port count is at most the epoch size; the total must be positive (utilisation
divides by it); and every integer behind a float figure must be below 2**53, so that numpy's
float division rounds exactly as Python's ``int / int`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .contract import Hardware, Layer

_DATAFLOW_CODES = {"os": 0, "ws": 1, "is": 2}
_EXACT_FLOAT_LIMIT = 1 << 53
_EPOCH_SETS = 50
_BUFFER_PARTS = 100


@dataclass(frozen=True)
class CycleFigures:
    """Compute-report figures of every (configuration, layer) pair, shaped ``(configs, layers)``."""

    total_cycles: np.ndarray
    stall_cycles: np.ndarray
    overall_util_pct: np.ndarray
    mapping_efficiency_pct: np.ndarray
    compute_util_pct: np.ndarray
    exact: np.ndarray
    """True where the figures equal the engine's; elsewhere they are 0 and the engine must run."""


def _ceil_div(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    out: np.ndarray = -(-a // b)
    return out


def _covered_taps(size: int, window: int, stride: int, outputs: int) -> int:
    """Window taps inside the ifmap along one axis, summed over the ``outputs`` windows."""
    start = np.arange(outputs, dtype=np.int64) * stride
    return int(np.clip(size - start, 0, window).sum())


def valid_read_entries(layers: Sequence[Layer]) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, the ifmap and filter entries that are requests (windows over the ifmap edge left out)."""
    ifmap = np.array([
        _covered_taps(layer.ifmap_h, layer.filter_h, layer.stride_h, layer.ofmap_h)
        * _covered_taps(layer.ifmap_w, layer.filter_w, layer.stride_w, layer.ofmap_w) * layer.channels
        for layer in layers], dtype=np.int64)
    filters = np.array([layer.window * layer.num_filters for layer in layers], dtype=np.int64)
    return ifmap, filters


def _layer_columns(layers: Sequence[Layer]) -> dict[str, np.ndarray]:
    """Per layer, as ``(1, layers)`` arrays: M, N, K, MACs and the valid entries of each read operand."""
    m = np.array([layer.ofmap_pixels for layer in layers], dtype=np.int64)
    n = np.array([layer.num_filters for layer in layers], dtype=np.int64)
    k = np.array([layer.window for layer in layers], dtype=np.int64)
    ifmap_valid, filter_valid = valid_read_entries(layers)
    return {"m": m[None, :], "n": n[None, :], "k": k[None, :], "macs": (m * n * k)[None, :],
            "ifmap_valid": ifmap_valid[None, :], "filter_valid": filter_valid[None, :]}


def _config_columns(configs: Sequence[Hardware]) -> dict[str, np.ndarray]:
    """Per configuration, as ``(configs, 1)`` arrays: array shape, dataflow code, SRAM words, bandwidth."""
    def column(values: list[int]) -> np.ndarray:
        return np.array(values, dtype=np.int64)[:, None]

    return {
        "rows": column([hw.array_rows for hw in configs]),
        "cols": column([hw.array_cols for hw in configs]),
        "dataflow": column([_DATAFLOW_CODES[hw.dataflow] for hw in configs]),
        "ifmap_words": column([hw.ifmap_sram_kib * 1024 // hw.word_bytes for hw in configs]),
        "filter_words": column([hw.filter_sram_kib * 1024 // hw.word_bytes for hw in configs]),
        "ofmap_words": column([hw.ofmap_sram_kib * 1024 // hw.word_bytes for hw in configs]),
        "user": column([hw.bandwidth_mode == "USER" for hw in configs]).astype(bool),
        "words_per_cycle": column([hw.dram_words_per_cycle for hw in configs]),
    }


def _no_prefetch(words: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """True where a USER read buffer of ``words`` holds all ``valid`` entries in its active half."""
    safe = np.maximum(words, 1)
    line_words = _ceil_div(safe, _BUFFER_PARTS)
    active_lines = _ceil_div(_ceil_div(safe, 2), line_words)
    fits: np.ndarray = active_lines >= _ceil_div(valid, line_words)
    return fits


def cycle_figures(layers: Sequence[Layer], configs: Sequence[Hardware]) -> CycleFigures:
    """The compute figures of every layer on every configuration, and where they are exact."""
    lay = _layer_columns(layers)
    cfg = _config_columns(configs)
    r, c, df = cfg["rows"], cfg["cols"], cfg["dataflow"]
    m, n, k = lay["m"], lay["n"], lay["k"]
    os_, ws = df == 0, df == 1
    spatial_rows = np.where(os_, m, k)
    spatial_cols = np.where(df == 2, m, n)
    temporal = np.where(os_, k, np.where(ws, m, n))
    folds = _ceil_div(spatial_rows, r) * _ceil_div(spatial_cols, c)
    fold_cycles = temporal + r + c - 2 + np.where(os_, 0, r)
    total = folds * fold_cycles - 1
    mapped = spatial_rows * spatial_cols
    ideal_fold_cycles = np.where(os_, temporal + r + c - 2, 2 * r + 2 * c + temporal - 3)
    pes = r * c

    busiest_ofmap_row = np.where(os_, np.minimum(np.minimum(r, m), np.minimum(c, n)),
                                 np.where(ws, np.minimum(m, np.minimum(c, n)), np.minimum(n, np.minimum(c, m))))
    ofmap_bandwidth = np.where(cfg["user"], cfg["words_per_cycle"], c)
    exact = (cfg["ofmap_words"] >= 2) & (ofmap_bandwidth >= busiest_ofmap_row) & (total >= 1)
    ifmap_ports = np.where(df == 2, c, r)
    filter_ports = np.where(df == 2, r, c)
    calc_safe = ((ifmap_ports <= _EPOCH_SETS * (cfg["ifmap_words"] // _BUFFER_PARTS))
                 & (filter_ports <= _EPOCH_SETS * (cfg["filter_words"] // _BUFFER_PARTS)))
    user_safe = ((cfg["ifmap_words"] >= 2) & (cfg["filter_words"] >= 2)
                 & _no_prefetch(cfg["ifmap_words"], lay["ifmap_valid"])
                 & _no_prefetch(cfg["filter_words"], lay["filter_valid"]))
    exact &= np.where(cfg["user"], user_safe, calc_safe)

    numerators = (mapped * temporal, lay["macs"] * 100, mapped)
    denominators = (pes * ideal_fold_cycles * folds, total * pes, pes * folds)
    for value in (*numerators, *denominators):
        exact &= value < _EXACT_FLOAT_LIMIT
    mapped_t, macs_100, _ = numerators
    cu_den, ou_den, me_den = (np.where(exact, d, 1) for d in denominators)
    zero_int = np.zeros(exact.shape, dtype=np.int64)
    zero_float = np.zeros(exact.shape, dtype=np.float64)
    return CycleFigures(
        total_cycles=np.where(exact, total, zero_int),
        stall_cycles=zero_int,
        overall_util_pct=np.where(exact, macs_100 / ou_den, zero_float),
        mapping_efficiency_pct=np.where(exact, mapped / me_den * 100, zero_float),
        compute_util_pct=np.where(exact, mapped_t / cu_den * 100, zero_float),
        exact=exact,
    )
