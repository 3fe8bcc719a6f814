"""The coder's and repairer's logic: prompts, answer review and the retry decision; no LangGraph here.

One coder run writes one module (``module`` granularity) or its units one at a time (``function``
granularity); a repair run is the same loop started from the verifier's evidence.  Each model answer
goes through :func:`review`: extract the code, check it on the host (:func:`judge.checks.static_problem`,
never running it), then in the sandbox (a local run of the module, or at ``function`` granularity
the unit's own check against the reference).  A failed review is fed back to the model until the
attempt budget is spent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import BaseMessage

from agents import loops, prompts, skeleton, unit_checks
from agents.extract import ExtractionError, extract_code, top_level_names
from agents.planner import ENTRY_POINTS, ModuleTask
from agents.run_config import RunConfig
from judge import checks, executors, suites

logger = logging.getLogger(__name__)

Mode = Literal["write", "repair"]
ReviewStatus = Literal["accepted", "no_code", "truncated", "invalid", "refused", "crashed", "wrong"]


@dataclass(frozen=True)
class Review:
    """What became of one answer: accepted code, or the problem to send back to the model."""

    status: ReviewStatus
    code: str | None
    problem: str


@dataclass(frozen=True)
class Sampling:
    """How one answer is sampled: a retry never repeats the first answer's temperature 0 or its seed."""

    temperature: float
    seed: int | None


def sampling(config: RunConfig, attempt: int) -> Sampling:
    """The temperature and seed of answer number ``attempt`` (from 1) of a module or unit."""
    if attempt <= 1:
        return Sampling(config.temperature, config.seed)
    return Sampling(max(config.temperature, config.retry_temperature),
                    None if config.seed is None else config.seed + attempt - 1)


TRUNCATED = ("your answer was cut off at the length limit{after}, before it ended. Answer again, "
             "shorter: only the code asked for in one ```python block, with no explanation before or after it.")
"""What the model is told after an answer cut off at the length limit."""


REPEATED = ("\n\nThis answer is identical, character for character, to one you already gave, which failed: do not "
            "repeat it. Work out what the problem above means for the code and write it differently.")
"""Added to the problem when an answer repeats an earlier one (small models copy their last answer)."""


LOOPING = ("your answer was cut off{after}: it kept writing the same {lines} "
           "lines over and over ({times} times in a row at its end, from `{first}`). Answer again with each "
           "statement written once: only the code asked for in one ```python block, with no explanation before or "
           "after it.")
"""What the model is told after an answer cut off while repeating itself (small models loop): at the length limit,
or stopped while streamed (:func:`agents.loops.stop_reason`)."""


OUTLINE = ("your answer was cut off{after}: it was copying the module's outline from the prompt ({stubs} functions "
           "with `...` for a body). That outline is given, not asked for: write only the code asked for, every body "
           "written out, in one ```python block, with no explanation before or after it.")
"""What the model is told after an answer cut off while copying the prompt's outline of the module."""


def truncated_review(output_tokens: int, text: str = "") -> Review:
    """The review of an answer cut off at the length limit or stopped while it ran on (``output_tokens`` long, 0
    when not known, e.g. a cached answer; ``text``): nothing of it is taken; an answer that was looping or copying
    the module's outline is told so."""
    after = f" after {output_tokens} tokens" if output_tokens > 0 else ""
    loop = loops.repeated_tail(text)
    if loop is not None:
        lines, times, first = loop
        return Review("truncated", None, LOOPING.format(after=after, lines=lines, times=times, first=first))
    stubs = loops.stub_bodies(text)
    if stubs >= loops.OUTLINE_STOP_STUBS:
        return Review("truncated", None, OUTLINE.format(after=after, stubs=stubs))
    return Review("truncated", None, TRUNCATED.format(after=after))


def current_unit(task: ModuleTask, unit_index: int) -> str | None:
    """The unit being written at ``function`` granularity (``None`` at ``module`` granularity or when done)."""
    units = task["units"]
    if task["granularity"] != "function" or unit_index >= len(units):
        return None
    return units[unit_index]["name"]


def opening_messages(task: ModuleTask, strategy: str, *, mode: Mode, unit: str | None = None, code: str = "",
                     diagnosis: str = "", history: Sequence[tuple[str, str]] = ()) -> list[BaseMessage]:
    """The first messages of a coder (``write``) or repairer (``repair``) conversation.

    A unit's prompt carries what that unit needs (:func:`agents.prompts.unit_focus`): its stub, the
    module header, the stubs of the units it calls or that call it, and the contract pieces and domain
    notes it uses; never the other units' code.
    """
    focus = prompts.unit_focus(task["role"], unit) if unit is not None else None
    if mode == "repair":
        return prompts.repair_messages(role=task["role"], strategy=strategy, granularity=task["granularity"],
                                       description=task["description"], architecture=task["architecture"],
                                       code=code, diagnosis=diagnosis, history=list(history), unit=focus)
    return prompts.coder_messages(role=task["role"], strategy=strategy, granularity=task["granularity"],
                                  description=task["description"], architecture=task["architecture"], unit=focus)


