"""Ctrl-C during a run: the calls in flight stop waiting at once instead of holding the run for minutes.

A model call blocks its thread until the endpoint answers, which for a slow local model takes minutes,
and the graph waits for every thread of a step before the interrupt reaches the command line.  Inside
:func:`cancellable` a SIGINT marks the process as cancelling and raises :class:`KeyboardInterrupt` in the
main thread; every call made through :func:`interruptible` then raises :class:`Cancelled` within
:data:`POLL_S` (its HTTP request is abandoned in a daemon thread).  The main thread waits for the graph
through :func:`watched`, in steps of :data:`POLL_S`, so the interrupt reaches it whichever thread the
kernel handed the signal to.  :class:`Cancelled` is a
``KeyboardInterrupt``, so no node turns it into a result and a resume asks again.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import TypeVar, cast

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


def watched(items: Iterable[T]) -> Iterator[T]:
    """``items`` iterated in a worker thread and handed over here, waiting at most :data:`POLL_S` at a time.

    The kernel gives a process's SIGINT to any of its threads, and Python runs the handler in the main
    thread only at its next instruction: a main thread blocked on a lock without a timeout (the graph
    waiting for its workers) could hold a Ctrl-C until a call in flight ended, minutes with a slow model.
    Waiting here in short steps, the handler runs within :data:`POLL_S`.  On leaving early (an exception
    here, Ctrl-C), the worker stops at its next item and is waited for, so nothing goes on running.
    """
    handoff: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()
    context = contextvars.copy_context()

    def hand(kind: str, value: object) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                handoff.put((kind, value), timeout=POLL_S)
                return

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                hand("item", item)
                if stop.is_set():
                    break
            hand("end", None)
        except BaseException as exc:
            hand("error", exc)
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                close()

    worker = threading.Thread(target=lambda: context.run(produce), name="watched-iteration", daemon=True)
    worker.start()
    try:
        while True:
            try:
                kind, value = handoff.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if kind == "end":
                return
            if isinstance(value, BaseException) and kind == "error":
                raise value
            yield cast(T, value)
    finally:
        stop.set()
        while worker.is_alive():
            worker.join(POLL_S)

