"""Ctrl-C during a run: the calls in flight stop waiting at once instead of holding the run for minutes.

A model call blocks its thread until the endpoint answers, which for a slow local model takes minutes,
and the graph waits for every thread of a step before the interrupt reaches the command line.  Inside
:func:`cancellable` a SIGINT marks the process as cancelling and raises :class:`KeyboardInterrupt` in the
main thread; every call made through :func:`interruptible` then raises :class:`Cancelled` within
:data:`POLL_S` (its HTTP request is abandoned in a daemon thread).  :class:`Cancelled` is a
``KeyboardInterrupt``, so no node turns it into a result and a resume asks again.
"""

from __future__ import annotations

import contextlib
import contextvars
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.2
"""How often a waiting call looks whether the run is being cancelled, seconds."""

_CANCELLING = threading.Event()


class Cancelled(KeyboardInterrupt):
    """The run is being cancelled (Ctrl-C): a call stopped waiting, or was not made."""


def cancelling() -> bool:
    """True once a Ctrl-C reached a :func:`cancellable` block (until it ends)."""
    return _CANCELLING.is_set()


def interruptible(call: Callable[[], T], what: str) -> T:
    """``call()`` in a daemon thread, waited for until it ends or the run is cancelled (:class:`Cancelled`)."""
    if _CANCELLING.is_set():
        raise Cancelled(f"the run is being cancelled: {what} was not started")
    box: dict[str, object] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(call)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="interruptible-call", daemon=True).start()
    while not done.wait(POLL_S):
        if _CANCELLING.is_set():
            raise Cancelled(f"the run is being cancelled: stopped waiting for {what}")
    error = box.get("error")
    if isinstance(error, BaseException):
        raise error
    return box["value"]  # type: ignore[return-value]


@contextlib.contextmanager
def cancellable() -> Iterator[None]:
    """A block in which Ctrl-C cancels the calls in flight, then raises ``KeyboardInterrupt`` in the main thread.

    Only in the main thread (elsewhere signals cannot be handled; the block then does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        _CANCELLING.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _CANCELLING.clear()
