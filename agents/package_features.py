"""A run's features in the standalone package: their portable modules, ``FEATURES.json`` and the runner.

A :class:`PackagedFeature` is one feature as the package takes it: its portable modules (entry
``feature_<name>.py`` defining ``run(layers, hardware, params, *, traces=False) -> FeatureRun``, importing
the package's own modules only), its resolved parameters with their catalogue bounds, and its report
tables with their columns.  :func:`builtin_feature` makes one from a catalogue built-in (rewritten by
:mod:`agents.package_portable`), :func:`agent_feature` from an agent-written portable source.
:func:`feature_files` gives every file the features add to a package: their modules, ``feature_api.py``
(from ``judge/harness``), ``feature_types.py`` (the API's aliases it lacks), ``feature_reports.py``
(``features/reports.py`` made portable), ``feature_runner.py`` and ``FEATURES.json``.
"""

from __future__ import annotations

import ast
import json
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Literal

import judge.harness
from agents.package_base import PackageError, bound_names
from agents.package_portable import (
    API_FILE,
    FEATURES_DIR,
    SHARED_SOURCES,
    TYPES_FILE,
    api_names,
    portable_builtin,
    portable_source,
    types_source,
)
from features.api import ParamValue
from features.catalogue import Feature, load_catalogue, resolve_params

FEATURE_API_PATH = Path(judge.harness.__file__).resolve().parent / "feature_api.py"
"""``FeatureRun`` for portable features (standard library only); the package ships it as ``feature_api.py``."""
FEATURES_FILE = "FEATURES.json"
FEATURES_FORMAT = "simcoder-features/1"
RUNNER_FILE = "feature_runner.py"
REPORTS_FILE = "feature_reports.py"
FEATURE_GLUE_FILES = (f"{API_FILE}.py", f"{TYPES_FILE}.py", REPORTS_FILE, RUNNER_FILE, FEATURES_FILE)
"""The files a package with features holds besides the features' own modules."""


@dataclass(frozen=True)
class ParamBound:
    """A parameter's type and bounds, as the catalogue gives them (for checking overrides)."""

    type: Literal["int", "float"]
    min: float
    max: float


@dataclass(frozen=True)
class PackagedFeature:
    """One feature as the standalone package takes it."""

    name: str
    sources: Mapping[str, str]
    """Module file name (``feature_<name>.py``, helpers) -> portable source text."""
    params: Mapping[str, ParamValue]
    """Every parameter, resolved (the spec's value, else the neutral one)."""
    bounds: Mapping[str, ParamBound]
    reports: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Report file (``ENERGY_REPORT.csv``) -> its columns, in ``feature.yaml``'s order."""
    implementation: str = "built-in"
    """``built-in`` or ``agent``: who wrote the modules."""

    @property
    def module(self) -> str:
        return f"feature_{self.name}"


def feature_api_text() -> str:
    """The text of ``judge/harness/feature_api.py``; a :class:`PackageError` when it is missing."""
    try:
        return FEATURE_API_PATH.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackageError(f"{FEATURE_API_PATH}: cannot read the features' API ({exc.__class__.__name__})") from None


def packaged_feature(feature: Feature, params: Mapping[str, ParamValue], sources: Mapping[str, str],
                     implementation: str) -> PackagedFeature:
    """``feature`` of the catalogue with ``params`` (completed with neutral values and checked against the
    catalogue) and its portable ``sources``."""
    definition = feature.definition
    return PackagedFeature(
        name=feature.name, sources=dict(sources),
        params=resolve_params(definition, params, f"features.{feature.name}"),
        bounds={p.name: ParamBound(p.type, p.min, p.max) for p in definition.parameters},
        reports={r.file: list(r.columns) for r in definition.reports}, implementation=implementation)


def builtin_feature(name: str, params: Mapping[str, ParamValue],
                    catalogue: Mapping[str, Feature] | None = None) -> PackagedFeature:
    """The catalogue's built-in ``name`` with ``params``, made portable."""
    feature = (catalogue if catalogue is not None else load_catalogue()).get(name)
    if feature is None or not feature.builtin:
        raise PackageError(f"features.{name}: not a built-in feature of the catalogue")
    return packaged_feature(feature, params, portable_builtin(name, api_names(feature_api_text())), "built-in")


