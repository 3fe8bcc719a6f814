"""Command line: ``python -m reference_sim`` with SCALE-Sim's flags, ``--arch`` specs, and ``convert``."""

from __future__ import annotations

import argparse
import ctypes
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .contract import Hardware, Layer
from .engine import DEFAULT_MAX_REQUESTS, MAX_REQUESTS_ENV, LayerResult, parse_max_requests, simulate
from .errors import InputError, SimulationError
from .progress import ProgressBar
from .reports import check_output, output_folder, summary_table, write_reports, write_traces
from .scalesim_io import read_config, read_topology

log = logging.getLogger("reference_sim")

USAGE_EXAMPLES = """examples:
  python -m reference_sim -c scale.cfg -t resnet50.csv -p out          # SCALE-Sim's reports in out/<run_name>/
  python -m reference_sim -c scale.cfg -t gemm.csv -i gemm --traces csv
  python -m reference_sim --arch scale_sim.yaml -p out                 # every workload of the spec
  python -m reference_sim convert -c scale.cfg -t resnet50.csv -o scale_sim.yaml
  python -m reference_sim sweep -c scale.cfg -t resnet50.csv --array 16x16,32x32 --dataflow os,ws -o sweep.csv
"""


def _run(layers: list[Layer], hardware: Hardware, out_root: Path, names: tuple[str, ...], traces: str, label: str,
         quiet: bool, limit: int | None = None) -> list[LayerResult]:
    """Simulate and write reports to ``out_root/names...`` (traces in its ``layerN`` folders)."""
    out_dir = output_folder(out_root, *names)
    progress = ProgressBar(label, unit="layers")
    want_traces = traces != "none"

    def on_layer(result: LayerResult) -> None:
        if result.traces is not None:
            write_traces(result.traces, output_folder(out_root, *names, f"layer{result.index}"),
                         csv=traces in ("csv", "both"), binary=traces in ("npz", "both"))
        progress(result.index + 1, len(layers), result.name)

    results = simulate(layers, hardware, traces=want_traces, on_layer=on_layer, keep_traces=False, limit=limit)
    write_reports(results, out_dir)
    if not quiet:
        print(summary_table(results))
        print(f"reports written to {out_dir}")
    return results


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_sim",
        description="Exact SCALE-Sim v2 (22f88b1) cycle simulator: reports, traces, specs.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("input (SCALE-Sim files or a spec)")
    source.add_argument("-c", dest="config", metavar="CFG", help="SCALE-Sim .cfg architecture file")
    source.add_argument("-t", dest="topology", metavar="TOPOLOGY", help="SCALE-Sim topology CSV")
    source.add_argument("-i", dest="input_type", choices=("conv", "gemm"), default="conv",
                        help="topology form: conv rows or M, N, K rows (default conv)")
    source.add_argument("--arch", metavar="SPEC", help="scale_sim.yaml spec; runs its workloads")
    source.add_argument("--workload", action="append", metavar="NAME",
                        help="with --arch: run only this workload (repeatable)")
    parser.add_argument("-p", dest="out", metavar="OUTDIR", default="runs",
                        help="output folder; reports go to OUTDIR/<run name>/ (default runs)")
    parser.add_argument("--traces", choices=("none", "csv", "npz", "both"), default="none",
                        help="also write per-layer traces: SCALE-Sim CSVs, binary npz, or both")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary table")
    parser.add_argument("--max-requests", type=max_requests_argument, default=None, metavar="N",
                        help=f"refuse a layer estimated above N requests (e.g. 5e9; default ${MAX_REQUESTS_ENV} "
                             f"or {DEFAULT_MAX_REQUESTS:.0e})")
    return parser


def max_requests_argument(text: str) -> int:
    """``--max-requests`` as argparse reads it; a bad value is a usage error (exit code 2)."""
    try:
        return parse_max_requests(text, "--max-requests")
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _convert_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_sim convert",
        description="Turn a SCALE-Sim .cfg (and topology) into an equivalent scale_sim.yaml.",
    )
    parser.add_argument("-c", dest="config", metavar="CFG", required=True)
    parser.add_argument("-t", dest="topology", metavar="TOPOLOGY")
    parser.add_argument("-i", dest="input_type", choices=("conv", "gemm"), default="conv")
    parser.add_argument("-o", dest="output", metavar="SPEC", default="-", help="output file (default stdout)")
    return parser


def _convert(argv: Sequence[str]) -> int:
    args = _convert_parser().parse_args(argv)
    from .spec import dump_spec, spec_from_scalesim

    cfg = read_config(args.config)
    topology = args.topology or cfg.topology_path
    if topology is None:
        raise InputError(args.config, "no topology: pass -t or set [network_presets] TopologyCsvLoc")
    layers = read_topology(topology, args.input_type)
    document = spec_from_scalesim(cfg.run_name, cfg.hardware, cfg.bandwidths, cfg.memory_banks,
                                  Path(topology).stem, layers, args.input_type == "gemm")
    text = dump_spec(document)
    check_output("-o", args.output, [args.config, topology])
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _sweep(argv: Sequence[str]) -> int:
    from .sweep import main as sweep_main

    return sweep_main(argv)


def _simulate(argv: Sequence[str]) -> int:
    parser = _run_parser()
    args = parser.parse_args(argv)
    check_output("-p", args.out, [])
    out = Path(args.out)
    if args.arch:
        if args.config or args.topology:
            parser.error("give either --arch or -c/-t, not both")
        from .spec import load_spec

        loaded = load_spec(args.arch)
        spec = loaded.spec
        names = args.workload or [w.name for w in spec.workloads]
        if not names:
            raise InputError(args.arch, "the spec has no workloads to run", field="workloads")
        hardware = spec.hardware()
        for name in names:
            _run(loaded.workload(name), hardware, out, (spec.name, name), args.traces, name, args.quiet,
                 args.max_requests)
        return 0
    if not args.config:
        parser.error("give -c CFG (with -t TOPOLOGY) or --arch SPEC")
    cfg = read_config(args.config)
    topology = args.topology or cfg.topology_path
    if topology is None:
        parser.error("give -t TOPOLOGY (the config names none)")
    layers = read_topology(topology, args.input_type)
    _run(layers, cfg.hardware, out, (cfg.run_name,), args.traces, Path(topology).stem, args.quiet, args.max_requests)
    return 0


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_BLOCK_BYTES = 32 << 20
"""Blocks up to this size come from the heap, not from their own mapping, in a ``python -m reference_sim`` run."""


def keep_freed_memory() -> bool:
    """Let glibc reuse freed blocks up to :data:`HEAP_BLOCK_BYTES` instead of unmapping them.

    By default every block above a few MiB gets its own mapping and goes back to the kernel when
    freed, so each numpy temporary of a big layer is page-faulted in afresh: a fifth of MobileNet's
    run under weight stationary was spent in the kernel.  Returns False where the C library has no
    ``mallopt`` (not glibc); nothing changes there.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES) and mallopt(_M_TRIM_THRESHOLD, 2 * HEAP_BLOCK_BYTES))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, 1 when the model cannot proceed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False
    try:
        if argv and argv[0] == "convert":
            return _convert(argv[1:])
        if argv and argv[0] == "sweep":
            return _sweep(argv[1:])
        return _simulate(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SimulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"cannot write {exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)
