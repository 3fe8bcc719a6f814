"""A bounded pool for the benchmark's jobs, reporting each result as it finishes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(work: Callable[[T], R], items: Sequence[T], *, jobs: int,
                progress: Callable[[R, int, int], None] | None = None) -> list[R]:
    """``work`` over ``items``, ``jobs`` at a time; ``progress(result, done, total)`` as each finishes.
    Results come back in the order of ``items``."""
    lock = threading.Lock()
    done = 0

    def one(item: T) -> R:
        nonlocal done
        result = work(item)
        with lock:
            done += 1
            if progress is not None:
                progress(result, done, len(items))
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, items))
