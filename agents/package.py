"""The generated simulator as a standalone Python package: numpy and the standard library, nothing else.

:func:`write_package` turns a candidate folder (``mapping.py``, ``network.py``, ``memory.py``, perhaps
helper files and a copy of the contract) into ``dest_parent/<name>/``, a package that runs on its own::

    python -m <name> -c scale.cfg -t net.csv -p out        # out/<run_name>/COMPUTE_REPORT.csv, ...
    python -m <name> -c scale.cfg -t mnk.csv --gemm --traces

It holds the candidate's modules, the contract and its errors, and the glue that runs layers and
writes SCALE-Sim's reports (``engine``, ``reports``, ``scalesim_io``, ``progress``, copied from
``reference_sim``; their ``from . import mapping`` picks up the candidate's modules), a command line
(``cli.py``, ``__main__.py``), ``__init__.py``, ``README.txt`` and ``PACKAGE.json`` (file list with
SHA-256 digests).  Every file of the result is parsed (never run) and refused with
:class:`PackageError` when it imports anything outside numpy, the standard library and the package.
"""

from __future__ import annotations

import ast
import hashlib
import json
import keyword
import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from string import Template

import reference_sim
from agents.package_base import ALLOWED_THIRD_PARTY, STDLIB, PackageError, bound_names
from agents.package_features import FEATURE_GLUE_FILES, PackagedFeature, cli_blocks, feature_files, readme_section
from judge.harness.rules import parse

log = logging.getLogger(__name__)

PACKAGE_FORMAT = "simcoder-package/1"
"""The ``format`` of ``PACKAGE.json``; also what marks a folder as one this module may overwrite."""
MANIFEST_FILE = "PACKAGE.json"
README_FILE = "README.txt"
REFERENCE_DIR = Path(reference_sim.__file__).resolve().parent
MODULE_FILES: dict[str, str] = {"mapping.py": "map_layer", "network.py": "schedule", "memory.py": "simulate"}
"""The candidate's three modules and the function each must define."""
CONTRACT_FILES = ("contract.py", "errors.py")
"""Shipped from ``reference_sim``; a candidate's copies must be identical to them."""
GLUE_FILES = ("engine.py", "reports.py", "scalesim_io.py", "progress.py")
"""Copied from ``reference_sim``: running layers and writing SCALE-Sim's reports."""
GENERATED_FILES = ("__init__.py", "__main__.py", "cli.py", README_FILE, MANIFEST_FILE)
RESERVED_NAMES = frozenset(name.removesuffix(".py") for name in (*GLUE_FILES, *GENERATED_FILES, *FEATURE_GLUE_FILES))
"""Module names the package's own files take: a candidate file of that name is refused."""
DYNAMIC_IMPORTS = frozenset({"__import__", "import_module"})


def package_name_for(spec_name: str) -> str:
    """A valid, lower-case Python package name for a spec: ``"scale_example_run_32x32_os"`` -> ``"..._os_sim"``.

    Runs of anything but ASCII letters, digits and ``_`` become one ``_``; a name that would start with
    a digit (or be empty) gets ``sim_`` in front; ``_sim`` is appended, which keeps the name clear of
    keywords and of standard-library modules.
    """
    base = re.sub(r"[^0-9a-z_]+", "_", spec_name.lower()).strip("_")
    base = re.sub(r"_+", "_", base)
    if not base or base[0].isdigit():
        base = f"sim_{base}".rstrip("_")
    name = base if base.endswith("_sim") else f"{base}_sim"
    assert name_problem(name) is None, name
    return name


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a standalone package's name (one line), or ``None`` when it can."""
    if not name.isascii() or not name.isidentifier():
        return f"{name!r} is not a Python identifier (ASCII letters, digits and _, not starting with a digit)"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"{name!r} is a Python keyword"
    if name in STDLIB or name in ALLOWED_THIRD_PARTY:
        return f"{name!r} would shadow the module {name} it needs"
    return None


def _import_reason(name: str, level: int, own: frozenset[str], package: str) -> str | None:
    """Why importing ``name`` (``level`` leading dots) leaves the package, or ``None`` when it does not."""
    top = name.partition(".")[0]
    if level > 1:
        return "a relative import beyond the package"
    if level == 1:
        return None if not top or top in own else f"the package has no module {top}"
    if top == package:
        inner = name.split(".")[1:2]
        return None if not inner or inner[0] in own else f"the package has no module {inner[0]}"
    if top in ALLOWED_THIRD_PARTY or top == "__future__" or top in STDLIB:
        return None
    return "not numpy, the standard library or the package itself"


