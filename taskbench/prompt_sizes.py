"""The size of every opening prompt the agents send, in characters and tokens (``python -m taskbench.prompt_sizes``).

Every prompt is built the way a run builds it: the coder's (``write``) and the repairer's (``repair``, a
first repair of the literal reference's own code with a typical diagnosis) for each module and, at
``function`` granularity, each unit, under every strategy; the feature coder's for every catalogue
feature; and the benchmark's first prompt of every task (a feature task's is the feature coder's).
Tokens are counted by a llama.cpp server's ``POST /tokenize`` when ``--tokenize-url`` is given, else
estimated as characters / :data:`CHARS_PER_TOKEN`, a ratio below the real tokenizer's on every one of
these prompts so the estimate errs high.  The report is Markdown: the maximum and mean per role,
strategy and granularity, then (unless ``--summary``) one row per prompt.

Budgets (:data:`LIMITS`): a ``function`` prompt under 4,000 tokens, a ``module`` prompt under 8,000; a
repair prompt's budget leaves out what it carries from the run, the code under repair and the verifier's
diagnosis (:func:`over_limit`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_core.messages import BaseMessage

from agents import coder, planner, prompts, skeleton
from agents import feature_prompts as agent_feature_prompts
from features.catalogue import load_catalogue

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO_ROOT / "scale_sim.yaml"
CHARS_PER_TOKEN = 3.5
"""Characters per token of the estimate.  Qwen2.5-Coder-1.5B's tokenizer (llama.cpp ``/tokenize``, measured
December 2026 on every prompt this module builds) reads them at 3.57 to 4.0 characters a token, 3.8 on
average; the lowest ratio comes from the prompts densest in code and tables.  3.5 overestimates every
one of them."""
TEMPLATE_TOKENS_PER_MESSAGE = 5
"""Tokens the chat template adds around each message (``<|im_start|>role\\n`` ... ``<|im_end|>\\n``)."""
LIMITS: dict[str, int] = {"function": 4000, "module": 8000, "probe": 4000, "feature": 8000}
"""The token budget of an opening prompt per granularity (``probe``: a benchmark probe task; ``feature``: a
feature module's)."""
DIAGNOSIS = ("REJECTED (wrong_result). Blamed: {role}.\nStage evidence: {role} run on the reference's inputs of "
             "workload 'variant_0' layer 'conv1' (the first of 3 failing layers).\n"
             "First difference: field total_cycles, index -, expected 5747, got 5750.\n"
             "Other differing fields: stall_cycles, dram_start_stop['ifmap'].")
"""A typical verifier diagnosis (the repair prompts' measure)."""


@dataclass(frozen=True)
class Prompt:
    """One opening prompt: who sends it and for what, and its messages."""

    role: str
    """``coder``, ``repairer`` or ``bench``."""
    strategy: str
    granularity: str
    """``module``, ``function``, ``feature`` (a feature module) or (a benchmark probe task) ``probe``."""
    target: str
    """The module, ``module/unit``, or the benchmark task's id."""
    messages: list[BaseMessage]
    payload: tuple[str, ...] = ()
    """What a repair prompt carries from the run (the code under repair, the verifier's diagnosis): its
    size is the run's, so it is left out of the prompt's budget."""

    @property
    def texts(self) -> list[str]:
        return [str(m.content) for m in self.messages]

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.texts)


def estimated_tokens(texts: Sequence[str]) -> int:
    """Tokens of messages with these texts, estimated high (:data:`CHARS_PER_TOKEN`)."""
    return sum(math.ceil(len(t) / CHARS_PER_TOKEN) + TEMPLATE_TOKENS_PER_MESSAGE for t in texts)


