"""Built-in features as portable package source: their imports rewritten to the standalone package's modules.

A built-in feature (``features/builtin/<name>.py``) imports the reference and the features' shared
modules; the standalone package holds the reference's glue (``engine``, ``contract``, ``errors``,
``reports``), the candidate's verified ``mapping``, ``memory`` and ``network``, and ``feature_api.py``.
:func:`portable_source` rewrites every import statement of one file by a strict table, located with
:mod:`ast` and replaced by its line and column span (the rest of the file is kept byte for byte):

* ``from reference_sim.{engine,contract,errors,reports} import ...`` -> ``from .<same> import ...``;
* ``from reference_sim import mapping as X`` (``memory``, ``network``) -> ``from . import mapping as X``;
* ``from features.api import ...`` (``..api`` in a built-in) -> ``from .feature_api import ...``, the
  aliases ``feature_api.py`` lacks (``Params``, ``TableRow``, ``ParamValue``) from the generated
  ``feature_types.py`` (:func:`types_source`);
* ``from features.semantics import ...`` -> ``.feature_semantics``, ``features.reports`` ->
  ``.feature_reports`` (those files converted the same way);
* numpy, ``__future__`` and standard-library imports are kept.

Anything else is a :class:`~agents.package_base.PackageError` naming the file and the line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import features
from agents.package_base import ALLOWED_THIRD_PARTY, STDLIB, PackageError, bound_names

FEATURES_DIR = Path(features.__file__).resolve().parent
BUILTIN_PACKAGE = "features.builtin"
API_MODULE = "features.api"
API_FILE = "feature_api"
TYPES_FILE = "feature_types"
FROM_TABLE: dict[str, str] = {
    "reference_sim.engine": "engine",
    "reference_sim.contract": "contract",
    "reference_sim.errors": "errors",
    "reference_sim.reports": "reports",
    "features.semantics": "feature_semantics",
    "features.reports": "feature_reports",
}
"""``from <key> import names`` -> ``from .<value> import names``."""
SUBMODULE_TABLE: dict[str, dict[str, str]] = {
    "reference_sim": {"mapping": "mapping", "memory": "memory", "network": "network"},
}
"""``from <key> import <name> [as X]`` -> ``from . import <value> [as X]``."""
SHARED_SOURCES: dict[str, Path] = {
    "feature_semantics": FEATURES_DIR / "semantics.py",
    "feature_reports": FEATURES_DIR / "reports.py",
}
"""The features' shared modules a portable file may import, by their name in the package."""
ALIASES: dict[str, str] = {
    "ParamValue": "int | float",
    "Params": "Mapping[str, ParamValue]",
    "TableRow": "dict[str, float]",
}
"""The type aliases of :mod:`features.api` a feature may import, and their definitions."""


def api_names(api_text: str) -> frozenset[str]:
    """The names ``feature_api.py`` (its text) binds at top level."""
    return frozenset(bound_names(ast.parse(api_text)))


def types_source(available: frozenset[str]) -> str | None:
    """``feature_types.py``: the aliases of :data:`ALIASES` that ``feature_api.py`` (binding ``available``)
    lacks, or ``None`` when it has them all."""
    missing = [name for name in ALIASES if name not in available]
    if not missing:
        return None
    lines = ['"""Type aliases of the features\' API that feature_api.py does not define."""', "",
             "from collections.abc import Mapping", ""]
    for name in ALIASES:
        lines.append(f"{name} = {ALIASES[name]}" if name in missing else f"from .{API_FILE} import {name}")
    return "\n".join(lines) + "\n"