def _source_problems(text: str, file: str, own: frozenset[str], package: str) -> list[str]:
    try:
        tree = parse(text, file)
    except SyntaxError as exc:
        return [f"{file}:{exc.lineno or 0}: does not parse ({exc.msg})"]
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                why = _import_reason(alias.name, 0, own, package)
                if why:
                    problems.append(f"{file}:{node.lineno}: import {alias.name} ({why})")
        elif isinstance(node, ast.ImportFrom):
            dots = "." * node.level
            if node.level == 1 and not node.module:
                for alias in node.names:
                    why = _import_reason(alias.name, 1, own, package)
                    if why:
                        problems.append(f"{file}:{node.lineno}: from . import {alias.name} ({why})")
                continue
            why = _import_reason(node.module or "", node.level, own, package)
            if why:
                problems.append(f"{file}:{node.lineno}: from {dots}{node.module or ''} import ... ({why})")
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called not in DYNAMIC_IMPORTS:
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                why = _import_reason(first.value, 0, own, package)
                if why:
                    problems.append(f"{file}:{node.lineno}: {called}({first.value!r}) ({why})")
            else:
                problems.append(f"{file}:{node.lineno}: {called}(...) with a computed name (cannot be checked)")
    return problems


def import_problems(folder: Path, package: str | None = None) -> list[str]:
    """Every import in ``folder/*.py`` that reaches outside numpy, the standard library and the folder.

    ``package`` is the folder's package name (default: the folder's name), for absolute imports of
    itself.  Also refused: relative imports beyond the folder, ``__import__``/``import_module`` of
    anything else or of a computed name, and files that do not parse.  One ``file:line: what (why)``
    per problem, in file order.
    """
    own = frozenset(path.stem for path in folder.glob("*.py"))
    problems: list[str] = []
    for path in sorted(folder.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        problems += _source_problems(text, path.name, own, package or folder.name)
    return problems


def _candidate_sources(candidate_dir: Path) -> dict[str, bytes]:
    """The candidate's files the package takes: its three modules and its other own ``*.py`` files."""
    if not candidate_dir.is_dir():
        raise PackageError(f"{candidate_dir}: candidate folder not found")
    missing = [name for name in MODULE_FILES if not (candidate_dir / name).is_file()]
    if missing:
        raise PackageError(f"{candidate_dir}: the candidate has no {', '.join(missing)} (a simulator needs "
                           f"{', '.join(MODULE_FILES)})")
    files: dict[str, bytes] = {}
    for path in sorted(candidate_dir.glob("*.py")):
        if not path.is_file():
            continue
        if path.name in CONTRACT_FILES:
            if path.read_bytes() != (REFERENCE_DIR / path.name).read_bytes():
                raise PackageError(f"{path}: differs from reference_sim/{path.name}; the package ships the "
                                   f"contract verbatim and a candidate may not change it")
            continue
        if path.stem in RESERVED_NAMES:
            raise PackageError(f"{path}: {path.name} is a file of the package itself; rename the candidate's module")
        files[path.name] = path.read_bytes()
    for name, function in MODULE_FILES.items():
        text = files[name].decode("utf-8", errors="replace")
        try:
            tree = parse(text, name)
        except SyntaxError as exc:
            raise PackageError(f"{candidate_dir / name}:{exc.lineno or 0}: does not parse ({exc.msg})") from None
        if function not in bound_names(tree):
            raise PackageError(f"{candidate_dir / name}: defines no {function}() (the module contract needs it)")
    return files


def _manifest(folder: Path, name: str, candidate_files: list[str], features: Sequence[PackagedFeature],
              added: list[str]) -> str:
    digests = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
               for path in sorted(folder.iterdir()) if path.is_file() and path.name != MANIFEST_FILE}
    document = {
        "format": PACKAGE_FORMAT,
        "name": name,
        "generated_by": "SimulatorCoder",
        "reference": "SCALE-Sim v2 (commit 22f88b1)",
        "candidate_files": candidate_files,
        "glue_files": [*CONTRACT_FILES, *GLUE_FILES],
        "features": [feature.name for feature in features],
        "feature_files": added,
        "files": digests,
    }
    return json.dumps(document, indent=2) + "\n"


