"""Design-space sweeps: one topology over a grid of architectures, on all cores, as one tidy CSV.

In-process::

    from reference_sim import Hardware, read_topology
    from reference_sim.sweep import grid, sweep, write_csv

    base = Hardware(array_rows=32, array_cols=32, dataflow="os",
                    ifmap_sram_kib=64, filter_sram_kib=64, ofmap_sram_kib=64)
    configs = grid(base, arrays=[(16, 16), (32, 32)], sram_kib=[(32, 32, 32), (64, 64, 64)],
                   dataflows=["os", "ws", "is"], bandwidths=[("CALC", None), ("USER", 10)])
    rows = sweep(read_topology("resnet50.csv"), configs, jobs=4)   # one SweepRow per config x layer
    write_csv(rows, "sweep.csv")

Command line (``python -m reference_sim sweep``)::

    python -m reference_sim sweep -c scale.cfg -t resnet50.csv --array 16x16,32x32 \\
        --sram-kib 32,64 --dataflow os,ws,is --bandwidth CALC,USER:10 -o sweep.csv

Anything not swept keeps the base architecture's value (``-c CFG``, ``--arch SPEC``, or SCALE-Sim's
``scale.cfg``: 32x32, OS, 64 KiB per operand, CALC).  Layers with the same shape are simulated
once per configuration (Transformer's 891 layers are 9 distinct shapes), and configurations that differ
only in SRAM sizes share each layer's mapping and each read buffer's work per size
(:func:`reference_sim.engine.simulate_layer_srams`; :func:`sram_product` and ``--ifmap-sram-kib`` etc.
sweep each SRAM on its own axis); results are identical to :func:`reference_sim.simulate` layer for layer.

``figures="cycles"`` (``--figures cycles``) reports only the compute figures (total and stall
cycles, utilisation, mapping efficiency), from :mod:`reference_sim.closed_form` wherever it is
exact and from the engine elsewhere: thousands of configurations per second in CALC mode.
:func:`pareto_rows` (``--pareto CSV``) keeps the configurations not dominated in (topology cycles,
SRAM KiB, array PEs).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Literal, NamedTuple, overload

import numpy as np

from .closed_form import CycleFigures, cycle_figures
from .contract import BandwidthMode, Dataflow, Hardware, Layer
from .engine import check_work, layer_shape, simulate_layer_srams, without_srams
from .errors import InputError, SimulationError, WorkLimitError
from .executors import EXECUTORS, Executor, JobFailed, LocalExecutor, make_executor
from .progress import ProgressBar
from .reports import check_output
from .scalesim_io import DATAFLOWS, read_config, read_topology

log = logging.getLogger(__name__)

DEFAULT_BASE = Hardware(array_rows=32, array_cols=32, dataflow="os",
                        ifmap_sram_kib=64, filter_sram_kib=64, ofmap_sram_kib=64)
"""SCALE-Sim's ``configs/scale.cfg``: the base when neither ``-c`` nor ``--arch`` is given."""

Bandwidth = tuple[BandwidthMode, int | None]
"""``("CALC", None)`` or ``("USER", words_per_cycle)``."""


@dataclass(frozen=True)
class SweepRow:
    """One configuration x one layer: the architecture first, then SCALE-Sim's report figures."""

    array_rows: int
    array_cols: int
    dataflow: Dataflow
    ifmap_sram_kib: int
    filter_sram_kib: int
    ofmap_sram_kib: int
    bandwidth_mode: BandwidthMode
    words_per_cycle: int | None
    """DRAM words per cycle per interface in USER mode; ``None`` (an empty cell) in CALC mode."""
    layer_index: int
    layer_name: str
    total_cycles: int
    stall_cycles: int
    overall_util_pct: float
    mapping_efficiency_pct: float
    compute_util_pct: float
    sram_ifmap_reads: int
    sram_filter_reads: int
    sram_ofmap_writes: int
    dram_ifmap_reads: int
    dram_filter_reads: int
    dram_ofmap_writes: int


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SweepRow))

Figures = Literal["full", "cycles"]
"""What a sweep reports: every figure (:class:`SweepRow`) or the compute figures only (:class:`CycleRow`)."""
FIGURES: tuple[Figures, ...] = ("full", "cycles")