def _absolute(node: ast.ImportFrom, package: str, file: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    if node.level - 1 >= len(parts):
        raise PackageError(f"{file}:{node.lineno}: a relative import beyond {parts[0]}")
    base = parts[:len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _names(aliases: Iterable[ast.alias]) -> str:
    return ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in aliases)


def _submodule(module: str, alias: ast.alias) -> str:
    bound = alias.asname or (alias.name if alias.name != module else None)
    return f"from . import {module}" + (f" as {bound}" if bound else "")


def _kept(top: str) -> bool:
    return top == "__future__" or top in STDLIB or top in ALLOWED_THIRD_PARTY


def _rewrite(node: ast.Import | ast.ImportFrom, package: str, file: str, api: frozenset[str],
             used: set[str]) -> list[str] | None:
    """The statements replacing ``node`` (``None``: keep it); records the package modules they import."""
    if isinstance(node, ast.Import):
        foreign = [a.name for a in node.names if not _kept(a.name.partition(".")[0])]
        if foreign:
            raise PackageError(f"{file}:{node.lineno}: import {foreign[0]} has no portable form (not numpy, the "
                               f"standard library or a module of the import table)")
        return None
    target = _absolute(node, package, file)
    if not node.level and _kept(target.partition(".")[0]):
        return None
    shown = "." * node.level + (node.module or "")
    if target in FROM_TABLE:
        used.add(FROM_TABLE[target])
        return [f"from .{FROM_TABLE[target]} import {_names(node.names)}"]
    if target == API_MODULE:
        own = [a for a in node.names if a.name in api]
        aliased = [a for a in node.names if a.name not in api and a.name in ALIASES]
        other = [a.name for a in node.names if a.name not in api and a.name not in ALIASES]
        if other:
            raise PackageError(f"{file}:{node.lineno}: from {shown} import {other[0]}: feature_api.py has no "
                               f"{other[0]} (portable: {', '.join(sorted({*api, *ALIASES}))})")
        if aliased:
            used.add(TYPES_FILE)
        return [f"from .{module} import {_names(group)}" for module, group in ((API_FILE, own), (TYPES_FILE, aliased))
                if group]
    table = SUBMODULE_TABLE.get(target)
    if table is not None and all(a.name in table for a in node.names):
        used.update(table[a.name] for a in node.names)
        return [_submodule(table[a.name], a) for a in node.names]
    raise PackageError(f"{file}:{node.lineno}: from {shown} import {_names(node.names)} has no portable form "
                       f"(not in the import table: {', '.join([*FROM_TABLE, *SUBMODULE_TABLE, API_MODULE])})")


def portable_source(text: str, file: str, package: str, api: frozenset[str],
                    used: set[str] | None = None) -> str:
    """``text`` (the module ``file`` of the dotted ``package``) with every import rewritten for the standalone
    package; ``api`` is what ``feature_api.py`` binds.  Adds the package modules the result imports to
    ``used``.  A file that does not parse or an import outside the table is a :class:`PackageError` naming
    ``file`` and the line."""
    try:
        tree = ast.parse(text, file)
    except SyntaxError as exc:
        raise PackageError(f"{file}:{exc.lineno or 0}: does not parse ({exc.msg})") from None
    used = set() if used is None else used
    data = text.encode("utf-8")
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    edits: list[tuple[int, int, bytes]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        statements = _rewrite(node, package, file, api, used)
        if statements is None:
            continue
        assert node.end_lineno is not None and node.end_col_offset is not None
        begin = starts[node.lineno - 1] + node.col_offset
        prefix = data[starts[node.lineno - 1]:begin]
        joiner = b"\n" + prefix if not prefix.strip() else b"; "
        edits.append((begin, starts[node.end_lineno - 1] + node.end_col_offset,
                      joiner.join(s.encode("utf-8") for s in statements)))
    for begin, end, replacement in sorted(edits, reverse=True):
        data = data[:begin] + replacement + data[end:]
    return data.decode("utf-8")


def _shown(path: Path) -> str:
    """``path`` as errors name it: relative to the repository (``features/builtin/energy.py``)."""
    return str(path.relative_to(FEATURES_DIR.parent))


def portable_builtin(name: str, api: frozenset[str]) -> dict[str, str]:
    """The built-in feature ``name`` as package modules: ``feature_<name>.py`` and the shared modules it
    imports (``feature_semantics.py``, ...), each rewritten by :func:`portable_source`.  ``api`` is what
    ``feature_api.py`` binds; the package writes ``feature_api.py`` and ``feature_types.py`` itself."""
    path = FEATURES_DIR / "builtin" / f"{name}.py"
    if not path.is_file():
        raise PackageError(f"{path}: no built-in feature {name!r}")
    used: set[str] = set()
    sources = {f"feature_{name}.py": portable_source(path.read_text(encoding="utf-8"), _shown(path), BUILTIN_PACKAGE,
                                                     api, used)}
    pending = sorted(used & set(SHARED_SOURCES))
    while pending:
        module = pending.pop()
        if f"{module}.py" in sources:
            continue
        shared: set[str] = set()
        source = SHARED_SOURCES[module]
        sources[f"{module}.py"] = portable_source(source.read_text(encoding="utf-8"), _shown(source), "features", api,
                                                  shared)
        pending += sorted(shared & set(SHARED_SOURCES))
    return sources