def is_package(folder: Path) -> bool:
    """Whether ``folder`` holds a package this module wrote (its ``PACKAGE.json`` says :data:`PACKAGE_FORMAT`)."""
    try:
        document = json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and document.get("format") == PACKAGE_FORMAT


def _fill(folder: Path, name: str, sources: dict[str, bytes], features: Sequence[PackagedFeature]) -> list[str]:
    """Write every file of the package into ``folder`` (which exists and is empty); returns the files the
    features added."""
    for filename, data in sources.items():
        (folder / filename).write_bytes(data)
    taken = {*sources, *CONTRACT_FILES, *GLUE_FILES, *GENERATED_FILES}
    added = feature_files(features, taken)
    for filename, data in added.items():
        (folder / filename).write_bytes(data)
    for filename in (*CONTRACT_FILES, *GLUE_FILES):
        shutil.copyfile(REFERENCE_DIR / filename, folder / filename)
    modules = sorted(Path(filename).stem for filename in sources)
    (folder / "__init__.py").write_text(INIT_SOURCE.format(name=name, modules=", ".join(modules)))
    (folder / "__main__.py").write_text(MAIN_SOURCE.format(name=name))
    (folder / "cli.py").write_text(Template(CLI_SOURCE).substitute(name=name, **cli_blocks(features)))
    (folder / README_FILE).write_text(Template(README_TEXT).substitute(
        name=name, modules=", ".join(f"{m}.py" for m in modules)) + readme_section(features, name))
    return sorted(added)


def write_package(candidate_dir: Path, dest_parent: Path, name: str,
                  features: Sequence[PackagedFeature] = ()) -> Path:
    """Write the candidate in ``candidate_dir`` as the standalone package ``dest_parent/name/``; returns its path.

    ``features`` (see :mod:`agents.package_features`) adds each feature's portable modules, the runner and
    ``FEATURES.json``: the command line then also writes each feature's reports.

    Raises :class:`PackageError` when ``name`` is not a usable package name, the candidate lacks one
    of ``mapping.py``, ``network.py``, ``memory.py`` (or its function), carries a changed contract or
    a file named like one of the package's own, or when any file of the result imports something
    outside numpy, the standard library and the package.  The package is built in a temporary folder
    beside the destination and moved into place only when it passes; an existing package of the same
    name (one this function wrote: its ``PACKAGE.json`` says so) is replaced whole, anything else in
    the way is refused and left alone.
    """
    problem = name_problem(name)
    if problem is not None:
        raise PackageError(f"package name: {problem}")
    candidate_dir = Path(candidate_dir)
    sources = _candidate_sources(candidate_dir)
    dest_parent = Path(dest_parent)
    dest_parent.mkdir(parents=True, exist_ok=True)
    target = dest_parent / name
    if (target.exists() or target.is_symlink()) and not (target.is_dir() and not target.is_symlink()
                                                           and is_package(target)):
        raise PackageError(f"{target}: exists and is not a package written by SimulatorCoder; not overwritten")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.new-", dir=dest_parent))
    try:
        staging.chmod(0o755)
        added = _fill(staging, name, sources, features)
        problems = import_problems(staging, name)
        if problems:
            raise PackageError(f"{candidate_dir}: the package would import outside numpy, the standard library "
                               f"and itself: {'; '.join(problems)}")
        (staging / MANIFEST_FILE).write_text(_manifest(staging, name, sorted(sources), features, added))
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=dest_parent))
            target.rename(retired / name)
            try:
                staging.rename(target)
            except OSError:
                (retired / name).rename(target)
                retired.rmdir()
                raise
            shutil.rmtree(retired)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    log.info("wrote package %s from %s", target, candidate_dir)
    return target


