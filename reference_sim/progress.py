"""A one-line progress bar for long runs: drawn on a terminal, silent when the stream is not one."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Call with ``(done, total[, note])`` after each step."""

    def __init__(self, label: str, stream: TextIO | None = None, unit: str = ""):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self.enabled = self.stream.isatty()
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, note: str = "") -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(total, 1)
        unit = f" {self.unit}" if self.unit else ""
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{unit} "
            f"{time.perf_counter() - self.start:6.1f}s  {note[:24]:<24}"
        )
        if done == total:
            self.stream.write("\n")
        self.stream.flush()
