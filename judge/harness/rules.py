"""What a candidate's code may use: the static check (before anything runs) and the run-time import guard.

Imports are an allowlist: numpy, the candidate's own files, the contract (``contract``, ``errors``) and the
pure standard-library modules of :data:`ALLOWED_STDLIB` (computation only: nothing there reaches files,
processes, the network, threads, clocks, the interpreter's internals or exit hooks).  Every other import is
refused, unknown modules included; :data:`DENIED_MODULES` only gives a more specific reason for the known
dangerous ones.  Names and attributes are refused too: import machinery (``__import__``), ``exec``/``eval``/
``compile``, ``open``, look-ups in ``sys.modules``, frames or ``__globals__``, directory walks, numpy's file
readers and writers, and modules reached through another module's attributes (``contextlib.os``).  A candidate
file may not take the name of a standard-library module or numpy.  :func:`check_folder` parses the sources
(never runs them) and returns every :class:`Refusal` with its file and line; :func:`import_refusal` is the
same import rule for the harness's import hook.

This file is shipped into the sandbox with the harness: standard library only.
"""

from __future__ import annotations

import ast
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

ALLOWED_PACKAGES = frozenset({"numpy"})
"""Third-party packages a candidate may import."""

ALLOWED_STDLIB = frozenset({
    "__future__", "abc", "array", "bisect", "cmath", "collections", "contextlib", "copy", "dataclasses", "decimal",
    "enum", "fractions", "functools", "graphlib", "heapq", "itertools", "math", "numbers", "operator", "random", "re",
    "statistics", "string", "struct", "textwrap", "typing",
})
"""The standard-library modules a candidate may import (with their submodules): pure computation."""

PROBE_STDLIB = ALLOWED_STDLIB | {"configparser", "logging", "pathlib"}
"""What the benchmark's probe modules may import: the allowlist, and what the reference's input readers
(``reference_sim.scalesim_io`` and ``reports``, whose units the spec tasks probe) use."""

CONTRACT_MODULES = frozenset({"contract", "errors"})
"""Modules the harness provides to every candidate (the contract and its errors) when it has no copy."""

DENIED_MODULES: dict[str, str] = {
    **dict.fromkeys(("importlib", "imp", "pkgutil", "runpy", "zipimport", "modulefinder"), "import machinery"),
    **dict.fromkeys(("sys", "gc", "inspect", "ctypes", "builtins", "types", "code", "codeop", "dis", "traceback",
                     "tracemalloc", "faulthandler", "weakref", "site", "sysconfig"), "interpreter internals"),
    **dict.fromkeys(("os", "posix", "nt", "io", "_io", "pathlib", "glob", "shutil", "tempfile", "fileinput",
                     "filecmp", "zipfile", "tarfile", "mmap", "linecache", "codecs", "sqlite3", "dbm", "shelve"),
                    "file-system access"),
    **dict.fromkeys(("pickle", "marshal", "copyreg"), "object serialisation"),
    **dict.fromkeys(("subprocess", "multiprocessing", "concurrent", "signal", "pty", "resource"), "processes"),
    **dict.fromkeys(("threading", "_thread"), "threads"),
    "atexit": "exit hooks",
    "warnings": "process-wide hooks (warnings.showwarning, filters)",
    "time": "a clock (results must be deterministic)",
    **dict.fromkeys(("socket", "ssl", "http", "urllib", "ftplib", "smtplib", "asyncio", "select", "selectors"),
                    "network access"),
}
"""Known dangerous modules, with the reason a refusal gives (any module off the allowlist is refused)."""

NOT_ALLOWED = ("not on the allowlist: numpy, the contract, the candidate's own files and the pure standard-library "
               "modules " + ", ".join(sorted(ALLOWED_STDLIB - {"__future__"})))
"""The reason given for any other import."""

DENIED_NAMES: dict[str, str] = {
    "__import__": "import machinery",
    "__builtins__": "interpreter internals",
    "__loader__": "import machinery",
    "__spec__": "import machinery",
    "exec": "running strings as code",
    "eval": "running strings as code",
    "compile": "running strings as code",
    "open": "file-system access",
    "breakpoint": "interpreter internals",
    "globals": "interpreter internals",
    "locals": "interpreter internals",
    "vars": "interpreter internals",
}
"""Built-in names a candidate may not use at all."""