INIT_SOURCE = '''"""A cycle-accurate systolic-array simulator written by SimulatorCoder, compatible with SCALE-Sim v2.

The package ``{name}`` follows SCALE-Sim v2 (commit 22f88b1) cycle for cycle.
Its modules ({modules}) were generated and verified against SimulatorCoder's
reference simulator; the rest is SimulatorCoder's glue.
numpy and the standard library only.  See README.txt::

    python -m {name} -c scale.cfg -t net.csv -p out

or in Python::

    from {name} import Hardware, Layer, simulate
    results = simulate([Layer("conv1", 56, 56, 3, 3, 64, 64, 1, 1)],
                       Hardware(32, 32, "os", 64, 64, 64))
    results[0].total_cycles
"""

from .contract import Hardware, Layer, MemoryResult, TraceSet
from .engine import REFERENCE as MODULES
from .engine import LayerResult, Modules, simulate, simulate_layer
from .errors import InputError, SimCoderError, SimulationError
from .reports import write_reports, write_traces
from .scalesim_io import read_config, read_topology

__all__ = [
    "MODULES",
    "Hardware",
    "InputError",
    "Layer",
    "LayerResult",
    "MemoryResult",
    "Modules",
    "SimCoderError",
    "SimulationError",
    "TraceSet",
    "read_config",
    "read_topology",
    "simulate",
    "simulate_layer",
    "write_reports",
    "write_traces",
]
'''

MAIN_SOURCE = '''"""``python -m {name}``."""

from .cli import main

raise SystemExit(main())
'''

CLI_SOURCE = '''"""The command line, with SCALE-Sim's own flags.

``python -m $name -c CFG -t TOPOLOGY -p OUTDIR`` writes SCALE-Sim's three reports,
``COMPUTE_REPORT.csv``, ``BANDWIDTH_REPORT.csv`` and ``DETAILED_ACCESS_REPORT.csv``, into
``OUTDIR/<run_name>/`` (and per-layer traces in ``layerN/`` with ``--traces``).  Bad input is one
line on stderr and exit code 2; a failure while simulating is one line and exit code 1 (set
``SIMCODER_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from .contract import Hardware, Layer
from .engine import LayerResult, simulate_layer
from .errors import InputError, SimulationError
from .progress import ProgressBar
from .reports import output_folder, summary_table, write_reports, write_traces
from .scalesim_io import read_config, read_topology
$feature_imports
PROG = "python -m $name"
log = logging.getLogger(__package__)

EXAMPLES = """examples:
  SCALE-Sim's reports in out/<run_name>/:
    python -m $name -c scale.cfg -t resnet50.csv -p out
  a GEMM topology (rows: Layer, M, N, K):
    python -m $name -c scale.cfg -t mnk.csv --gemm
  with per-layer SCALE-Sim trace CSVs in out/<run_name>/layerN/:
    python -m $name -c scale.cfg -t net.csv -p out --traces
"""


class UsageError(Exception):
    """A command-line mistake (exit code 2)."""


class LayerError(Exception):
    """A module raised something unexpected while simulating one layer."""

    def __init__(self, index: int, name: str, error: Exception) -> None:
        self.error = error
        super().__init__(f"layer {index} ({name}): {type(error).__name__}: {error}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = _Parser(
        prog=PROG,
        description="Cycle-accurate SCALE-Sim v2 (22f88b1) compatible simulator written by SimulatorCoder.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("-c", dest="config", metavar="CFG", required=True, help="SCALE-Sim .cfg architecture file")
    result.add_argument("-t", dest="topology", metavar="TOPOLOGY",
                        help="SCALE-Sim topology CSV (default: the config's [network_presets] TopologyCsvLoc)")
    result.add_argument("-i", dest="input_type", choices=("conv", "gemm"), default="conv",
                        help="topology form: conv rows or M, N, K rows (default conv)")
    result.add_argument("--gemm", dest="input_type", action="store_const", const="gemm",
                        help="the same as -i gemm")
    result.add_argument("-p", dest="out", metavar="OUTDIR", default="runs",
                        help="output folder; reports go to OUTDIR/<run_name>/ (default runs)")
    result.add_argument("--traces", nargs="?", const="csv", default="none", choices=("none", "csv", "npz", "both"),
                        help="also write per-layer traces: SCALE-Sim CSVs (the default with no value), npz or both")
    result.add_argument("-q", "--quiet", action="store_true", help="no summary table")
$feature_options    return result


def run(layers: Sequence[Layer], hardware: Hardware, out_root: Path, run_name: str, traces: str = "none",
        label: str = "", quiet: bool = True) -> list[LayerResult]:
    """Simulate ``layers`` and write the reports (and traces) into ``out_root/run_name/``."""
    out_dir = output_folder(out_root, run_name)
    progress = ProgressBar(label or run_name, unit="layers")
    results: list[LayerResult] = []
    for index, layer in enumerate(layers):
        try:
            result = simulate_layer(layer, hardware, index=index, traces=traces != "none")
        except (InputError, SimulationError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise LayerError(index, layer.name, exc) from exc
        if result.traces is not None:
            write_traces(result.traces, output_folder(out_root, run_name, f"layer{index}"),
                         csv=traces in ("csv", "both"), binary=traces in ("npz", "both"))
        progress(index + 1, len(layers), layer.name)
        results.append(replace(result, traces=None))
    write_reports(results, out_dir)
    if not quiet:
        print(summary_table(results))
        print(f"reports written to {out_dir}")
    return results


def _simulate(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
$feature_prepare    cfg = read_config(args.config)
    topology = args.topology or cfg.topology_path
    if topology is None:
        raise UsageError("give -t TOPOLOGY (the config names none)")
    layers = read_topology(topology, args.input_type)
    run(layers, cfg.hardware, Path(args.out), cfg.run_name, args.traces, Path(topology).stem, args.quiet)
$feature_run    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, 1 when the simulation cannot proceed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False
    try:
        return _simulate(argv)
    except UsageError as exc:
        print(f"error: {exc} (see {PROG} --help)", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (SimulationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except LayerError as exc:
        if os.environ.get("SIMCODER_DEBUG") == "1":
            raise exc.error from None
        print(f"error: the simulator failed on {exc}", file=sys.stderr)
        return 1
$feature_errors    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)
'''