class CycleRow(NamedTuple):
    """One configuration x one layer with ``figures="cycles"``: the architecture, then the compute figures.

    The SRAM and DRAM access counts of :class:`SweepRow` are not computed, so they are not columns.
    """

    array_rows: int
    array_cols: int
    dataflow: Dataflow
    ifmap_sram_kib: int
    filter_sram_kib: int
    ofmap_sram_kib: int
    bandwidth_mode: BandwidthMode
    words_per_cycle: int | None
    layer_index: int
    layer_name: str
    total_cycles: int
    stall_cycles: int
    overall_util_pct: float
    mapping_efficiency_pct: float
    compute_util_pct: float


CYCLE_COLUMNS: tuple[str, ...] = CycleRow._fields
CONFIG_COLUMNS: tuple[str, ...] = COLUMNS[:8]
_CLOSED_FORM_CHUNK = 1024
"""Configurations per closed-form batch (one progress step each)."""


@dataclass(frozen=True)
class _Figures:
    """What a worker sends back for one (configuration, layer shape)."""

    total_cycles: int
    stall_cycles: int
    overall_util_pct: float
    mapping_efficiency_pct: float
    compute_util_pct: float
    sram: tuple[int, int, int]
    dram: tuple[int, int, int]


_Task = tuple[tuple[int, ...], tuple[Hardware, ...], Layer]
"""Configurations (indices and hardware) that differ only in SRAM sizes, and one layer shape."""
_Outcome = tuple[int, Layer, _Figures | str]


def _run_task(task: _Task) -> list[_Outcome]:
    """Worker: simulate one layer shape on configurations that differ only in SRAM sizes (each failure
    comes back as its message)."""
    config_indices, hardwares, layer = task
    try:
        results = simulate_layer_srams(layer, hardwares)
    except SimulationError as exc:
        return [(config_index, layer, str(exc)) for config_index in config_indices]
    outcomes: list[_Outcome] = []
    for config_index, r in zip(config_indices, results, strict=True):
        if isinstance(r, SimulationError):
            outcomes.append((config_index, layer, str(r)))
            continue
        outcomes.append((config_index, layer, _Figures(
            r.total_cycles, r.stall_cycles, r.overall_util_pct, r.mapping_efficiency_pct, r.compute_util_pct,
            (r.sram_accesses["ifmap"], r.sram_accesses["filter"], r.sram_accesses["ofmap"]),
            (r.dram_accesses["ifmap"], r.dram_accesses["filter"], r.dram_accesses["ofmap"]),
        )))
    return outcomes


