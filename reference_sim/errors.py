"""Errors that name the file, the place in it and what is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class SimCoderError(Exception):
    """The root of every error this project raises on purpose.

    Each subclass keeps the built-in base that describes it (``InputError`` is also a ``ValueError``,
    ``SimulationError`` and ``sandbox.SandboxError`` are also ``RuntimeError``), so callers can catch
    either the project's errors as a whole or one kind of error.
    """


class InputError(SimCoderError, ValueError):
    """Bad user input: reported as ``file:line: message`` (or ``file: field: message``), exit code 2."""

    def __init__(self, source: str | Path, message: str, *, line: int | None = None, field: str | None = None):
        self.source = str(source)
        self.line = line
        self.field = field
        self.message = message
        where = self.source + (f":{line}" if line is not None else "")
        what = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {what}")


class SimulationError(SimCoderError, RuntimeError):
    """The configuration drives SCALE-Sim v2's memory model into a state where SCALE-Sim itself fails,
    or (:class:`WorkLimitError`) a layer is too big to simulate under the work limit."""


class WorkLimitError(SimulationError):
    """A layer would take more work than the limit allows; refused before any of it is done (exit code 1)."""

    def __init__(self, layer: str, index: int, estimate: int, limit: int, *, how_to_raise: str, where: str = ""):
        """``where`` (e.g. a sweep's configuration) comes first in the message."""
        self.layer = layer
        self.index = index
        self.estimate = estimate
        self.limit = limit
        times = estimate / limit
        over = f"{times:,.0f}x" if times >= 10 else f"{times:.1f}x"
        super().__init__(f"{f'{where}: ' if where else ''}layer {index} ({layer!r}): about {_short(estimate)} "
                         f"requests, {over} the limit of {_short(limit)}; {how_to_raise}")


def _short(count: int) -> str:
    """``3.1e12`` for 3,081,000,000,000."""
    mantissa, exponent = f"{count:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"
