"""Answers that loop: small models write the same block of lines over and over until they are cut off.

:func:`repeated_tail` names the loop an answer ends in (the review of a cut-off answer tells the model);
:func:`should_stop` is the stricter test a streamed answer is stopped on while it is being written, so a
loop costs a few repetitions instead of minutes of tokens up to the length limit.
"""

from __future__ import annotations

LOOP_MIN_TIMES = 3
"""Times in a row a block must be written before an answer is said to loop."""

LOOP_MAX_LINES = 40
"""The longest block of lines looked for."""

STOP_MIN_TIMES = 5
"""Times in a row a block must be written before a streamed answer is stopped."""

STOP_MIN_LINES = 40
"""Lines the repetitions must cover before a streamed answer is stopped."""


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


def should_stop(text: str) -> bool:
    """Whether a streamed answer so far has looped long enough to be stopped: one block written at least
    :data:`STOP_MIN_TIMES` times in a row at its end, covering at least :data:`STOP_MIN_LINES` lines."""
    loop = repeated_tail(text)
    return loop is not None and loop[1] >= STOP_MIN_TIMES and loop[0] * loop[1] >= STOP_MIN_LINES
