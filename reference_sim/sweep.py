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
once per configuration (Transformer's 891 layers are 9 distinct shapes); results are identical to
:func:`reference_sim.simulate` layer for layer.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Literal

from .contract import BandwidthMode, Dataflow, Hardware, Layer
from .engine import simulate_layer
from .errors import InputError, SimulationError
from .progress import ProgressBar
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


_Task = tuple[int, Hardware, Layer]
_Outcome = tuple[int, Layer, _Figures | str]


def _run_task(task: _Task) -> _Outcome:
    """Worker: simulate one layer shape on one configuration (a failure comes back as its message)."""
    config_index, hardware, layer = task
    try:
        r = simulate_layer(layer, hardware)
    except SimulationError as exc:
        return config_index, layer, str(exc)
    return config_index, layer, _Figures(
        r.total_cycles, r.stall_cycles, r.overall_util_pct, r.mapping_efficiency_pct, r.compute_util_pct,
        (r.sram_accesses["ifmap"], r.sram_accesses["filter"], r.sram_accesses["ofmap"]),
        (r.dram_accesses["ifmap"], r.dram_accesses["filter"], r.dram_accesses["ofmap"]),
    )


def describe(hardware: Hardware) -> str:
    """A short label of the swept parameters, e.g. ``32x32 os sram 64/64/64 KiB USER:10``."""
    bandwidth = "CALC" if hardware.bandwidth_mode == "CALC" else f"USER:{hardware.dram_words_per_cycle}"
    return (f"{hardware.array_rows}x{hardware.array_cols} {hardware.dataflow} sram {hardware.ifmap_sram_kib}/"
            f"{hardware.filter_sram_kib}/{hardware.ofmap_sram_kib} KiB {bandwidth}")


def _shape(layer: Layer) -> Layer:
    return replace(layer, name="")


def sweep(
    layers: Sequence[Layer],
    configs: Sequence[Hardware],
    *,
    jobs: int | None = None,
    skip_errors: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[SweepRow]:
    """Simulate every layer on every configuration; rows in config order, then layer order.

    ``jobs`` worker processes (default ``os.cpu_count()``; ``1`` runs in this process).  A layer
    that SCALE-Sim itself cannot simulate on a configuration (:class:`SimulationError`) stops the
    sweep, or with ``skip_errors`` is left out with a warning.  ``on_progress(done, total)`` is
    called after each (configuration, distinct layer shape) finishes.
    """
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    first_name: dict[Layer, str] = {}
    for layer in layers:
        first_name.setdefault(_shape(layer), layer.name)
    shapes = list(first_name)
    tasks: list[_Task] = [(i, hw, shape) for i, hw in enumerate(configs) for shape in shapes]
    # Largest layers first so the last tasks to finish are short ones.
    tasks.sort(key=lambda t: -(t[2].macs // max(1, t[1].array_rows * t[1].array_cols)))
    figures: dict[tuple[int, Layer], _Figures] = {}
    done = 0

    def collect(outcomes: Iterable[_Outcome]) -> None:
        nonlocal done
        for config_index, shape, outcome in outcomes:
            done += 1
            if on_progress is not None:
                on_progress(done, len(tasks))
            if isinstance(outcome, str):
                message = (f"{describe(configs[config_index])}: layer {first_name[shape]!r} "
                           f"({_shape_text(shape)}): {outcome}")
                if not skip_errors:
                    raise SimulationError(message)
                log.warning("skipped: %s", message)
                continue
            figures[(config_index, shape)] = outcome

    workers = min(jobs, len(tasks))
    if workers <= 1:
        collect(map(_run_task, tasks))
    else:
        chunk = max(1, len(tasks) // (workers * 16))
        with multiprocessing.Pool(workers) as pool:
            collect(pool.imap_unordered(_run_task, tasks, chunksize=chunk))
    rows: list[SweepRow] = []
    for config_index, hw in enumerate(configs):
        for layer_index, layer in enumerate(layers):
            got = figures.get((config_index, _shape(layer)))
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


def write_csv(rows: Sequence[SweepRow], out: str | Path | IO[str]) -> None:
    """Write ``rows`` as one tidy CSV (header :data:`COLUMNS`) to a path or an open text stream."""
    if isinstance(out, (str, Path)):
        with Path(out).open("w", newline="") as stream:
            write_csv(rows, stream)
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(v) for v in dataclasses.astuple(row)])


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
    axes.add_argument("--dataflow", metavar="DF,...", help="dataflows, e.g. os,ws,is")
    axes.add_argument("--bandwidth", metavar="MODE,...", help="DRAM bandwidth modes, e.g. CALC,USER:10,USER:4")
    parser.add_argument("-o", dest="output", metavar="CSV", default="-", help="output CSV (default stdout)")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                        help="worker processes (default: all cores)")
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
    base, layers = _base_and_layers(args, parser)
    configs = grid(
        base,
        arrays=parse_arrays(args.array) if args.array else (),
        sram_kib=parse_sram(args.sram_kib) if args.sram_kib else (),
        dataflows=parse_dataflows(args.dataflow) if args.dataflow else (),
        bandwidths=parse_bandwidths(args.bandwidth) if args.bandwidth else (),
    )
    jobs = args.jobs or os.cpu_count() or 1
    start = time.perf_counter()
    rows = sweep(layers, configs, jobs=jobs, skip_errors=args.keep_going,
                 on_progress=ProgressBar(f"sweep {len(configs)} configs", unit="tasks"))
    seconds = time.perf_counter() - start
    if args.output == "-":
        write_csv(rows, sys.stdout)
    else:
        write_csv(rows, args.output)
    totals: dict[str, int] = {}
    for row in rows:
        bandwidth = "CALC" if row.words_per_cycle is None else f"USER:{row.words_per_cycle}"
        key = (f"{row.array_rows}x{row.array_cols} {row.dataflow} sram {row.ifmap_sram_kib}/{row.filter_sram_kib}/"
               f"{row.ofmap_sram_kib} KiB {bandwidth}")
        totals[key] = totals.get(key, 0) + row.total_cycles
    summary = (f"{len(configs)} configurations x {len(layers)} layers = {len(rows)} rows in {seconds:.2f} s "
               f"({len(configs) / seconds:.1f} configurations/s, {jobs} jobs)")
    if totals:
        best = min(totals, key=lambda k: totals[k])
        summary += f"; fewest cycles: {best} ({totals[best]} cycles)"
    if args.output != "-":
        summary += f"; wrote {args.output}"
    print(summary, file=sys.stderr)
    return 0

