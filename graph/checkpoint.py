"""Where the agent graph's run state lives: SQLite in the run folder (the default) or a PostgreSQL database.

With PostgreSQL (``--checkpoint postgres://...`` or ``SIMCODER_CHECKPOINT``) the checkpoints go to
the official ``langgraph-checkpoint-postgres`` saver, and the run's settings (``run.json``, never a
key) to a table of ours, ``simcoder_runs``, so a run started on one machine resumes on any other
that reaches the same database.  :func:`server_checkpointer` gives a LangGraph server (``langgraph
dev`` or a production server) the same database through ``langgraph.json``'s ``checkpointer.path``.

PostgreSQL is optional: ``pip install -e '.[postgres]'``; it is imported only when a URL is given.
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from reference_sim.errors import InputError

CHECKPOINT_ENV = "SIMCODER_CHECKPOINT"
SQLITE_FILE = "checkpoints.sqlite"
SCHEMES = ("postgres", "postgresql")
INSTALL_HINT = "PostgreSQL checkpoints need the postgres extra: pip install -e '.[postgres]'"
_RUNS_TABLE = """CREATE TABLE IF NOT EXISTS simcoder_runs (
    run_id text PRIMARY KEY, settings jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"""


def checkpoint_url(flag: str | None) -> str | None:
    """The PostgreSQL URL from ``--checkpoint``, else ``SIMCODER_CHECKPOINT``; ``None`` for SQLite."""
    url = flag if flag is not None else os.environ.get(CHECKPOINT_ENV) or None
    if url is None:
        return None
    where = "--checkpoint" if flag is not None else CHECKPOINT_ENV
    if urlsplit(url).scheme not in SCHEMES:
        raise InputError(where, "expected a PostgreSQL URL, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE "
                                "(SQLite in the run folder is the default)")
    return url


def where(url: str) -> str:
    """``host:port/database`` of a URL: what messages may show (never the user or password)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname or 'localhost'}{port}{parts.path}"


def _module(name: str) -> Any:
    """An optional module of the postgres extra (imported by name: the extra may not be installed)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise InputError("--checkpoint", INSTALL_HINT) from None


@contextmanager
def _connect(url: str) -> Iterator[Any]:
    psycopg = _module("psycopg")
    _module("psycopg.rows")
    try:
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=psycopg.rows.dict_row)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError("--checkpoint", f"cannot reach PostgreSQL at {where(url)}: {first}") from None
    with conn:
        yield conn


@contextmanager
def open_saver(url: str | None, run_dir: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    """The run's checkpointer: ``checkpoints.sqlite`` in ``run_dir``, or PostgreSQL at ``url`` (tables set up)."""
    if url is None:
        with closing(sqlite3.connect(run_dir / SQLITE_FILE, check_same_thread=False)) as conn:
            yield SqliteSaver(conn)
        return
    saver_class = _module("langgraph.checkpoint.postgres").PostgresSaver
    with _connect(url) as conn:
        saver = saver_class(conn)
        saver.setup()
        yield saver


def save_settings(url: str, run_id: str, settings: dict[str, Any]) -> None:
    """Keep the run's settings in the database (where a resume on another machine finds them)."""
    with _connect(url) as conn:
        conn.execute(_RUNS_TABLE)
        conn.execute("INSERT INTO simcoder_runs (run_id, settings) VALUES (%s, %s) ON CONFLICT (run_id) DO UPDATE "
                     "SET settings = EXCLUDED.settings, updated_at = now()", (run_id, json.dumps(settings)))


def load_settings(url: str, run_id: str) -> dict[str, Any] | None:
    """The settings a run saved in the database, or ``None`` when it has none."""
    with _connect(url) as conn:
        conn.execute(_RUNS_TABLE)
        row = conn.execute("SELECT settings FROM simcoder_runs WHERE run_id = %s", (run_id,)).fetchone()
    if row is None:
        return None
    settings = row["settings"]
    return dict(settings) if isinstance(settings, dict) else None


@asynccontextmanager
async def server_checkpointer() -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """A LangGraph server's checkpointer, named in its ``langgraph.json``::

        "checkpointer": {"path": "graph.checkpoint.server_checkpointer"}

    Every graph the server runs (the workflow, the verifier graph) keeps its threads in the database
    ``SIMCODER_CHECKPOINT`` names.
    """
    url = checkpoint_url(None)
    if url is None:
        raise InputError(CHECKPOINT_ENV, "set it to the PostgreSQL URL the server's checkpoints go to")
    saver_class = _module("langgraph.checkpoint.postgres.aio").AsyncPostgresSaver
    async with saver_class.from_conn_string(url) as saver:
        await saver.setup()
        yield saver
