"""Errors that name the file, the place in it and what is wrong."""

from __future__ import annotations

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
    """The configuration drives SCALE-Sim v2's memory model into a state where SCALE-Sim itself fails."""
