"""Model answers kept as files in the run's folder, referred to from the run's state.

A run's checkpoints hold a reference (``{"role": "assistant", "file": "answers/..."}``) instead of each
answer's text, so they stay small whatever the model sends (an answer is at most
``agents.llm.MAX_ANSWER_CHARS`` characters).  :func:`messages` turns a conversation back into the
messages a model is sent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reference_sim.errors import SimCoderError

FOLDER = "answers"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class TranscriptError(SimCoderError, RuntimeError):
    """A saved answer is missing or outside the run's folder."""


def save(run_dir: str | Path, text: str, *, what: str) -> dict[str, str]:
    """Write one answer under ``run_dir/answers/`` and return the conversation entry that refers to it."""
    name = f"{_SAFE.sub('_', what)[:80]}-{uuid.uuid4().hex[:8]}.txt"
    folder = Path(run_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return {"role": "assistant", "file": f"{FOLDER}/{name}"}


def text_of(run_dir: str | Path, entry: Mapping[str, Any]) -> str:
    """A conversation entry's text: its ``content``, or the answer file it refers to."""
    if "file" not in entry:
        return str(entry.get("content", ""))
    ref = str(entry["file"])
    root = (Path(run_dir) / FOLDER).resolve()
    path = (Path(run_dir) / ref).resolve()
    if root not in path.parents:
        raise TranscriptError(f"answer reference {ref!r} is outside {root}")
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TranscriptError(f"the saved answer {ref} cannot be read ({type(exc).__name__})") from None


def messages(run_dir: str | Path, conversation: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The conversation with every referred answer read back: what the model is sent."""
    return [{"role": str(entry["role"]), "content": text_of(run_dir, entry)} for entry in conversation]
