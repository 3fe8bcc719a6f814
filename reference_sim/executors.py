"""Where independent jobs run: on this machine (threads or processes) or on a Ray cluster.

An :class:`Executor` maps a function over a list of jobs and yields ``(index, result)`` pairs as
they finish, in any order.  A job the executor could not run to the end (its Ray worker or node
died more than ``max_retries`` times) comes back as a :class:`JobFailed` in its place: a job is
never dropped.  Exceptions raised by the function itself are not retried; they propagate to the
caller, as they do with the local executor.

Ray is optional (``pip install -e '.[ray]'``) and imported only when a :class:`RayExecutor` first
runs.  The function and the jobs must be picklable (module-level functions, frozen dataclasses)
and every node needs the same checkout installed, because workers import the function by name.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from .errors import InputError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS: tuple[str, ...] = ("local", "ray")
WAIT_STEP_S = 0.2
"""The longest the local executor's calling thread waits at a time: the kernel gives a process's SIGINT to any of
its threads, and a caller blocked without a timeout would take a Ctrl-C only when a job ends."""
DEFAULT_MAX_RETRIES = 3
"""Times a Ray job is run again after its worker or node died, before it comes back as :class:`JobFailed`."""


class ExecutorError(InputError):
    """The executor cannot be used here (Ray missing, no cluster at the address); reported as ``--executor: ...``."""

    def __init__(self, message: str) -> None:
        super().__init__("--executor", message)


@dataclass(frozen=True)
class JobFailed:
    """A job the executor lost for good (its worker died on every try)."""

    message: str


class Executor(Protocol):
    """Runs ``fn`` over ``items``; yields ``(index into items, result or JobFailed)`` as each job finishes."""

    name: str

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R | JobFailed]]: ...


def _indexed(fn: Callable[[T], R], job: tuple[int, T]) -> tuple[int, R]:
    return job[0], fn(job[1])


def _indexed_chunk(fn: Callable[[T], R], chunk: list[tuple[int, T]]) -> list[tuple[int, R]]:
    return [(index, fn(item)) for index, item in chunk]


class LocalExecutor:
    """This machine: ``jobs`` threads (I/O-bound jobs such as sandbox runs) or processes (CPU-bound jobs).

    With ``jobs <= 1`` or a single job everything runs in this process, in order.
    """

    name = "local"

    def __init__(self, jobs: int, kind: Literal["thread", "process"] = "thread") -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self.kind = kind

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R | JobFailed]]:
        workers = min(self.jobs, len(items))
        if workers <= 1:
            for index, item in enumerate(items):
                yield index, fn(item)
        elif self.kind == "process":
            chunk = max(1, len(items) // (workers * 16))
            with multiprocessing.Pool(workers) as pool:
                yield from pool.imap_unordered(partial(_indexed, fn), enumerate(items), chunksize=chunk)
        else:
            yield from _threaded(fn, items, workers)


def _threaded(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[tuple[int, R | JobFailed]]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: dict[Future[R], int] = {pool.submit(fn, item): index for index, item in enumerate(items)}
        try:
            while pending:
                finished, _ = wait(pending, timeout=WAIT_STEP_S, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError("the Ray executor needs Ray: pip install -e '.[ray]'") from None
    return ray


class RayExecutor:
    """A Ray cluster: ``address`` (``ray://host:10001``, ``host:6379``, or ``auto``; ``None``: ``RAY_ADDRESS``,
    else a Ray instance started on this machine).

    Each job is a Ray task of one CPU, so a cluster runs as many at once as it has CPUs; small jobs
    go in chunks (``chunksize``, default: about four chunks per cluster CPU).  A task whose worker
    or node dies is run again elsewhere, up to ``max_retries`` times.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, max_retries: int = DEFAULT_MAX_RETRIES,
                 chunksize: int | None = None) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        self.address = address
        self.max_retries = max_retries
        self.chunksize = chunksize

    def _connect(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
            except (ConnectionError, RuntimeError) as exc:
                where = self.address or os.environ.get("RAY_ADDRESS") or "a new local instance"
                raise ExecutorError(f"cannot reach the Ray cluster at {where}: {exc}") from None
        return ray

    def cpus(self) -> int:
        """The cluster's CPUs (connects on first use)."""
        ray = self._connect()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R | JobFailed]]:
        if not items:
            return
        ray = self._connect()
        errors = ray.exceptions
        size = self.chunksize or max(1, len(items) // (self.cpus() * 4))
        jobs = list(enumerate(items))
        chunks = [jobs[start:start + size] for start in range(0, len(jobs), size)]
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(_indexed_chunk)
        fn_ref = ray.put(fn)
        pending: dict[Any, list[tuple[int, T]]] = {remote.remote(fn_ref, chunk): chunk for chunk in chunks}
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    chunk = pending.pop(ref)
                    try:
                        results: list[tuple[int, R]] = ray.get(ref)
                    except errors.RayTaskError as exc:
                        raise exc.as_instanceof_cause() from None
                    except errors.RayError as exc:
                        message = (f"lost on the Ray cluster after {self.max_retries} retries: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                        log.warning("%d job(s) %s", len(chunk), message)
                        for index, _item in chunk:
                            yield index, JobFailed(message)
                        continue
                    yield from results
        finally:
            for ref in pending:
                ray.cancel(ref)


def make_executor(name: str, *, jobs: int, kind: Literal["thread", "process"] = "thread",
                  ray_address: str | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                  chunksize: int | None = None) -> Executor:
    """The executor a command line asked for: ``local`` (``jobs`` threads or processes) or ``ray`` (``chunksize``
    jobs per Ray task; ``None``: about four tasks per cluster CPU)."""
    if name == "local":
        if ray_address is not None:
            raise ExecutorError("--ray-address needs --executor ray")
        return LocalExecutor(jobs, kind)
    if name == "ray":
        _import_ray()
        return RayExecutor(ray_address, max_retries=max_retries, chunksize=chunksize)
    raise ExecutorError(f"unknown executor {name!r} (expected one of: {', '.join(EXECUTORS)})")