def server_tokenizer(url: str) -> Callable[[Sequence[str]], int]:
    """A token counter asking a llama.cpp server's ``/tokenize`` (``url``: e.g. ``http://127.0.0.1:8080/tokenize``);
    each distinct text is asked for once."""

    @functools.cache
    def tokens(text: str) -> int:
        body = json.dumps({"content": text}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return len(json.load(answer)["tokens"])

    def count(texts: Sequence[str]) -> int:
        return sum(tokens(text) + TEMPLATE_TOKENS_PER_MESSAGE for text in texts)

    return count


def _reference_code(role: str, unit: str | None) -> str:
    """The code a repair measure carries: the literal reference's unit, or its whole module."""
    if unit is not None:
        return skeleton.skeleton(role).unit(unit).reference
    return skeleton.assemble(role, {}, fill_from_reference=True)


def agent_prompts(spec: Path = DEFAULT_SPEC) -> Iterator[Prompt]:
    """The coder's and the repairer's opening prompts of a run of ``spec``, every module, unit and strategy."""
    for granularity in planner.GRANULARITIES:
        plan = planner.plan_run(spec, granularity=granularity)
        for task in plan["tasks"]:
            role = task["role"]
            units: list[str | None] = [u["name"] for u in task["units"]] if granularity == "function" else [None]
            for strategy in prompts.STRATEGIES:
                for unit in units:
                    target = role if unit is None else f"{role}/{unit}"
                    yield Prompt("coder", strategy, granularity, target,
                                 coder.opening_messages(task, strategy, mode="write", unit=unit))
                    code, diagnosis = _reference_code(role, unit), DIAGNOSIS.format(role=role)
                    yield Prompt("repairer", strategy, granularity, target,
                                 coder.opening_messages(task, strategy, mode="repair", unit=unit, code=code,
                                                        diagnosis=diagnosis), payload=(code, diagnosis))


def feature_prompts() -> Iterator[Prompt]:
    """The feature coder's prompt for every catalogue feature under every strategy."""
    catalogue = load_catalogue()
    for name in sorted(catalogue):
        for strategy in prompts.STRATEGIES:
            yield Prompt("coder", strategy, "feature", f"feature_{name}",
                         agent_feature_prompts.feature_messages(catalogue[name], strategy))


def bench_prompts() -> Iterator[Prompt]:
    """The benchmark's first prompt of every task under every strategy, but a feature task's: it is the feature
    coder's prompt, measured by :func:`feature_prompts`."""
    from taskbench import passk, suite

    tasks = suite.load_suite()
    for task in tasks.tasks:
        if task.kind == "feature":
            continue
        granularity = "probe" if task.kind != "stage" else "function" if task.unit is not None else "module"
        for strategy in prompts.STRATEGIES:
            yield Prompt("bench", strategy, granularity, task.id, passk.first_messages(tasks, task, strategy))


def every_prompt(spec: Path = DEFAULT_SPEC) -> Iterator[Prompt]:
    yield from agent_prompts(spec)
    yield from feature_prompts()
    yield from bench_prompts()


@dataclass(frozen=True)
class Row:
    prompt: Prompt
    tokens: int
    budgeted: int
    """The tokens its budget counts: all of them, less a repair prompt's payload."""


def measure(found: Sequence[Prompt], count: Callable[[Sequence[str]], int] = estimated_tokens) -> list[Row]:
    rows = []
    for prompt in found:
        tokens = count(prompt.texts)
        carried = count(prompt.payload) - TEMPLATE_TOKENS_PER_MESSAGE * len(prompt.payload)
        rows.append(Row(prompt, tokens, tokens - carried))
    return rows


def over_limit(rows: Sequence[Row]) -> list[Row]:
    """The prompts over their granularity's budget (:data:`LIMITS`)."""
    return [row for row in rows if row.budgeted >= LIMITS[row.prompt.granularity]]


def table(rows: Sequence[Row], *, counted_by: str, per_prompt: bool = True) -> str:
    """The Markdown report: a summary per role, strategy and granularity, then (``per_prompt``) every prompt."""
    lines = [f"Tokens: {counted_by}. A repair prompt's budget leaves out the code and diagnosis it carries.", "",
             "| role | strategy | granularity | prompts | max tokens | mean tokens | max chars | max budgeted "
             "| limit |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.prompt.role, row.prompt.strategy, row.prompt.granularity), []).append(row)
    for (role, strategy, granularity), group in groups.items():
        tokens = [r.tokens for r in group]
        lines.append(f"| {role} | {strategy} | {granularity} | {len(group)} | {max(tokens):,} | "
                     f"{statistics.mean(tokens):,.0f} | {max(r.prompt.chars for r in group):,} | "
                     f"{max(r.budgeted for r in group):,} | {LIMITS[granularity]:,} |")
    if per_prompt:
        lines += ["", "| role | strategy | granularity | module/unit | characters | tokens |",
                  "|---|---|---|---|---:|---:|"]
        lines += [f"| {r.prompt.role} | {r.prompt.strategy} | {r.prompt.granularity} | {r.prompt.target} | "
                  f"{r.prompt.chars:,} | {r.tokens:,} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taskbench.prompt_sizes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="the spec whose run is measured")
    parser.add_argument("--tokenize-url", help="a llama.cpp server's tokenize endpoint, "
                                               "e.g. http://127.0.0.1:8080/tokenize (default: estimate)")
    parser.add_argument("--summary", action="store_true", help="only the summary, not every prompt")
    parser.add_argument("--check", action="store_true", help="exit 1 when a prompt is over its budget")
    args = parser.parse_args(argv)
    found = list(every_prompt(args.spec))
    if args.tokenize_url:
        rows = measure(found, server_tokenizer(args.tokenize_url))
        counted_by = f"the server's tokenizer ({args.tokenize_url})"
    else:
        rows = measure(found)
        counted_by = f"estimated, characters / {CHARS_PER_TOKEN} + {TEMPLATE_TOKENS_PER_MESSAGE} per message"
    sys.stdout.write(table(rows, counted_by=counted_by, per_prompt=not args.summary))
    over = over_limit(rows)
    for row in over:
        sys.stdout.write(f"over budget: {row.prompt.role} {row.prompt.strategy} {row.prompt.granularity} "
                         f"{row.prompt.target}: {row.budgeted:,} >= {LIMITS[row.prompt.granularity]:,}\n")
    return 1 if args.check and over else 0


if __name__ == "__main__":
    raise SystemExit(main())
