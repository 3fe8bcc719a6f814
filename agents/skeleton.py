"""Module skeletons for ``function`` granularity, derived from the literal reference modules.

A skeleton is a module's header (docstring, imports, constants) and one *unit* per top-level
function or class: its signature and docstring with ``...`` for a body.  The coder asks the model
for one unit at a time; :func:`assemble` puts a module together from the units written so far and
the literal reference's units for the rest (used to check one unit on its own), or from written
units alone (the module the verifier judges).

The literal modules: ``reference_sim/mapping.py``, ``reference_sim/network.py`` and
``reference_sim/memory_literal.py`` (the readable memory model; constants it imports from the fast
memory module are inlined so the skeleton stands alone).  The skeleton files under
``prompts/skeletons/`` are :func:`derive_skeleton`'s output, checked by a test.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from judge.harness.rules import parse
from reference_sim.errors import SimCoderError

REPO_ROOT = Path(__file__).resolve().parents[1]
SKELETON_DIR = REPO_ROOT / "prompts" / "skeletons"
LITERAL_MODULES: dict[str, str] = {
    "mapping": "reference_sim.mapping",
    "network": "reference_sim.network",
    "memory": "reference_sim.memory_literal",
}
"""The literal reference module each role's skeleton is derived from."""


class SkeletonError(SimCoderError):
    """A skeleton cannot be derived or a module cannot be assembled."""


@dataclass(frozen=True)
class Unit:
    """One top-level function or class of a skeleton."""

    name: str
    kind: str
    """``function`` or ``class``."""
    stub: str
    """Signature and docstring with ``...`` bodies: what the model is asked to fill in."""
    reference: str
    """The literal reference's source of the unit."""


@dataclass(frozen=True)
class Skeleton:
    """A module's header and its units, in definition order."""

    role: str
    header: str
    units: tuple[Unit, ...]

    @property
    def text(self) -> str:
        """The skeleton file: header, then every unit's stub."""
        return self.header.rstrip() + "\n\n\n" + "\n\n\n".join(u.stub for u in self.units) + "\n"

    def unit(self, name: str) -> Unit:
        for unit in self.units:
            if unit.name == name:
                return unit
        raise SkeletonError(f"the {self.role} skeleton has no unit {name!r} "
                            f"(units: {', '.join(u.name for u in self.units)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.units)

    @property
    def imported(self) -> frozenset[str]:
        """Names the header imports (the contract's classes, ``math``, ``np``...): a unit uses them as they are."""
        found: set[str] = set()
        for node in parse(self.header).body:
            if isinstance(node, ast.Import | ast.ImportFrom) and not (
                    isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                found.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
        return frozenset(found)

    @property
    def provided(self) -> frozenset[str]:
        """Names a unit finds without defining them: the header's imports and what the contract defines
        (a unit may import those from ``.contract``); never one of the skeleton's own units."""
        return (self.imported | contract_names()) - set(self.names)


def _docstring_node(body: list[ast.stmt]) -> ast.stmt | None:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def _segment(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start - 1:end])


def _function_stub(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str], indent: str = "") -> str:
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    body_start = node.body[0].lineno
    head = _segment(lines, first, body_start - 1) if body_start > node.lineno else _segment(lines, first, node.lineno)
    doc = _docstring_node(node.body)
    inner = indent + "    "
    text = head
    if doc is not None:
        text += "\n" + _segment(lines, doc.lineno, doc.end_lineno or doc.lineno)
    return text + "\n" + inner + "..."


def _class_stub(node: ast.ClassDef, lines: list[str]) -> str:
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    parts = [_segment(lines, first, node.lineno)]
    for item in node.body:
        if item is _docstring_node(node.body) or isinstance(item, ast.AnnAssign | ast.Assign):
            parts.append(_segment(lines, item.lineno, item.end_lineno or item.lineno))
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            parts.append("\n" + _function_stub(item, lines, "    "))
    return "\n".join(parts)


