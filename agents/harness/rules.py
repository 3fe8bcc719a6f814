"""What a candidate's code may use: the static check (before anything runs) and the run-time import guard.

A candidate may import numpy, the standard library, its own files and the contract, and nothing that
reaches the host's code or the verifier's data: no import machinery (``importlib``, ``__import__``),
no ``exec``/``eval``/``compile``, no ``gc``, no look-ups in ``sys.modules`` or frames, no file-system
access (``os``, ``open``, directory walks, numpy's file readers).  :func:`check_folder` parses the
sources (never runs them) and returns every :class:`Refusal` with its file and line;
:func:`import_refusal` is the same import rule for the harness's import hook.

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

CONTRACT_MODULES = frozenset({"contract", "errors"})
"""Modules the harness provides to every candidate (the contract and its errors) when it has no copy."""

DENIED_MODULES: dict[str, str] = {
    **dict.fromkeys(("importlib", "imp", "pkgutil", "runpy", "zipimport", "modulefinder"), "import machinery"),
    **dict.fromkeys(("gc", "inspect", "ctypes", "builtins", "code", "codeop", "dis", "traceback", "tracemalloc",
                     "faulthandler", "weakref"), "interpreter internals"),
    **dict.fromkeys(("os", "posix", "nt", "io", "_io", "glob", "shutil", "tempfile", "fileinput", "filecmp",
                     "zipfile", "tarfile", "mmap", "linecache", "sqlite3", "dbm", "shelve"), "file-system access"),
    **dict.fromkeys(("pickle", "marshal", "copyreg"), "object serialisation"),
    **dict.fromkeys(("subprocess", "multiprocessing", "concurrent", "signal", "pty", "resource"), "processes"),
    **dict.fromkeys(("socket", "ssl", "http", "urllib", "ftplib", "smtplib", "asyncio", "select", "selectors"),
                    "network access"),
}
"""Standard-library modules a candidate may not import, with the reason given in the refusal."""

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

DENIED_ATTRIBUTES: dict[str, str] = {
    **dict.fromkeys(("modules", "meta_path", "path_hooks", "path_importer_cache", "_getframe", "_current_frames",
                     "settrace", "setprofile", "addaudithook"), "interpreter internals (sys)"),
    **dict.fromkeys(("__globals__", "__builtins__", "__subclasses__", "__bases__", "__base__", "__mro__", "__code__",
                     "__closure__", "__loader__", "__spec__", "__import__", "__traceback__", "__self__",
                     "__reduce__", "__reduce_ex__", "__getattribute__"), "interpreter internals"),
    **dict.fromkeys(("f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next", "gi_frame",
                     "cr_frame", "ag_frame", "gi_code"), "frame access"),
    **dict.fromkeys(("iterdir", "rglob", "glob", "walk", "listdir", "scandir", "read_text", "read_bytes", "open",
                     "tofile"), "file-system access"),
    **{name: why for name, why in DENIED_MODULES.items() if name not in ("code", "io")},
}
"""Attribute names a candidate may not read, whatever the object (``sys.modules``, ``f.__globals__``, ...)."""

NUMPY_IO = frozenset({"load", "loadtxt", "genfromtxt", "fromfile", "fromregex", "memmap", "open_memmap",
                      "DataSource", "ctypeslib", "save", "savez", "savez_compressed", "savetxt", "lib"})
"""numpy attributes that read or write files (refused on names bound to numpy)."""


@dataclass(frozen=True)
class Refusal:
    """One thing the rules refuse: ``file`` (relative to the candidate folder), ``line``, ``what`` and ``why``."""

    file: str
    line: int
    what: str
    why: str

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.what} ({self.why})"


STDLIB = frozenset(sys.stdlib_module_names)


def import_refusal(name: str, level: int, own_modules: frozenset[str]) -> str | None:
    """Why importing ``name`` (``level`` dots) is refused, or ``None`` when it is allowed."""
    top = name.partition(".")[0]
    if level > 1:
        return "a relative import beyond the candidate's folder"
    if level == 1:
        if not top or top in own_modules or top in CONTRACT_MODULES:
            return None
        return f"the candidate has no file {top}.py"
    if top in own_modules or top in ALLOWED_PACKAGES:
        return None
    if top in DENIED_MODULES:
        return DENIED_MODULES[top]
    if top == "__future__" or (top in STDLIB and not top.startswith("_")):
        return None
    return "not numpy, the standard library, the candidate's own files or the contract"


class _Checker(ast.NodeVisitor):
    def __init__(self, file: str, own_modules: frozenset[str]) -> None:
        self.file = file
        self.own = own_modules
        self.refusals: list[Refusal] = []
        self.numpy_names: set[str] = set()

    def _refuse(self, node: ast.AST, what: str, why: str) -> None:
        self.refusals.append(Refusal(self.file, getattr(node, "lineno", 0), what, why))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            why = import_refusal(alias.name, 0, self.own)
            if why is not None:
                self._refuse(node, f"import {alias.name}", why)
            elif alias.name.partition(".")[0] == "numpy":
                self.numpy_names.add(alias.asname or "numpy")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 1 and not module:
            for alias in node.names:
                why = import_refusal(alias.name, 1, self.own)
                if why is not None:
                    self._refuse(node, f"from . import {alias.name}", why)
            return
        why = import_refusal(module, node.level, self.own)
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
        if isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "delattr", "hasattr") and len(
                node.args) >= 2:
            name = node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and (
                    name.value in DENIED_ATTRIBUTES or name.value in DENIED_NAMES or name.value.startswith("__")):
                self._refuse(node, f"{func.id}(..., {name.value!r})", DENIED_ATTRIBUTES.get(
                    name.value, "interpreter internals"))
        self.generic_visit(node)


_PARSE_LOCK = threading.Lock()


def parse(text: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse`` under a lock: CPython before 3.11.9 and 3.12.1 can fail with "AST constructor recursion
    depth mismatch" when threads parse at once (gh-106905), and the agents' coders run in parallel."""
    with _PARSE_LOCK:
        return ast.parse(text, filename=filename)


def check_source(text: str, file: str, own_modules: frozenset[str]) -> list[Refusal]:
    """Every refusal in one source file; raises :class:`SyntaxError` when it does not parse."""
    checker = _Checker(file, own_modules)
    checker.visit(parse(text, file))
    return checker.refusals


def own_module_names(folder: Path) -> frozenset[str]:
    """The modules a candidate folder defines: its ``*.py`` files (sub-folders are not part of a candidate)."""
    return frozenset(path.stem for path in folder.glob("*.py"))


def check_folder(folder: Path) -> list[Refusal]:
    """Every refusal in a candidate folder's ``*.py`` files, in file order; raises :class:`SyntaxError`."""
    own = own_module_names(folder)
    refusals: list[Refusal] = []
    for path in sorted(folder.glob("*.py")):
        refusals += check_source(path.read_text(encoding="utf-8", errors="replace"), path.name, own)
    return refusals