def review(task: ModuleTask, answer: str, *, unit: str | None, executor_for: executors.ExecutorFactory,
           suite: Sequence[suites.Workload]) -> Review:
    """Extract, check statically, then run: the answer's code, or why it cannot be taken."""
    role = task["role"]
    required = [unit] if unit is not None else [ENTRY_POINTS[role]]
    try:
        code = extract_code(answer, required=required,
                            provided=skeleton.skeleton(role).provided if unit is not None else ())
    except ExtractionError as exc:
        return Review("no_code", None, str(exc))
    if unit is not None:
        code = unit_answer(role, unit, code)
    problem = checks.static_problem(role, code, required=[unit] if unit is not None else ())
    if problem is not None:
        status: ReviewStatus = "refused" if problem.startswith("the verifier refuses") else "invalid"
        return Review(status, None, problem)
    if unit is not None:
        problem = unit_checks.unit_problem(role, unit, code, executor_for, suite)
        return Review("wrong", None, problem) if problem is not None else Review("accepted", code, "")
    problem = checks.local_problem(role, code, executor_for, suite)
    return Review("crashed", None, problem) if problem is not None else Review("accepted", code, "")


def unit_answer(role: str, unit: str, code: str) -> str:
    """What of a unit answer goes into the module: all of it (imports, helpers, the unit); only the unit
    when the answer also redefines other units of the skeleton (e.g. it repeated the skeleton); without
    its copies of names the module header imports (a small model copies the contract's classes from the
    prompt, often cut short with ``...`` and without their imports, and would shadow the real ones): a copy
    of a name the header imports is dropped, a copy of another contract name is imported from the contract."""
    sk = skeleton.skeleton(role)
    defined = top_level_names(code)
    if defined & (set(sk.names) - {unit}):
        return skeleton.unit_source(code, unit)
    copied = defined & sk.provided - {unit}
    if not copied:
        return code
    kept = skeleton.without_definitions(code, copied)
    imports = sorted(copied - sk.imported)
    return skeleton.with_import(kept, f"from .contract import {', '.join(imports)}") if imports else kept


def retry_allowed(attempt: int, budget: int) -> bool:
    """Whether another answer may be asked for after ``attempt`` answers (1-based) within ``budget``."""
    return attempt < budget


def module_code(task: ModuleTask, written: dict[str, str]) -> str:
    """The module from what was written: the one file, or the units assembled into the skeleton."""
    if task["granularity"] == "function":
        return skeleton.assemble(task["role"], written)
    return written[task["role"]]


REVIEW_ACTIONS = ("approve", "edit", "stop")
STOPPED_BY_REVIEWER = "stopped by the reviewer"


class ReviewError(ValueError):
    """A human review answer that is not one of the actions."""


def review_request(task: ModuleTask, diagnosis: str, unit: str | None) -> dict[str, Any]:
    """What a person is shown before a repair (the ``interrupt()`` payload)."""
    return {"kind": "repair_review", "module": task["role"], "unit": unit, "diagnosis": diagnosis,
            "actions": list(REVIEW_ACTIONS),
            "how": "resume with {'action': 'approve'}, {'action': 'edit', 'instruction': '...'} or "
                   "{'action': 'stop'}"}


def review_decision(value: Any) -> dict[str, str]:
    """A person's answer, validated: ``approve``, ``edit`` (with an ``instruction``) or ``stop``."""
    if isinstance(value, str):
        value = {"action": value}
    if not isinstance(value, dict) or value.get("action") not in REVIEW_ACTIONS:
        raise ReviewError(f"a review answer is one of {', '.join(REVIEW_ACTIONS)} (a string, or a dict with "
                          f"'action'); got {value!r}")
    if value["action"] == "edit":
        instruction = value.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ReviewError("an 'edit' review answer needs a non-empty 'instruction'")
        return {"action": "edit", "instruction": instruction.strip()}
    return {"action": str(value["action"])}


def with_instruction(diagnosis: str, decision: dict[str, str] | None) -> str:
    """The diagnosis a repair starts from, with the reviewer's instruction when one was given."""
    if decision and decision.get("action") == "edit":
        return f"{diagnosis}\n\nInstruction from the reviewer (follow it): {decision['instruction']}"
    return diagnosis