def agent_feature(name: str, params: Mapping[str, ParamValue], source: str,
                  catalogue: Mapping[str, Feature] | None = None,
                  helpers: Mapping[str, str] | None = None) -> PackagedFeature:
    """An agent-written portable feature: ``source`` is ``feature_<name>.py``, ``helpers`` its other modules."""
    feature = (catalogue if catalogue is not None else load_catalogue()).get(name)
    if feature is None:
        raise PackageError(f"features.{name}: not a feature of the catalogue")
    return packaged_feature(feature, params, {**(helpers or {}), f"feature_{name}.py": source}, "agent")


def _check(feature: PackagedFeature) -> None:
    where = f"features.{feature.name}"
    if not feature.name.isidentifier() or not feature.name.isascii():
        raise PackageError(f"{where}: the name is not a Python identifier")
    entry = f"{feature.module}.py"
    if entry not in feature.sources:
        raise PackageError(f"{where}: no {entry} among its sources ({', '.join(sorted(feature.sources)) or 'none'})")
    for filename in feature.sources:
        stem = filename.removesuffix(".py")
        if not filename.endswith(".py") or not stem.isidentifier() or not stem.isascii():
            raise PackageError(f"{where}: {filename!r} is not a module file name")
    try:
        tree = ast.parse(feature.sources[entry], entry)
    except SyntaxError as exc:
        raise PackageError(f"{where}: {entry}:{exc.lineno or 0}: does not parse ({exc.msg})") from None
    if "run" not in bound_names(tree):
        raise PackageError(f"{where}: {entry} defines no run() (a feature implementation needs it)")
    if set(feature.params) != set(feature.bounds):
        raise PackageError(f"{where}: parameters {sorted(feature.params)} differ from their bounds "
                           f"{sorted(feature.bounds)}")
    for param, value in feature.params.items():
        bound = feature.bounds[param]
        if isinstance(value, bool) or not bound.min <= value <= bound.max or (
                bound.type == "int" and value != int(value)):
            raise PackageError(f"{where}.{param}: {value!r} is not a {bound.type} in [{bound.min:g}, {bound.max:g}]")


def _features_document(features: Sequence[PackagedFeature]) -> str:
    document = {
        "format": FEATURES_FORMAT,
        "features": [{
            "name": f.name,
            "implementation": f.implementation,
            "module": f.module,
            "files": sorted(f.sources),
            "params": dict(f.params),
            "bounds": {p: {"type": b.type, "min": b.min, "max": b.max} for p, b in f.bounds.items()},
            "reports": [{"file": file, "columns": list(columns)} for file, columns in f.reports.items()],
        } for f in features],
    }
    return json.dumps(document, indent=2) + "\n"


def feature_files(features: Sequence[PackagedFeature], taken: Collection[str]) -> dict[str, bytes]:
    """Every file ``features`` add to a package whose other files are named ``taken``; empty without
    features.  A :class:`PackageError` when a feature is malformed, two features are named alike, or a
    module would replace another file (one shared module, such as ``feature_semantics.py``, may come from
    several features when its text is the same)."""
    if not features:
        return {}
    names = [f.name for f in features]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise PackageError(f"features: {', '.join(repeated)} given more than once")
    api_text = feature_api_text()
    api = api_names(api_text)
    if "FeatureRun" not in api:
        raise PackageError(f"{FEATURE_API_PATH}: defines no FeatureRun")
    glue: dict[str, str] = {f"{API_FILE}.py": api_text}
    types = types_source(api)
    if types is not None:
        glue[f"{TYPES_FILE}.py"] = types
    reports_source = SHARED_SOURCES[REPORTS_FILE.removesuffix(".py")]
    glue[REPORTS_FILE] = portable_source(reports_source.read_text(encoding="utf-8"),
                                         str(reports_source.relative_to(FEATURES_DIR.parent)), "features", api)
    files: dict[str, str] = {}
    for feature in features:
        _check(feature)
        for filename, text in feature.sources.items():
            if filename in taken or filename in FEATURE_GLUE_FILES or files.get(filename, text) != text:
                raise PackageError(f"features.{feature.name}: {filename} would replace another file of the package")
            files[filename] = text
    files.update(glue)
    imports = "\n".join(f"from . import {f.module}" for f in features)
    table = ", ".join(f'"{f.name}": {f.module}.run' for f in features)
    files[RUNNER_FILE] = Template(RUNNER_SOURCE).substitute(imports=imports, table=table)
    files[FEATURES_FILE] = _features_document(features)
    return {filename: text.encode("utf-8") for filename, text in files.items()}


