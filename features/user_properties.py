"""A user feature's own properties: the ``properties.py`` of a feature folder the operator gave.

The file is Python and runs on the host, so it is loaded only from the operator's folder of features
(``SIMCODER_FEATURES_DIR``, ``--features-dir``), never from anything a remote caller sends.  It defines
``PROPERTIES``, a list of :class:`features.property_base.Property`; each is known to its own feature
only (the module is imported as ``simcoder_user_features.<feature>.properties``), and none may take a
name of the property library.  A bad file is an :class:`InputError` naming the file (and the line, or
``PROPERTIES[i]``), never quoting it; so is a property that crashes while judging.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from reference_sim.errors import InputError

from .property_base import Property

PROPERTIES_FILE = "properties.py"
LIST_NAME = "PROPERTIES"
MODULE_PREFIX = "simcoder_user_features"
FAMILIES = ("conservation", "bounds", "monotonicity", "metamorphic")
T = TypeVar("T")


def load_user_properties(path: Path, feature: str, library: Mapping[str, Property]) -> tuple[Property, ...]:
    """The properties ``path`` defines for ``feature`` (none when the file does not exist)."""
    if not path.is_file():
        return ()
    module_name = f"{MODULE_PREFIX}.{feature}.properties"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(path, "cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise InputError(path, f"not valid Python ({exc.msg})", line=exc.lineno) from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise InputError(path, f"raised {type(exc).__name__} when loaded", line=_line_in(exc, path)) from None
    found = getattr(module, LIST_NAME, None)
    if not isinstance(found, list | tuple):
        raise InputError(path, f"must define {LIST_NAME}, a list of features.property_base.Property",
                         field=LIST_NAME)
    names: set[str] = set()
    for index, prop in enumerate(found):
        field = f"{LIST_NAME}[{index}]"
        if not isinstance(prop, Property):
            raise InputError(path, f"is a {type(prop).__name__}, not a features.property_base.Property", field=field)
        problem = _problem(prop, library, names)
        if problem is not None:
            raise InputError(path, problem, field=field)
        names.add(prop.name)
    return tuple(_guarded(prop, path) for prop in found)


def _problem(prop: Property, library: Mapping[str, Property], seen: set[str]) -> str | None:
    if not isinstance(prop.name, str) or not prop.name.isidentifier() or not prop.name.islower():
        return "its name must be a snake_case word"
    if prop.name in library:
        return f"property {prop.name!r} is already in the property library; give it a name of its own"
    if prop.name in seen:
        return f"property {prop.name!r} is defined twice"
    if prop.family not in FAMILIES:
        return f"family {prop.family!r} is not one of {', '.join(FAMILIES)}"
    single = prop.single is not None
    pair = prop.pair is not None and prop.vary is not None
    if single == pair or (single and (prop.pair is not None or prop.vary is not None)):
        return "give either single, or pair and vary"
    checks = (prop.single,) if single else (prop.pair, prop.vary)
    if not all(callable(check) for check in checks):
        return "its checks must be functions"
    return None


def _guarded(prop: Property, path: Path) -> Property:
    """``prop`` with each function's crash turned into an :class:`InputError` naming the file and the property
    (a broken property is the user's file's fault, not the judged implementation's)."""

    def guard(function: Callable[..., T] | None) -> Callable[..., T] | None:
        if function is None:
            return None
        checked = function

        def run(*args: Any) -> T:
            try:
                return checked(*args)
            except Exception as exc:
                raise InputError(path, f"property {prop.name!r} raised {type(exc).__name__}",
                                 line=_line_in(exc, path)) from None

        return run

    return replace(prop, single=guard(prop.single), pair=guard(prop.pair), vary=guard(prop.vary))


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The last line of ``path`` in the exception's traceback."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if Path(frame.filename) == path]
    return lines[-1] if lines else None