SHIPPED_MODULES = frozenset({"contract", "errors"})
"""Reference modules a candidate gets as they are; relative imports of any other are inlined."""
CONTRACT_MODULE = "reference_sim.contract"


def top_level(source: str) -> list[tuple[ast.stmt, str]]:
    """Every top-level statement of ``source`` with its text (a definition's decorators included)."""
    lines = source.splitlines()
    return [(node, _segment(lines, _first_line(node), node.end_lineno or node.lineno)) for node in parse(source).body]


def _first_line(node: ast.stmt) -> int:
    """Where a top-level statement starts: its first decorator's line, else its own."""
    if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef) and node.decorator_list:
        return node.decorator_list[0].lineno
    return node.lineno


def stub_of(source: str, name: str) -> str:
    """The stub (signature and docstring, ``...`` bodies) of the top-level function or class ``name``."""
    lines = source.splitlines()
    for node in parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return _function_stub(node, lines)
        if isinstance(node, ast.ClassDef) and node.name == name:
            return _class_stub(node, lines)
    raise SkeletonError(f"the code defines no top-level {name!r}")


def inlined_import(node: ast.ImportFrom, keep: Collection[str] | None = None) -> str | None:
    """``from .module import A, B`` of a reference module other than the shipped ones, inlined so the code
    stands alone: constants as ``A = <value>``, functions and classes as their source.  ``keep`` limits
    it to those names (``""`` when none is left); ``None`` when the import is not to be inlined."""
    if node.level != 1 or node.module in SHIPPED_MODULES:
        return None
    module = importlib.import_module(f"reference_sim.{node.module}")
    parts = []
    for alias in node.names:
        if keep is not None and (alias.asname or alias.name) not in keep:
            continue
        value = getattr(module, alias.name)
        if inspect.isfunction(value) or inspect.isclass(value):
            parts.append(unit_source(inspect.getsource(module), alias.name))
        elif isinstance(value, int | float | str | bool):
            parts.append(f"{alias.asname or alias.name} = {value!r}")
        else:
            raise SkeletonError(f"cannot inline {alias.name} from reference_sim.{node.module}")
    return "\n".join(parts)


def derive_skeleton(role: str) -> Skeleton:
    """The skeleton of ``role``'s literal reference module."""
    if role not in LITERAL_MODULES:
        raise SkeletonError(f"no skeleton for module {role!r} (modules: {', '.join(LITERAL_MODULES)})")
    module = importlib.import_module(LITERAL_MODULES[role])
    source = Path(module.__file__ or "").read_text(encoding="utf-8")
    lines = source.splitlines()
    header: list[str] = []
    units: list[Unit] = []
    for node, text in top_level(source):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            units.append(Unit(node.name, "function", _function_stub(node, lines), text))
        elif isinstance(node, ast.ClassDef):
            units.append(Unit(node.name, "class", _class_stub(node, lines), text))
        elif isinstance(node, ast.ImportFrom):
            header.append(inlined_import(node) or text)
        else:
            header.append(text)
    if not units:
        raise SkeletonError(f"{LITERAL_MODULES[role]} defines no function or class")
    return Skeleton(role, "\n\n".join(header), tuple(units))


@functools.cache
def skeleton(role: str) -> Skeleton:
    """``role``'s skeleton (cached)."""
    return derive_skeleton(role)


def skeleton_file(role: str) -> Path:
    """Where ``role``'s skeleton file lives."""
    return SKELETON_DIR / f"{role}.py"


HEADER_FUTURE = frozenset({"annotations"})
"""The ``__future__`` features every skeleton header imports (the only optional one in Python 3.11)."""
_MANDATORY_FUTURE = frozenset({"nested_scopes", "generators", "division", "absolute_import", "with_statement",
                               "print_function", "unicode_literals", "generator_stop"})


