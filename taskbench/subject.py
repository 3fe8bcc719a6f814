"""A probe task's module: the task's reference module reduced to its header and host units.

The task's units are replaced by the answer (or, for what the model sees, by their signature and
docstring); relative imports of modules other than the contract and its errors are inlined (their
functions' source, their constants' values), so the module runs in the sandbox beside the contract alone.
An answer's own ``from __future__ import annotations`` is dropped (it is legal only at the top of a file,
and the header has it).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Mapping, Sequence

from agents import skeleton


def _used_names(nodes: Sequence[ast.stmt]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def probed_module(source: str, host: Sequence[str], replaced: Mapping[str, str]) -> str:
    """Module ``source`` reduced to its header and the ``host`` units (every unit when empty), the units named in
    ``replaced`` replaced by their text, relative imports other than the contract's inlined."""
    statements = skeleton.top_level(inspect.getsource(importlib.import_module(source)))
    kept = [n for n, _ in statements if not isinstance(n, ast.ImportFrom | ast.Import) and (
        not isinstance(n, ast.FunctionDef | ast.ClassDef) or not host or n.name in host)]
    used = _used_names(kept)
    parts: list[str] = []
    for node, segment in statements:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            if node.name in replaced:
                parts.append(skeleton.without_future_imports(replaced[node.name]).strip("\n"))
            elif not host or node.name in host:
                parts.append(segment)
        elif isinstance(node, ast.ImportFrom) and (inlined := skeleton.inlined_import(node, keep=used)) is not None:
            if inlined:
                parts.append(inlined)
        else:
            parts.append(segment)
    return "\n\n\n".join(parts) + "\n"


def stubbed_host(source: str, host: Sequence[str], targets: Sequence[str]) -> str:
    """What a probe task's model sees: the probed module with the task's units as signature and docstring."""
    text = inspect.getsource(importlib.import_module(source))
    return probed_module(source, host, {name: skeleton.stub_of(text, name) for name in targets})
