"""Model answers kept on disk, so that a resumed run or a re-run benchmark pays for no answer twice.

A LangChain cache (``BaseCache``) a chat model consults before calling its endpoint.  The key is what
LangChain passes: the serialised prompt and the model's parameters (model, temperature, seed,
``max_tokens``), so pass@k samples asked with different seeds, and a retry asked at its own
temperature and seed, stay distinct.  An entry is plain JSON (the answer's text, ``finish_reason``
and token counts) in one SQLite table: nothing in the file is deserialised into objects, since a run
folder is outside input when it is resumed (``langchain-community``'s ``SQLiteCache`` would
``loads`` whatever the file holds, and that package is being sunset).  A hit is marked
``response_metadata["cache_hit"]`` so the run does not count its tokens again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

logger = logging.getLogger(__name__)

CACHE_FILE = "model-cache.sqlite"
CACHE_HIT = "cache_hit"
FORMAT = "simcoder-answer/1"
MAX_TEXT_CHARS = 256 * 1024
"""Longest answer kept (the model client's own cap)."""


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class AnswerCache(BaseCache):
    """Answers in ``path`` (SQLite), one per prompt and model parameters; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")

    @staticmethod
    def _key(prompt: str, llm_string: str) -> str:
        return hashlib.sha256(f"{llm_string}\0{prompt}".encode()).hexdigest()

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?",
                                   (self._key(prompt, llm_string),)).fetchone()
        if row is None:
            return None
        found = self._message(row[0])
        if found is None:
            logger.warning("%s: an entry that is not a cached answer is ignored", self.path)
            return None
        return [ChatGeneration(message=found)]

    def _message(self, text: object) -> AIMessage | None:
        try:
            data = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        answer, finish = data.get("text"), data.get("finish_reason")
        tokens_in, tokens_out = _count(data.get("input_tokens")), _count(data.get("output_tokens"))
        if not isinstance(answer, str) or len(answer) > MAX_TEXT_CHARS or tokens_in is None or tokens_out is None \
                or not (finish is None or isinstance(finish, str)):
            return None
        return AIMessage(content=answer, response_metadata={"finish_reason": finish, CACHE_HIT: True},
                         usage_metadata={"input_tokens": tokens_in, "output_tokens": tokens_out,
                                         "total_tokens": tokens_in + tokens_out})

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        first = return_val[0] if return_val else None
        message = first.message if isinstance(first, ChatGeneration) else None
        if not isinstance(message, AIMessage) or not isinstance(message.content, str) \
                or len(message.content) > MAX_TEXT_CHARS:
            return
        usage: Mapping[str, Any] = message.usage_metadata or {}
        entry = {"format": FORMAT, "text": message.content,
                 "finish_reason": (message.response_metadata or {}).get("finish_reason"),
                 "input_tokens": int(usage.get("input_tokens", 0)), "output_tokens": int(usage.get("output_tokens", 0))}
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO answers (key, answer) VALUES (?, ?)",
                             (self._key(prompt, llm_string), json.dumps(entry)))

    def clear(self, **kwargs: Any) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM answers")

    def close(self) -> None:
        with self._lock:
            self._db.close()