def without_future_imports(code: str) -> str:
    """``code`` without its top-level ``from __future__ import`` statements of features the header already
    imports: such a statement is only legal at the top of a file, and a unit is spliced below the header."""
    try:
        body = parse(code).body
    except SyntaxError:
        return code
    lines = code.splitlines(keepends=True)
    drop: set[int] = set()
    for node in body:
        if (isinstance(node, ast.ImportFrom) and node.module == "__future__"
                and {alias.name for alias in node.names} <= HEADER_FUTURE | _MANDATORY_FUTURE):
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop) if drop else code


def assemble(role: str, written: Mapping[str, str], *, fill_from_reference: bool = False) -> str:
    """A module from the skeleton's header and the ``written`` units.

    Units not in ``written`` come from the literal reference when ``fill_from_reference`` is set
    (checking one unit on its own); otherwise a missing unit is an error.  A unit's own
    ``from __future__ import annotations`` is dropped: the header has it, and it is legal only there.
    """
    sk = skeleton(role)
    unknown = sorted(set(written) - set(sk.names))
    if unknown:
        raise SkeletonError(f"the {role} skeleton has no unit(s) {', '.join(unknown)}")
    parts = [sk.header.rstrip()]
    for unit in sk.units:
        if unit.name in written:
            parts.append(without_future_imports(written[unit.name]).strip("\n"))
        elif fill_from_reference:
            parts.append(unit.reference)
        else:
            raise SkeletonError(f"the {role} module lacks unit {unit.name!r}")
    return "\n\n\n".join(parts) + "\n"


def unit_source(code: str, name: str) -> str:
    """The source of the top-level ``name`` in ``code`` (decorators included)."""
    for node, text in top_level(code):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return text
    raise SkeletonError(f"the code defines no top-level {name!r}")


@functools.cache
def contract_names() -> frozenset[str]:
    """What the contract module defines at top level (classes, functions, type aliases, constants)."""
    source = Path(importlib.import_module(CONTRACT_MODULE).__file__ or "").read_text(encoding="utf-8")
    names: set[str] = set()
    for node in parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            names |= _assigned(node)
    return frozenset(name for name in names if not name.startswith("_"))


def without_definitions(code: str, names: Collection[str]) -> str:
    """``code`` without its top-level ``def``/``class``/assignments of ``names`` (decorators included, and the
    string literal documenting a dropped assignment); every other line as it was."""
    lines = code.splitlines(keepends=True)
    drop: set[int] = set()
    dropped_last = False
    for node in parse(code).body:
        documents = (dropped_last and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                     and isinstance(node.value.value, str))
        dropped_last = documents or (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name in names) or (
            isinstance(node, ast.Assign | ast.AnnAssign) and bool(_assigned(node)) and _assigned(node) <= set(names))
        if dropped_last:
            drop.update(range(_first_line(node) - 1, node.end_lineno or node.lineno))
    kept = "".join(line for i, line in enumerate(lines) if i not in drop)
    return re.sub(r"\n{4,}", "\n\n\n", kept).strip("\n") + "\n"


def with_import(code: str, statement: str) -> str:
    """``code`` with ``statement`` (an import) after its docstring and ``from __future__`` imports."""
    body = parse(code).body
    after = 0
    for index, node in enumerate(body):
        docstring = index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if docstring or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            after = node.end_lineno or node.lineno
        else:
            break
    lines = code.splitlines(keepends=True)
    return "".join([*lines[:after], *(["\n"] if after else []), statement + "\n", *(["\n"] if not after else []),
                    *lines[after:]])


def _assigned(node: ast.Assign | ast.AnnAssign) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}


def write_skeleton_files() -> list[Path]:
    """Rewrite ``prompts/skeletons/<role>.py`` from the literal modules (``python -m agents.skeleton``)."""
    written = []
    for role in LITERAL_MODULES:
        path = skeleton_file(role)
        path.write_text(derive_skeleton(role).text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_skeleton_files():
        logging.getLogger(__name__).warning("wrote %s", path)
