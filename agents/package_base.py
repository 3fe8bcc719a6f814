"""What the standalone package's writers share: their error, the modules a package may import, bound names."""

from __future__ import annotations

import ast
import sys

from reference_sim.errors import SimCoderError

ALLOWED_THIRD_PARTY = frozenset({"numpy"})
STDLIB = frozenset(sys.stdlib_module_names)


class PackageError(SimCoderError, ValueError):
    """The candidate cannot become a standalone package (missing module, foreign import, bad name, ...)."""


def bound_names(tree: ast.Module) -> set[str]:
    """Names a module binds at top level: functions, classes, assignments and imports."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
    return names