_ORDINARY_WORDS = frozenset({"code", "io", "select", "time"})
"""Module names that are also ordinary attribute names (``np.select``): not refused as attributes."""

DENIED_ATTRIBUTES: dict[str, str] = {
    **dict.fromkeys(("modules", "meta_path", "path_hooks", "path_importer_cache", "_getframe", "_current_frames",
                     "settrace", "setprofile", "addaudithook"), "interpreter internals (sys)"),
    **dict.fromkeys(("__globals__", "__builtins__", "__subclasses__", "__bases__", "__base__", "__mro__", "__code__",
                     "__closure__", "__loader__", "__spec__", "__import__", "__traceback__", "__self__",
                     "__reduce__", "__reduce_ex__", "__getattribute__", "bltns"), "interpreter internals"),
    **dict.fromkeys(("f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next", "gi_frame",
                     "cr_frame", "ag_frame", "gi_code"), "frame access"),
    **dict.fromkeys(("iterdir", "rglob", "glob", "walk", "listdir", "scandir", "read_text", "read_bytes", "open",
                     "tofile", "chdir"), "file-system access"),
    "get_type_hints": "running strings as code",
    **{name: why for name, why in DENIED_MODULES.items() if name not in _ORDINARY_WORDS},
    **{"_" + name: why for name, why in DENIED_MODULES.items()
       if not name.startswith("_") and name not in _ORDINARY_WORDS},
}
"""Attribute names a candidate may not read, whatever the object (``sys.modules``, ``f.__globals__``, a module
reached through another: ``contextlib.os``, ``random._os``, ``enum.bltns``, ...)."""

NUMPY_IO = frozenset({"load", "loadtxt", "genfromtxt", "fromfile", "fromregex", "memmap", "open_memmap",
                      "DataSource", "ctypeslib", "save", "savez", "savez_compressed", "savetxt", "lib"})
"""numpy attributes that read or write files (refused on names bound to numpy)."""

STDLIB = frozenset(sys.stdlib_module_names)

_NAME_TAKERS = frozenset({"getattr", "setattr", "delattr", "hasattr", "attrgetter", "methodcaller"})
"""Calls that take an attribute name as a string: a literal refused name is refused."""


@dataclass(frozen=True)
class Refusal:
    """One thing the rules refuse: ``file`` (relative to the candidate folder), ``line``, ``what`` and ``why``."""

    file: str
    line: int
    what: str
    why: str

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.what} ({self.why})"


def import_refusal(name: str, level: int, own_modules: frozenset[str],
                   allowed: frozenset[str] = ALLOWED_STDLIB) -> str | None:
    """Why importing ``name`` (``level`` dots) is refused, or ``None`` when it is allowed.

    ``allowed`` is the standard-library allowlist (:data:`PROBE_STDLIB` for the benchmark's probe modules).
    A plain import of a standard-library name is judged by the allowlist even when an own file has that name.
    """
    top = name.partition(".")[0]
    if level > 1:
        return "a relative import beyond the candidate's folder"
    if level == 1:
        if not top or top in own_modules or top in CONTRACT_MODULES:
            return None
        return f"the candidate has no file {top}.py"
    if top in ALLOWED_PACKAGES or top in allowed:
        return None
    if top in DENIED_MODULES:
        return DENIED_MODULES[top]
    if top in own_modules and top not in STDLIB:
        return None
    return NOT_ALLOWED


def _literal_names(func: str, node: ast.Call) -> list[str]:
    """The attribute names a ``getattr``-like call takes as string literals."""
    args = node.args if func == "attrgetter" else node.args[:1] if func == "methodcaller" else node.args[1:2]
    names = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return [part for name in names for part in (name.split(".") if func == "attrgetter" else [name])]


