"""Answers that run on: small models write the same block of lines over and over, or copy the prompt's
outline of the module (its stubs, ``...`` for a body), until they are cut off at the length limit.

:func:`repeated_tail` names the loop an answer ends in and :func:`stub_bodies` counts the copied stubs (the
review of a cut-off answer tells the model which); :func:`stop_reason` is the stricter test a streamed answer
is stopped on while it is being written, so it costs a fraction of the tokens, not minutes up to the limit.
"""

from __future__ import annotations

from typing import Literal

LOOP_MIN_TIMES = 3
"""Times in a row a block must be written before an answer is said to loop."""

LOOP_MAX_LINES = 40
"""The longest block of lines looked for."""

STOP_MIN_TIMES = 5
"""Times in a row a block must be written before a streamed answer is stopped."""

STOP_MIN_LINES = 40
"""Lines the repetitions must cover before a streamed answer is stopped."""

OUTLINE_STOP_STUBS = 6
"""Stub bodies (a line holding only ``...``) after which a streamed answer is stopped: no answer may hold one
(placeholders are refused), and Qwen2.5-Coder-1.5B, given an icl prompt, copied the module's outline with 20 of
them in 7 of 16 answers; a unit answer that also copied a few contract classes held 4."""

StopReason = Literal["loop", "outline"]


def repeated_tail(text: str) -> tuple[int, int, str] | None:
    """When ``text`` ends with one block of lines written at least :data:`LOOP_MIN_TIMES` times in a row: the
    block's length in lines, the times it was written and its first non-blank line; else ``None``.  The last
    line is left out (an answer cut off ends mid-line); the shortest such block is named."""
    lines = [line.rstrip() for line in text.splitlines()[:-1]]
    for size in range(1, LOOP_MAX_LINES + 1):
        block = lines[-size:]
        if len(lines) < size * LOOP_MIN_TIMES or not any(line.strip() for line in block):
            continue
        times = 1
        while times * size + size <= len(lines) and lines[-(times + 1) * size:-times * size] == block:
            times += 1
        if times >= LOOP_MIN_TIMES and sum(1 for line in block if line.strip()) * times >= 2 * LOOP_MIN_TIMES:
            first = next(line.strip() for line in block if line.strip())
            return size, times, first[:80]
    return None


def stub_bodies(text: str) -> int:
    """Complete lines of ``text`` (the last, unfinished one left out) that hold only ``...``."""
    return sum(1 for line in text.split("\n")[:-1] if line.strip() == "...")


def stop_reason(text: str) -> StopReason | None:
    """Why a streamed answer so far should be stopped: ``loop`` (one block written at least
    :data:`STOP_MIN_TIMES` times in a row at its end, over at least :data:`STOP_MIN_LINES` lines), ``outline``
    (:data:`OUTLINE_STOP_STUBS` stub bodies); else ``None``."""
    loop = repeated_tail(text)
    if loop is not None and loop[1] >= STOP_MIN_TIMES and loop[0] * loop[1] >= STOP_MIN_LINES:
        return "loop"
    if stub_bodies(text) >= OUTLINE_STOP_STUBS:
        return "outline"
    return None