def _group(pairs: Iterable[tuple[int, Layer]], configs: Sequence[Hardware]) -> list[_Task]:
    """(configuration, layer shape) pairs as tasks, one per layer shape and configuration apart from its
    SRAM sizes, biggest first so the last tasks to finish are short ones."""
    groups: dict[tuple[Hardware, Layer], list[int]] = {}
    for config_index, shape in pairs:
        groups.setdefault((without_srams(configs[config_index]), shape), []).append(config_index)
    tasks = [(tuple(indices), tuple(configs[i] for i in indices), shape) for (_, shape), indices in groups.items()]
    tasks.sort(key=lambda t: -(t[2].macs // max(1, t[1][0].array_rows * t[1][0].array_cols)) * len(t[0]))
    return tasks


def describe(hardware: Hardware) -> str:
    """A short label of the swept parameters, e.g. ``32x32 os sram 64/64/64 KiB USER:10``."""
    bandwidth = "CALC" if hardware.bandwidth_mode == "CALC" else f"USER:{hardware.dram_words_per_cycle}"
    return (f"{hardware.array_rows}x{hardware.array_cols} {hardware.dataflow} sram {hardware.ifmap_sram_kib}/"
            f"{hardware.filter_sram_kib}/{hardware.ofmap_sram_kib} KiB {bandwidth}")


@overload
def sweep(
    layers: Sequence[Layer],
    configs: Sequence[Hardware],
    *,
    figures: Literal["full"] = ...,
    jobs: int | None = ...,
    skip_errors: bool = ...,
    on_progress: Callable[[int, int], None] | None = ...,
    executor: Executor | None = ...,
) -> list[SweepRow]: ...


@overload
def sweep(
    layers: Sequence[Layer],
    configs: Sequence[Hardware],
    *,
    figures: Literal["cycles"],
    jobs: int | None = ...,
    skip_errors: bool = ...,
    on_progress: Callable[[int, int], None] | None = ...,
    executor: Executor | None = ...,
) -> list[CycleRow]: ...


@overload
def sweep(
    layers: Sequence[Layer],
    configs: Sequence[Hardware],
    *,
    figures: Figures,
    jobs: int | None = ...,
    skip_errors: bool = ...,
    on_progress: Callable[[int, int], None] | None = ...,
    executor: Executor | None = ...,
) -> list[SweepRow] | list[CycleRow]: ...


def sweep(
    layers: Sequence[Layer],
    configs: Sequence[Hardware],
    *,
    figures: Figures = "full",
    jobs: int | None = None,
    skip_errors: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> list[SweepRow] | list[CycleRow]:
    """Simulate every layer on every configuration; rows in config order, then layer order.

    ``figures="full"`` returns :class:`SweepRow` objects with every figure; ``"cycles"`` returns
    :class:`CycleRow` objects with the compute figures only, from
    :func:`reference_sim.closed_form.cycle_figures` wherever that is exact and from the engine for
    the other (configuration, layer shape) pairs.

    ``jobs`` worker processes (default ``os.cpu_count()``; ``1`` runs in this process).  A layer
    that SCALE-Sim itself cannot simulate on a configuration (:class:`SimulationError`) stops the
    sweep, or with ``skip_errors`` is left out with a warning.  Layers beyond the work limit
    (:func:`~reference_sim.engine.check_work`) are found before any job starts: the first one stops
    the sweep there, or with ``skip_errors`` each is left out with a warning.  ``on_progress(done, total)`` is
    called after each (configuration, distinct layer shape) the engine finishes, and with
    ``"cycles"`` after each batch of closed-form configurations.  ``executor`` runs the
    (configuration, layer shape) jobs elsewhere, e.g. :class:`reference_sim.executors.RayExecutor`
    (default: ``jobs`` local processes); a job it lost comes back as a failed layer.
    """
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if figures not in FIGURES:
        raise ValueError(f"figures must be 'full' or 'cycles', got {figures!r}")
    first: dict[Layer, tuple[int, Layer]] = {}
    for index, layer in enumerate(layers):
        first.setdefault(layer_shape(layer), (index, layer))
    first_name = {shape: layer.name for shape, (_, layer) in first.items()}
    shapes = list(first)
    pairs = len(configs) * len(shapes)
    closed: CycleFigures | None = None
    done = 0
    if figures == "cycles":
        closed = _closed_form(shapes, configs, pairs, on_progress)
        done = int(closed.exact.sum())
        log.info("closed form exact for %d of %d (configuration, layer shape) pairs", done, pairs)
        wanted = [(int(c), shapes[int(s)]) for c, s in np.argwhere(~closed.exact)]
    else:
        wanted = [(i, shape) for i in range(len(configs)) for shape in shapes]
    kept, refused = _within_work_limit(wanted, configs, first, skip_errors)
    done += refused
    tasks = _group(kept, configs)
    simulated: dict[tuple[int, Layer], _Figures] = {}

    def collect(outcomes: Iterable[_Outcome]) -> None:
        nonlocal done
        for config_index, shape, outcome in outcomes:
            done += 1
            if on_progress is not None:
                on_progress(done, pairs)
            if isinstance(outcome, str):
                message = (f"{describe(configs[config_index])}: layer {first_name[shape]!r} "
                           f"({_shape_text(shape)}): {outcome}")
                if not skip_errors:
                    raise SimulationError(message)
                log.warning("skipped: %s", message)
                continue
            simulated[(config_index, shape)] = outcome

    def settled(index: int, outcome: list[_Outcome] | JobFailed) -> list[_Outcome]:
        if isinstance(outcome, JobFailed):
            return [(config_index, tasks[index][2], outcome.message) for config_index in tasks[index][0]]
        return outcome

    runner = executor or LocalExecutor(jobs, kind="process")
    collect(pair for index, outcome in runner.map_unordered(_run_task, tasks) for pair in settled(index, outcome))
    if closed is not None:
        return _cycle_rows(layers, configs, shapes, closed, simulated)
    rows: list[SweepRow] = []
    for config_index, hw in enumerate(configs):
        for layer_index, layer in enumerate(layers):
            got = simulated.get((config_index, layer_shape(layer)))
            if got is None:
                continue
            rows.append(SweepRow(
                hw.array_rows, hw.array_cols, hw.dataflow, hw.ifmap_sram_kib, hw.filter_sram_kib,
                hw.ofmap_sram_kib, hw.bandwidth_mode,
                hw.dram_words_per_cycle if hw.bandwidth_mode == "USER" else None,
                layer_index, layer.name, got.total_cycles, got.stall_cycles, got.overall_util_pct,
                got.mapping_efficiency_pct, got.compute_util_pct, *got.sram, *got.dram,
            ))
    return rows


def _within_work_limit(pairs: list[tuple[int, Layer]], configs: Sequence[Hardware],
                       first: dict[Layer, tuple[int, Layer]], skip_errors: bool) -> tuple[list[tuple[int, Layer]], int]:
    """The (configuration, layer shape) pairs within the work limit, and how many were left out (each with a
    warning); without ``skip_errors`` the first one beyond it raises its :class:`WorkLimitError`, naming the
    configuration.  ``first`` maps each layer shape to its first layer and that layer's index."""
    kept: list[tuple[int, Layer]] = []
    for config_index, shape in pairs:
        index, layer = first[shape]
        try:
            check_work(layer, configs[config_index], index=index, where=describe(configs[config_index]))
        except WorkLimitError as refused:
            if not skip_errors:
                raise
            log.warning("skipped before the sweep started: %s", refused)
            continue
        kept.append((config_index, shape))
    return kept, len(pairs) - len(kept)


def _closed_form(shapes: Sequence[Layer], configs: Sequence[Hardware], pairs: int,
                 on_progress: Callable[[int, int], None] | None) -> CycleFigures:
    """:func:`cycle_figures` in batches of configurations, reporting the exact pairs as done after each."""
    parts: list[CycleFigures] = []
    exact = 0
    for start in range(0, len(configs), _CLOSED_FORM_CHUNK):
        part = cycle_figures(shapes, configs[start:start + _CLOSED_FORM_CHUNK])
        parts.append(part)
        exact += int(part.exact.sum())
        if on_progress is not None:
            on_progress(exact, pairs)
    if not parts:
        return cycle_figures(shapes, configs)
    return CycleFigures(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(CycleFigures)))


def _cycle_rows(layers: Sequence[Layer], configs: Sequence[Hardware], shapes: Sequence[Layer],
                closed: CycleFigures, simulated: dict[tuple[int, Layer], _Figures]) -> list[CycleRow]:
    """Rows from the closed-form figures, with the engine's figures where the closed form was not exact."""
    shape_index = {shape: i for i, shape in enumerate(shapes)}
    values = [closed.total_cycles.copy(), closed.stall_cycles.copy(), closed.overall_util_pct.copy(),
              closed.mapping_efficiency_pct.copy(), closed.compute_util_pct.copy()]
    present = closed.exact.copy()
    for (config_index, shape), got in simulated.items():
        s = shape_index[shape]
        figures = (got.total_cycles, got.stall_cycles, got.overall_util_pct, got.mapping_efficiency_pct,
                   got.compute_util_pct)
        for column, value in zip(values, figures):
            column[config_index, s] = value
        present[config_index, s] = True
    shape_of_layer = np.array([shape_index[layer_shape(layer)] for layer in layers], dtype=np.int64)
    keep = present[:, shape_of_layer].reshape(-1)
    config_of = np.repeat(np.arange(len(configs)), len(layers))[keep]
    layer_of = np.tile(np.arange(len(layers)), len(configs))[keep]

    def per_config(column: Sequence[object]) -> list[object]:
        picked: list[object] = np.array(column, dtype=object)[config_of].tolist()
        return picked

    columns: list[list[object]] = [
        per_config([hw.array_rows for hw in configs]),
        per_config([hw.array_cols for hw in configs]),
        per_config([hw.dataflow for hw in configs]),
        per_config([hw.ifmap_sram_kib for hw in configs]),
        per_config([hw.filter_sram_kib for hw in configs]),
        per_config([hw.ofmap_sram_kib for hw in configs]),
        per_config([hw.bandwidth_mode for hw in configs]),
        per_config([hw.dram_words_per_cycle if hw.bandwidth_mode == "USER" else None for hw in configs]),
        layer_of.tolist(),
        np.array([layer.name for layer in layers], dtype=object)[layer_of].tolist(),
        *(column[:, shape_of_layer].reshape(-1)[keep].tolist() for column in values),
    ]
    return list(map(CycleRow._make, zip(*columns)))


def _shape_text(layer: Layer) -> str:
    return (f"ifmap {layer.ifmap_h}x{layer.ifmap_w}x{layer.channels}, filter {layer.filter_h}x{layer.filter_w} "
            f"x{layer.num_filters}, stride {layer.stride_h}/{layer.stride_w}")


def grid(
    base: Hardware,
    *,
    arrays: Sequence[tuple[int, int]] = (),
    sram_kib: Sequence[tuple[int, int, int]] = (),
    dataflows: Sequence[Dataflow] = (),
    bandwidths: Sequence[Bandwidth] = (),
) -> list[Hardware]:
    """Every combination of the given values (an empty axis keeps ``base``'s value); duplicates dropped."""
    array_axis = list(arrays) or [(base.array_rows, base.array_cols)]
    sram_axis = list(sram_kib) or [(base.ifmap_sram_kib, base.filter_sram_kib, base.ofmap_sram_kib)]
    dataflow_axis = list(dataflows) or [base.dataflow]
    bandwidth_axis = list(bandwidths) or [(base.bandwidth_mode, base.dram_words_per_cycle)]
    configs: dict[Hardware, None] = {}
    for rows, cols in array_axis:
        for ifmap, filt, ofmap in sram_axis:
            for dataflow in dataflow_axis:
                for mode, words in bandwidth_axis:
                    hw = replace(base, array_rows=rows, array_cols=cols, dataflow=dataflow, ifmap_sram_kib=ifmap,
                                 filter_sram_kib=filt, ofmap_sram_kib=ofmap, bandwidth_mode=mode,
                                 dram_words_per_cycle=base.dram_words_per_cycle if words is None else words)
                    configs[hw] = None
    return list(configs)


def _items(flag: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise InputError(flag, f"empty value in {text!r} (give a comma-separated list)")
    return items


def _positive(flag: str, raw: str, what: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InputError(flag, f"{raw!r} is not an integer ({what})") from None
    if value < 1:
        raise InputError(flag, f"must be positive, got {value} ({what})")
    return value


def parse_arrays(text: str, flag: str = "--array") -> list[tuple[int, int]]:
    """``"16x16,32x8"`` -> ``[(16, 16), (32, 8)]`` (rows x cols); a lone ``N`` means ``NxN``."""
    arrays = []
    for item in _items(flag, text):
        parts = item.lower().split("x")
        if len(parts) == 1 and parts[0].isdigit():
            parts = parts * 2
        if len(parts) != 2:
            raise InputError(flag, f"{item!r} is not ROWSxCOLS (e.g. 32x32)")
        arrays.append((_positive(flag, parts[0], "array rows"), _positive(flag, parts[1], "array cols")))
    return arrays


def parse_sram(text: str, flag: str = "--sram-kib") -> list[tuple[int, int, int]]:
    """``"32,64"`` -> every operand 32 then 64 KiB; ``"32/64/16"`` sets ifmap/filter/ofmap separately."""
    sizes = []
    for item in _items(flag, text):
        parts = item.split("/")
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3:
            raise InputError(flag, f"{item!r} is not KIB or IFMAP/FILTER/OFMAP KiB (e.g. 64 or 32/64/16)")
        ifmap, filt, ofmap = (_positive(flag, p, "SRAM KiB") for p in parts)
        sizes.append((ifmap, filt, ofmap))
    return sizes


def sram_product(base: Hardware, ifmap_kib: Sequence[int] = (), filter_kib: Sequence[int] = (),
                 ofmap_kib: Sequence[int] = ()) -> list[tuple[int, int, int]]:
    """Every (ifmap, filter, ofmap) KiB combination of the three lists (an empty one keeps ``base``'s
    size): a ``sram_kib`` axis for :func:`grid` that sweeps each SRAM on its own."""
    return list(itertools.product(ifmap_kib or [base.ifmap_sram_kib], filter_kib or [base.filter_sram_kib],
                                  ofmap_kib or [base.ofmap_sram_kib]))


def parse_kib(text: str, flag: str) -> list[int]:
    """``"32,64"`` -> ``[32, 64]`` (KiB of one SRAM)."""
    return [_positive(flag, item, "SRAM KiB") for item in _items(flag, text)]


def parse_dataflows(text: str, flag: str = "--dataflow") -> list[Dataflow]:
    """``"os,ws,is"`` -> ``["os", "ws", "is"]``."""
    flows: list[Dataflow] = []
    for item in _items(flag, text):
        name = item.lower()
        match = next((d for d in DATAFLOWS if d == name), None)
        if match is None:
            raise InputError(flag, f"unknown dataflow {item!r} (expected os, ws or is)")
        flows.append(match)
    return flows


def parse_bandwidths(text: str, flag: str = "--bandwidth") -> list[Bandwidth]:
    """``"CALC,USER:10,USER:4"`` -> ``[("CALC", None), ("USER", 10), ("USER", 4)]``."""
    modes: list[Bandwidth] = []
    for item in _items(flag, text):
        mode, sep, words = item.partition(":")
        mode = mode.strip().upper()
        if mode == "CALC" and not sep:
            modes.append(("CALC", None))
        elif mode == "USER" and sep:
            modes.append(("USER", _positive(flag, words.strip(), "DRAM words per cycle")))
        elif mode == "USER":
            raise InputError(flag, f"{item!r}: USER needs words per cycle, e.g. USER:10")
        else:
            raise InputError(flag, f"{item!r} is not CALC or USER:WORDS (e.g. CALC,USER:10)")
    return modes


def _cell(value: object) -> object:
    return "" if value is None else value


def write_csv(rows: Sequence[SweepRow] | Sequence[CycleRow], out: str | Path | IO[str], *,
              figures: Figures | None = None) -> None:
    """Write ``rows`` as one tidy CSV to a path or an open text stream.

    The header is :data:`COLUMNS` for :class:`SweepRow` rows and :data:`CYCLE_COLUMNS` for
    :class:`CycleRow` rows (``figures`` says which when ``rows`` is empty).
    """
    if isinstance(out, (str, Path)):
        with Path(out).open("w", newline="") as stream:
            write_csv(rows, stream, figures=figures)
        return
    cycles = figures == "cycles" if figures is not None else bool(rows) and isinstance(rows[0], CycleRow)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CYCLE_COLUMNS if cycles else COLUMNS)
    for row in rows:
        writer.writerow(row if isinstance(row, CycleRow) else [_cell(v) for v in dataclasses.astuple(row)])


class ParetoRow(NamedTuple):
    """One configuration on the Pareto front: the architecture and the three figures traded off."""

    array_rows: int
    array_cols: int
    dataflow: Dataflow
    ifmap_sram_kib: int
    filter_sram_kib: int
    ofmap_sram_kib: int
    bandwidth_mode: BandwidthMode
    words_per_cycle: int | None
    total_cycles: int
    """Sum over the topology's layers."""
    sram_kib: int
    """ifmap + filter + ofmap SRAM."""
    array_pes: int


PARETO_COLUMNS: tuple[str, ...] = ParetoRow._fields


def pareto_front(points: Sequence[Sequence[int]]) -> list[int]:
    """Indices, ascending, of the points no other point dominates (every coordinate is minimised).

    ``q`` dominates ``p`` when it is no larger in every coordinate and smaller in one; equal
    points do not dominate each other, so duplicates on the front are all kept.
    """
    if not points:
        return []
    values = np.array(points, dtype=np.int64)
    order = np.lexsort(values.T[::-1])
    front = np.empty((len(points), values.shape[1]), dtype=np.int64)
    kept: list[int] = []
    for index in order.tolist():
        p = values[index]
        held = front[: len(kept)]
        if (np.all(held <= p, axis=1) & np.any(held < p, axis=1)).any():
            continue
        front[len(kept)] = p
        kept.append(index)
    return sorted(kept)


def pareto_rows(rows: Sequence[SweepRow] | Sequence[CycleRow], layers: int) -> list[ParetoRow]:
    """The configurations of a sweep not dominated in (topology cycles, SRAM KiB, array PEs), in sweep order.

    A configuration with fewer than ``layers`` rows (layers left out with ``skip_errors``) has no
    topology total and is left out.
    """
    first: dict[tuple[object, ...], SweepRow | CycleRow] = {}
    totals: dict[tuple[object, ...], int] = {}
    counts: dict[tuple[object, ...], int] = {}
    for row in rows:
        key = (row.array_rows, row.array_cols, row.dataflow, row.ifmap_sram_kib, row.filter_sram_kib,
               row.ofmap_sram_kib, row.bandwidth_mode, row.words_per_cycle)
        first.setdefault(key, row)
        totals[key] = totals.get(key, 0) + row.total_cycles
        counts[key] = counts.get(key, 0) + 1
    candidates = [
        ParetoRow(r.array_rows, r.array_cols, r.dataflow, r.ifmap_sram_kib, r.filter_sram_kib, r.ofmap_sram_kib,
                  r.bandwidth_mode, r.words_per_cycle, totals[key],
                  r.ifmap_sram_kib + r.filter_sram_kib + r.ofmap_sram_kib, r.array_rows * r.array_cols)
        for key, r in first.items() if counts[key] == layers
    ]
    if len(candidates) < len(first):
        log.warning("Pareto front: %d configurations with layers left out are not on it",
                    len(first) - len(candidates))
    return [candidates[i] for i in pareto_front([(c.total_cycles, c.sram_kib, c.array_pes) for c in candidates])]


def write_pareto(rows: Sequence[ParetoRow], out: str | Path | IO[str]) -> None:
    """Write Pareto rows as a CSV (header :data:`PARETO_COLUMNS`) to a path or an open text stream."""
    if isinstance(out, (str, Path)):
        with Path(out).open("w", newline="") as stream:
            write_pareto(rows, stream)
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PARETO_COLUMNS)
    writer.writerows(rows)


def read_csv(text: str) -> list[dict[str, str]]:
    """The rows of a sweep CSV as dicts of strings (for checking and quick analysis)."""
    return list(csv.DictReader(io.StringIO(text)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_sim sweep",
        description="Simulate one topology on a grid of architectures in parallel; write one tidy CSV "
                    "(one row per configuration x layer).",
        epilog="example:\n  python -m reference_sim sweep -c scale.cfg -t resnet50.csv --array 16x16,32x32 "
               "--sram-kib 32,64 --dataflow os,ws,is --bandwidth CALC,USER:10 -o sweep.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    base = parser.add_argument_group("base architecture and topology")
    base.add_argument("-c", dest="config", metavar="CFG", help="SCALE-Sim .cfg: base values for what is not swept")
    base.add_argument("--arch", metavar="SPEC", help="scale_sim.yaml: base architecture (instead of -c)")
    base.add_argument("--workload", metavar="NAME", help="with --arch and no -t: the spec workload to sweep")
    base.add_argument("-t", dest="topology", metavar="TOPOLOGY", help="SCALE-Sim topology CSV")
    base.add_argument("-i", dest="input_type", choices=("conv", "gemm"), default="conv",
                      help="topology form: conv rows or M, N, K rows (default conv)")
    axes = parser.add_argument_group("grid (each a comma-separated list; omitted: the base value)")
    axes.add_argument("--array", metavar="RxC,...", help="array sizes, e.g. 16x16,32x32,64x16")
    axes.add_argument("--sram-kib", metavar="KIB,...", help="SRAM KiB per operand, e.g. 32,64 or 32/64/16 "
                      "(ifmap/filter/ofmap)")
    for operand in ("ifmap", "filter", "ofmap"):
        axes.add_argument(f"--{operand}-sram-kib", metavar="KIB,...",
                          help=f"{operand} SRAM KiB on its own axis (instead of --sram-kib): the three "
                               "--*-sram-kib lists give every combination")
    axes.add_argument("--dataflow", metavar="DF,...", help="dataflows, e.g. os,ws,is")
    axes.add_argument("--bandwidth", metavar="MODE,...", help="DRAM bandwidth modes, e.g. CALC,USER:10,USER:4")
    parser.add_argument("-o", dest="output", metavar="CSV", default="-", help="output CSV (default stdout)")
    parser.add_argument("--figures", default="full", metavar="full|cycles",
                        help="full: every report figure (default); cycles: total and stall cycles, utilisation "
                             "and mapping efficiency only, in closed form where exact (much faster)")
    parser.add_argument("--pareto", metavar="CSV", help="also write the configurations not dominated in "
                        "(topology cycles, SRAM KiB, array PEs)")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                        help="worker processes (default: all cores)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="where the jobs run: local processes, or a Ray cluster (default local)")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="with --executor ray: the cluster (e.g. ray://head:10001; default RAY_ADDRESS, "
                             "else a local Ray)")
    parser.add_argument("--keep-going", action="store_true",
                        help="leave out layers SCALE-Sim cannot simulate on a configuration, with a warning")
    return parser


def _base_and_layers(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Hardware, list[Layer]]:
    kind: Literal["conv", "gemm"] = "gemm" if args.input_type == "gemm" else "conv"
    if args.config and args.arch:
        parser.error("give either -c CFG or --arch SPEC, not both")
    if args.arch:
        from .spec import load_spec

        loaded = load_spec(args.arch)
        base = loaded.spec.hardware()
        if args.topology:
            return base, read_topology(args.topology, kind)
        names = [w.name for w in loaded.spec.workloads]
        name = args.workload or (names[0] if len(names) == 1 else None)
        if name is None:
            raise InputError(args.arch, f"give -t TOPOLOGY or --workload (one of: {', '.join(names) or 'none'})",
                             field="workloads")
        return base, loaded.workload(name)
    topology = args.topology
    base = DEFAULT_BASE
    if args.config:
        cfg = read_config(args.config)
        base = cfg.hardware
        topology = topology or cfg.topology_path
    if not topology:
        parser.error("give -t TOPOLOGY (or --arch SPEC --workload NAME)")
    return base, read_topology(topology, kind)


def main(argv: Sequence[str]) -> int:
    """``python -m reference_sim sweep``: parse the grid, run it on all cores, write the CSV."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        raise InputError("--jobs", f"must be positive, got {args.jobs}")
    figures = next((f for f in FIGURES if f == args.figures.strip().lower()), None)
    if figures is None:
        raise InputError("--figures", f"{args.figures!r} is not full or cycles")
    inputs = [args.config, args.arch, args.topology]
    check_output("-o", args.output, inputs)
    if args.pareto is not None:
        check_output("--pareto", args.pareto, [*inputs, args.output])
    if args.pareto and not Path(args.pareto).resolve().parent.is_dir():
        raise InputError("--pareto", f"folder {str(Path(args.pareto).parent)!r} does not exist")
    base, layers = _base_and_layers(args, parser)
    per_operand = {flag: text for flag, text in (("--ifmap-sram-kib", args.ifmap_sram_kib),
                                                 ("--filter-sram-kib", args.filter_sram_kib),
                                                 ("--ofmap-sram-kib", args.ofmap_sram_kib)) if text is not None}
    if per_operand and args.sram_kib:
        raise InputError(next(iter(per_operand)), "give either --sram-kib or the --*-sram-kib axes, not both")
    sram_kib = parse_sram(args.sram_kib) if args.sram_kib else ()
    if per_operand:
        ifmap, filt, ofmap = ([] if flag not in per_operand else parse_kib(per_operand[flag], flag)
                              for flag in ("--ifmap-sram-kib", "--filter-sram-kib", "--ofmap-sram-kib"))
        sram_kib = sram_product(base, ifmap, filt, ofmap)
    configs = grid(
        base,
        arrays=parse_arrays(args.array) if args.array else (),
        sram_kib=sram_kib,
        dataflows=parse_dataflows(args.dataflow) if args.dataflow else (),
        bandwidths=parse_bandwidths(args.bandwidth) if args.bandwidth else (),
    )
    jobs = args.jobs or os.cpu_count() or 1
    executor = make_executor(args.executor, jobs=jobs, kind="process", ray_address=args.ray_address)
    start = time.perf_counter()
    rows = sweep(layers, configs, figures=figures, jobs=jobs, skip_errors=args.keep_going, executor=executor,
                 on_progress=ProgressBar(f"sweep {len(configs)} configs", unit="tasks"))
    seconds = time.perf_counter() - start
    if args.output == "-":
        write_csv(rows, sys.stdout, figures=figures)
    else:
        write_csv(rows, args.output, figures=figures)
    totals: dict[str, int] = {}
    for row in rows:
        bandwidth = "CALC" if row.words_per_cycle is None else f"USER:{row.words_per_cycle}"
        key = (f"{row.array_rows}x{row.array_cols} {row.dataflow} sram {row.ifmap_sram_kib}/{row.filter_sram_kib}/"
               f"{row.ofmap_sram_kib} KiB {bandwidth}")
        totals[key] = totals.get(key, 0) + row.total_cycles
    summary = (f"{len(configs)} configurations x {len(layers)} layers = {len(rows)} rows in {seconds:.2f} s "
               f"({len(configs) / max(seconds, 1e-9):.1f} configurations/s, {figures} figures, "
               f"{f'{jobs} jobs' if executor.name == 'local' else 'on Ray'})")
    if totals:
        best = min(totals, key=lambda k: totals[k])
        summary += f"; fewest cycles: {best} ({totals[best]} cycles)"
    if args.output != "-":
        summary += f"; wrote {args.output}"
    if args.pareto:
        front = pareto_rows(rows, len(layers))
        write_pareto(front, args.pareto)
        summary += f"; {len(front)} configurations on the Pareto front, wrote {args.pareto}"
    print(summary, file=sys.stderr)
    return 0