class _Checker(ast.NodeVisitor):
    def __init__(self, file: str, own_modules: frozenset[str], allowed: frozenset[str]) -> None:
        self.file = file
        self.own = own_modules
        self.allowed = allowed
        self.refusals: list[Refusal] = []
        self.numpy_names: set[str] = set()

    def _refuse(self, node: ast.AST, what: str, why: str) -> None:
        self.refusals.append(Refusal(self.file, getattr(node, "lineno", 0), what, why))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            why = import_refusal(alias.name, 0, self.own, self.allowed)
            if why is not None:
                self._refuse(node, f"import {alias.name}", why)
            elif alias.name.partition(".")[0] == "numpy":
                self.numpy_names.add(alias.asname or "numpy")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 1 and not module:
            for alias in node.names:
                why = import_refusal(alias.name, 1, self.own, self.allowed)
                if why is not None:
                    self._refuse(node, f"from . import {alias.name}", why)
            return
        why = import_refusal(module, node.level, self.own, self.allowed)
        if why is not None:
            self._refuse(node, f"from {'.' * node.level}{module} import ...", why)
            return
        from_numpy = node.level == 0 and module.partition(".")[0] == "numpy"
        for alias in node.names:
            reason = DENIED_ATTRIBUTES.get(alias.name) or DENIED_NAMES.get(alias.name)
            if from_numpy and alias.name in NUMPY_IO:
                reason = "file-system access"
            if reason is not None:
                self._refuse(node, f"from {'.' * node.level}{module} import {alias.name}", reason)
            elif from_numpy:
                self.numpy_names.add(alias.asname or alias.name)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in DENIED_NAMES:
            self._refuse(node, f"use of {node.id}", DENIED_NAMES[node.id])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in DENIED_ATTRIBUTES:
            self._refuse(node, f"attribute .{node.attr}", DENIED_ATTRIBUTES[node.attr])
        elif node.attr in NUMPY_IO:
            root: ast.expr = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in self.numpy_names:
                self._refuse(node, f"attribute .{node.attr} of numpy", "file-system access")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _NAME_TAKERS:
            for literal in _literal_names(name, node):
                if literal in DENIED_ATTRIBUTES or literal in DENIED_NAMES or literal.startswith("__"):
                    self._refuse(node, f"{name}(..., {literal!r})", DENIED_ATTRIBUTES.get(
                        literal, DENIED_NAMES.get(literal, "interpreter internals")))
        self.generic_visit(node)


_PARSE_LOCK = threading.Lock()


def parse(text: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse`` under a lock: CPython before 3.11.9 and 3.12.1 can fail with "AST constructor recursion
    depth mismatch" when threads parse at once (gh-106905), and the agents' coders run in parallel."""
    with _PARSE_LOCK:
        return ast.parse(text, filename=filename)


def check_source(text: str, file: str, own_modules: frozenset[str],
                 allowed: frozenset[str] = ALLOWED_STDLIB) -> list[Refusal]:
    """Every refusal in one source file; raises :class:`SyntaxError` when it does not parse."""
    checker = _Checker(file, own_modules, allowed)
    checker.visit(parse(text, file))
    return checker.refusals


def own_module_names(folder: Path) -> frozenset[str]:
    """The modules a candidate folder defines: its ``*.py`` files (sub-folders are not part of a candidate)."""
    return frozenset(path.stem for path in folder.glob("*.py"))


def name_refusal(module: str) -> str | None:
    """Why a candidate file may not be called ``<module>.py`` (it would hide a module of that name), or ``None``."""
    if module in STDLIB or module in ALLOWED_PACKAGES:
        return f"named like the module {module}, which it would hide"
    return None


def check_folder(folder: Path, allowed: frozenset[str] = ALLOWED_STDLIB) -> list[Refusal]:
    """Every refusal in a candidate folder's ``*.py`` files, in file order; raises :class:`SyntaxError`."""
    own = own_module_names(folder)
    refusals: list[Refusal] = []
    for path in sorted(folder.glob("*.py")):
        why = name_refusal(path.stem)
        if why is not None:
            refusals.append(Refusal(path.name, 1, f"file {path.name}", why))
        refusals += check_source(path.read_text(encoding="utf-8", errors="replace"), path.name, own, allowed)
    return refusals