def readme_section(features: Sequence[PackagedFeature], name: str) -> str:
    """The README's part on the packaged features (empty without features)."""
    if not features:
        return ""
    lines = ["", "Features (FEATURES.json lists each with its parameters, their bounds and its tables):", ""]
    for feature in features:
        tables = ", ".join(feature.reports) or "none"
        lines.append(f"  {feature.name} ({feature.implementation}; tables: {tables})")
        lines += textwrap.wrap(", ".join(f"{p}={v}" for p, v in feature.params.items()), width=96,
                               initial_indent=" " * 6, subsequent_indent=" " * 6)
    lines += [
        "",
        f"    python -m {name} -c scale.cfg -t net.csv -p out",
        "",
        "also runs every feature on the topology and writes, in OUTDIR/<run_name>/features/<feature>/,",
        "the feature's own COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and DETAILED_ACCESS_REPORT.csv",
        "(from its results) and its tables (columns as listed in FEATURES.json).  Features run without",
        "traces.",
        "",
        "  --features FILE.json   other parameter values, e.g. {\"energy\": {\"pj_per_mac\": 0.56}};",
        "                         each is checked against FEATURES.json's type and bounds (a bad one is",
        "                         one line naming the feature and the parameter, exit code 2)",
        "  --no-features          SCALE-Sim's reports only",
        "",
        "In Python: from " + name + ".feature_runner import run_features, feature_settings",
    ]
    return "\n".join(lines) + "\n"


CLI_IMPORTS = "from .feature_runner import FeatureFailure, feature_settings, run_features\n"
CLI_OPTIONS = '''    chosen = result.add_mutually_exclusive_group()
    chosen.add_argument("--features", dest="feature_params", metavar="FILE.json",
                        help="parameters of the packaged features, {feature: {parameter: value}} "
                             "(default: FEATURES.json's)")
    chosen.add_argument("--no-features", action="store_true",
                        help="do not run the packaged features (SCALE-Sim's reports only)")
'''
CLI_PREPARE = "    feature_params = None if args.no_features else feature_settings(args.feature_params)\n"
CLI_RUN = '''    if feature_params is not None:
        for folder in run_features(layers, cfg.hardware, Path(args.out), cfg.run_name, feature_params):
            if not args.quiet:
                print(f"feature reports written to {folder}")
'''
CLI_ERRORS = '''    except FeatureFailure as exc:
        if os.environ.get("SIMCODER_DEBUG") == "1":
            raise exc.error from None
        print(f"error: {exc}", file=sys.stderr)
        return 1
'''


def cli_blocks(features: Sequence[PackagedFeature]) -> dict[str, str]:
    """The command line's parts on features (empty strings without features)."""
    blocks = {"feature_imports": CLI_IMPORTS, "feature_options": CLI_OPTIONS, "feature_prepare": CLI_PREPARE,
              "feature_run": CLI_RUN, "feature_errors": CLI_ERRORS}
    return blocks if features else dict.fromkeys(blocks, "")