README_TEXT = """$name
A cycle-accurate systolic-array simulator, compatible with SCALE-Sim v2 (commit 22f88b1)
========================================================================================

Written by SimulatorCoder: the modules $modules were generated by the workflow and
verified against SimulatorCoder's reference simulator; contract.py, errors.py, engine.py,
reports.py, scalesim_io.py and progress.py are SimulatorCoder's glue.  PACKAGE.json lists every
file with its SHA-256.

Requirements: Python 3.10 or newer and numpy.  Nothing else (no SimulatorCoder, no SCALE-Sim).

Run it (from the folder that holds this package, or with that folder on PYTHONPATH):

    python -m $name -c scale.cfg -t resnet50.csv -p out     # reports in out/<run_name>/
    python -m $name -c scale.cfg -t mnk.csv --gemm          # topology rows: Layer, M, N, K
    python -m $name -c scale.cfg -t net.csv --traces        # + per-layer traces (csv, npz or both)
    python -m $name --help

  -c CFG          SCALE-Sim .cfg architecture file ([general] run_name, [architecture_presets],
                  [run_presets] InterfaceBandwidth CALC or USER)
  -t TOPOLOGY     SCALE-Sim topology CSV (default: the config's TopologyCsvLoc)
  -i conv|gemm    topology form (--gemm is the same as -i gemm)
  -p OUTDIR       output folder (default runs)
  --traces [csv|npz|both]   per-layer traces in OUTDIR/<run_name>/layerN/
  -q              no summary table

Outputs, in OUTDIR/<run_name>/: COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and
DETAILED_ACCESS_REPORT.csv, SCALE-Sim's three reports with its columns.  With --traces, per layer
layerN/ holds SCALE-Sim's six traces (IFMAP_SRAM_TRACE.csv ... OFMAP_DRAM_TRACE.csv) and/or
traces.npz.

Bad input (a missing file, a bad config key, a malformed topology line) is one line on stderr
naming the file and line, and exit code 2.  A failure while simulating is one line and exit
code 1; set SIMCODER_DEBUG=1 to see its traceback.

In Python:

    from $name import Hardware, Layer, simulate, read_config, read_topology
    hw = Hardware(array_rows=32, array_cols=32, dataflow="os",
                  ifmap_sram_kib=64, filter_sram_kib=64, ofmap_sram_kib=64)
    results = simulate([Layer("conv1", 56, 56, 3, 3, 64, 64, 1, 1)], hw)
    results[0].total_cycles, results[0].compute_row
"""
