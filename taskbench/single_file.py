"""One module made of several: a module with the sibling modules it imports relatively inlined into it.

A feature answer is one file (``feature.py``) in the package it is judged in, while a portable built-in
feature (:func:`agents.package_features.builtin_feature`) is its module plus helpers
(``feature_semantics.py``, ``feature_types.py``).  :func:`inline_modules` joins them, located with
:mod:`ast`: each helper's body (without its docstring and imports) comes before the module that imports
it, ``from .helper import a, b as c`` statements are dropped (``c = b`` kept for a renaming), and every
other import is gathered once at the top (``from __future__`` first).  What cannot be joined without
changing meaning is an :class:`InlineError` naming the file: ``from . import helper``, a helper imported
inside a function, a cycle of helpers, a name a helper does not bind, or one name bound by two modules.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from agents import skeleton
from reference_sim.errors import SimCoderError

Binding = tuple[int, str, str, str]
"""An import's binding: ``(level, module, name, bound as)``; ``import x as y`` is ``(-1, "", "x", "y")``."""


class InlineError(SimCoderError, ValueError):
    """The modules cannot be joined into one without changing what they mean (names the file and line)."""


def _stem(filename: str) -> str:
    return filename.removesuffix(".py")


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _helper_import(node: ast.stmt, joinable: Mapping[str, str], file: str) -> str | None:
    """The helper a top-level ``from .helper import ...`` imports (``None`` for any other statement)."""
    if not isinstance(node, ast.ImportFrom) or node.level == 0:
        return None
    if node.level == 1 and node.module is None and any(a.name in joinable for a in node.names):
        raise InlineError(f"{file}:{node.lineno}: imports a helper module as a module (from . import ...); "
                          "import its names instead")
    if node.level == 1 and node.module in joinable:
        return node.module
    return None


def _nested_helper_imports(tree: ast.Module, joinable: Mapping[str, str], file: str) -> None:
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in top and node.level == 1 and (
                node.module in joinable or (node.module is None and any(a.name in joinable for a in node.names))):
            raise InlineError(f"{file}:{node.lineno}: imports a helper module inside a definition")


def _order(entry: str, trees: Mapping[str, ast.Module], joinable: Mapping[str, str]) -> list[str]:
    """The modules reachable from ``entry`` by helper imports, each after the joinable it imports."""
    done: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise InlineError(f"{name}.py: its helper imports form a cycle ({' -> '.join([*visiting, name])})")
        visiting.append(name)
        for node in trees[name].body:
            helper = _helper_import(node, joinable, f"{name}.py")
            if helper is not None:
                visit(helper)
        visiting.pop()
        done.append(name)

    visit(entry)
    return done


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _bindings(node: ast.Import | ast.ImportFrom) -> list[Binding]:
    if isinstance(node, ast.Import):
        return [(-1, "", a.name, a.asname or a.name.partition(".")[0]) for a in node.names]
    return [(node.level, node.module or "", a.name, a.asname or a.name) for a in node.names]


def _import_lines(bindings: list[Binding]) -> list[str]:
    """The import statements of ``bindings``, one ``from`` statement per module, in first-seen order."""
    order: list[str | tuple[int, str]] = []
    grouped: dict[tuple[int, str], list[str]] = {}
    for level, module, name, bound in bindings:
        if level < 0:
            order.append(f"import {name}" if bound == name.partition(".")[0] else f"import {name} as {bound}")
            continue
        if (level, module) not in grouped:
            grouped[(level, module)] = []
            order.append((level, module))
        grouped[(level, module)].append(name if bound == name else f"{name} as {bound}")
    return [item if isinstance(item, str) else f"from {'.' * item[0]}{item[1]} import {', '.join(grouped[item])}"
            for item in order]


def inline_modules(entry: str, sources: Mapping[str, str]) -> str:
    """``sources[entry]`` (file name -> text) standing alone: the helpers of ``sources`` it imports relatively,
    directly or through each other, inlined; other helpers (each must parse) are left out.  Raises
    :class:`InlineError`."""
    if entry not in sources:
        raise InlineError(f"{entry}: not among the modules ({', '.join(sorted(sources))})")
    texts = {_stem(f): text for f, text in sources.items()}
    trees: dict[str, ast.Module] = {}
    for name, text in texts.items():
        try:
            trees[name] = ast.parse(text, f"{name}.py")
        except SyntaxError as exc:
            raise InlineError(f"{name}.py:{exc.lineno or 0}: does not parse ({exc.msg})") from None
        _nested_helper_imports(trees[name], texts, f"{name}.py")
    order = _order(_stem(entry), trees, texts)
    futures: list[str] = []
    imports: list[Binding] = []
    owner: dict[str, str] = {}
    docstring: list[str] = []
    parts: list[tuple[ast.stmt | None, str]] = []

    def bind(name: str, what: str, file: str, line: int) -> None:
        if owner.setdefault(name, what) != what:
            raise InlineError(f"{file}:{line}: binds {name!r}, which another module binds otherwise")

    for name in order:
        file = f"{name}.py"
        for index, (node, segment) in enumerate(skeleton.top_level(texts[name])):
            if index == 0 and _is_docstring(node):
                if name == _stem(entry):
                    docstring.append(segment)
                continue
            helper = _helper_import(node, texts, file)
            if helper is not None:
                assert isinstance(node, ast.ImportFrom)
                provided = {n for stmt in trees[helper].body for n in _defined(stmt)} | {
                    b[3] for stmt in trees[helper].body if isinstance(stmt, ast.Import | ast.ImportFrom)
                    and _helper_import(stmt, texts, f"{helper}.py") is None for b in _bindings(stmt)}
                for alias in node.names:
                    if alias.name not in provided:
                        raise InlineError(f"{file}:{node.lineno}: {helper}.py binds no {alias.name!r}")
                    if alias.asname and alias.asname != alias.name:
                        bind(alias.asname, f"{file}:{alias.asname}", file, node.lineno)
                        parts.append((None, f"{alias.asname} = {alias.name}"))
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                futures += [a.name for a in node.names if a.name not in futures]
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                for binding in _bindings(node):
                    bind(binding[3], repr(binding), file, node.lineno)
                    if binding not in imports:
                        imports.append(binding)
                continue
            for bound in _defined(node):
                if bound in owner and not owner[bound].startswith(f"{file}:"):
                    raise InlineError(f"{file}:{node.lineno}: binds {bound!r}, which another module binds otherwise")
                owner[bound] = f"{file}:{bound}"
            parts.append((node, segment))
    header = ([f"from __future__ import {', '.join(futures)}"] if futures else []) + _import_lines(imports)
    text = "\n\n\n".join([*docstring, "\n".join(header)])
    previous: ast.stmt | None = None
    for index, (kept, segment) in enumerate(parts):
        spaced = index == 0 or any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                                   for n in (kept, previous))
        text += ("\n\n\n" if spaced else "\n") + segment
        previous = kept
    text = text.strip("\n") + "\n"
    try:
        compile(text, entry, "exec")
    except SyntaxError as exc:
        raise InlineError(f"{entry}: the joined module does not compile (line {exc.lineno}: {exc.msg})") from None
    return text