RUNNER_SOURCE = '''"""The packaged features: each runs on the topology and writes its reports beside SCALE-Sim's.

``FEATURES.json`` lists every feature with its parameters, their type and bounds, and its report tables.
A feature's folder ``OUTDIR/<run_name>/features/<feature>/`` gets SCALE-Sim's three reports of the
feature's own results and the feature's tables, columns in FEATURES.json's order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .contract import Hardware, Layer
from .errors import InputError, SimulationError
from .feature_reports import write_tables
from .reports import output_folder, write_reports
$imports

IMPLEMENTATIONS = {$table}
FEATURES_FILE = Path(__file__).resolve().parent / "FEATURES.json"


class FeatureFailure(Exception):
    """A feature's implementation raised something unexpected or returned a malformed result."""

    def __init__(self, name: str, message: str, error: BaseException | None = None) -> None:
        self.error = error if error is not None else self
        super().__init__(f"the feature {name} failed: {message}")


def features() -> list[dict[str, Any]]:
    """FEATURES.json's features, in order."""
    document: dict[str, Any] = json.loads(FEATURES_FILE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = document["features"]
    return found


def _value(source: str, where: str, bound: Mapping[str, Any], value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(source, f"must be a number, got {type(value).__name__}", field=where)
    if bound["type"] == "int" and value != int(value):
        raise InputError(source, f"{value!r} is not a whole number", field=where)
    if not bound["min"] <= value <= bound["max"]:
        raise InputError(source, f"{value!r} is outside [{bound['min']:g}, {bound['max']:g}]", field=where)
    return int(value) if bound["type"] == "int" else float(value)


def feature_settings(path: str | None = None) -> dict[str, dict[str, int | float]]:
    """Each feature's parameters: FEATURES.json's, with the values in the JSON file ``path`` (``{feature:
    {parameter: value}}``) instead, each checked against its type and bounds.  Bad input is an
    :class:`InputError` naming the file and ``features.<feature>.<parameter>``."""
    settings = {f["name"]: dict(f["params"]) for f in features()}
    if path is None:
        return settings
    try:
        given = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read file ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(given, dict):
        raise InputError(path, "expected an object {feature: {parameter: value}}")
    bounds = {f["name"]: f["bounds"] for f in features()}
    for name, params in given.items():
        if name not in bounds:
            raise InputError(path, f"not a packaged feature (features: {', '.join(bounds)})", field=f"features.{name}")
        if not isinstance(params, dict):
            raise InputError(path, "expected an object {parameter: value}", field=f"features.{name}")
        for param, value in params.items():
            where = f"features.{name}.{param}"
            if param not in bounds[name]:
                raise InputError(path, f"unknown parameter (parameters: {', '.join(bounds[name])})", field=where)
            settings[name][param] = _value(str(path), where, bounds[name][param], value)
    return settings


def _checked(name: str, run: Any, layers: Sequence[Layer], reports: Sequence[Mapping[str, Any]]) -> None:
    results = getattr(run, "results", None)
    tables = getattr(run, "tables", None)
    if not isinstance(results, list) or not isinstance(tables, dict):
        raise FeatureFailure(name, f"run() returned {type(run).__name__}, not a FeatureRun")
    if len(results) != len(layers):
        raise FeatureFailure(name, f"{len(results)} results for {len(layers)} layers")
    for report in reports:
        for number, row in enumerate(tables.get(report["file"], [])):
            missing = [c for c in report["columns"] if c not in row]
            if missing:
                raise FeatureFailure(name, f"{report['file']} row {number} has no column {missing[0]}")


def run_features(layers: Sequence[Layer], hardware: Hardware, out_root: Path, run_name: str,
                 settings: Mapping[str, Mapping[str, int | float]]) -> list[Path]:
    """Run every packaged feature named in ``settings`` with its parameters there and write its reports into
    ``out_root/run_name/features/<feature>/``; returns those folders."""
    folders: list[Path] = []
    for feature in features():
        name = feature["name"]
        if name not in settings:
            continue
        try:
            run = IMPLEMENTATIONS[name](list(layers), hardware, dict(settings[name]), traces=False)
        except (InputError, SimulationError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise FeatureFailure(name, f"{type(exc).__name__}: {exc}", exc) from exc
        _checked(name, run, layers, feature["reports"])
        folder = output_folder(out_root, run_name, "features", name)
        write_reports(run.results, folder)
        write_tables(run.tables, {r["file"]: r["columns"] for r in feature["reports"]}, folder)
        folders.append(folder)
    return folders
'''
