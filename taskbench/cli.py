"""The benchmark's command line, behind ``python -m graph.bench``: ``tasks``, ``selfcheck``, ``list`` and ``table2``.

Exit codes: 0 done (``selfcheck``: the suite is sound); 1 ``selfcheck`` found a defect; 2 bad input
(a flag, a missing output folder, no model); 3 no usable sandbox; 130 interrupted (``tasks``
resumes from where it stopped).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from langchain_core.caches import BaseCache
from langchain_core.language_models import BaseChatModel

from agents import cancel, llm, resources
from agents import window as context_window
from agents.answer_cache import CACHE_FILE, AnswerCache
from agents.planner import STRATEGIES, parse_strategy
from reference_sim.errors import SimCoderError
from reference_sim.executors import EXECUTORS, make_executor
from sandbox.base import SandboxUnavailable

from . import hidden, mutation, passk, table2
from .suite import BenchTask, load_suite, suite_problems

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("bench-results")
DEFAULT_TIMEOUT_S = 120.0
ModelFactory = Callable[[llm.ModelConfig, int], BaseChatModel]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"takes a positive number of seconds, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a positive whole number, got {text!r}")
    return value


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes comma-separated positive integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"--k takes comma-separated positive integers, got {text!r}")
    return ks


def add_tasks_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", metavar="|".join(STRATEGIES), default="zero_shot",
                   help="prompting strategy (default zero_shot)")
    p.add_argument("--model", help="model name (else OPENAI_MODEL)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (else OPENAI_BASE_URL; default OpenAI)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--samples", type=int, default=5, metavar="N", help="samples per task (default 5)")
    p.add_argument("--k", type=_ks, default=[1, 5], metavar="K,K", help="pass@k to report (default 1,5)")
    p.add_argument("--repair", action="store_true", help="run the feedback loop before the hidden tests judge")
    p.add_argument("--attempts", type=int, default=3, metavar="N", help="answers per sample with --repair (default 3)")
    p.add_argument("--tasks", metavar="PATTERNS", help="only tasks whose id contains one of these (comma-separated)")
    p.add_argument("--jobs", type=int, default=2, metavar="N", help="samples at once (default 2)")
    p.add_argument("--model-timeout-s", type=_positive, default=llm.DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"total time one model call may take, seconds (default {llm.DEFAULT_TIMEOUT_S:g}; a slow "
                        "local model may need 600 or more)")
    p.add_argument("--max-answer-tokens", type=_count, default=llm.DEFAULT_MAX_ANSWER_TOKENS, metavar="N",
                   help=f"tokens one answer may have, sent as max_tokens (default {llm.DEFAULT_MAX_ANSWER_TOKENS})")
    p.add_argument("--no-cache", action="store_true",
                   help="ask the model every time (default: answers are kept in --out's model-cache.sqlite, keyed by "
                        "prompt, seed and sampling settings, so a re-run pays for no answer twice)")
    p.add_argument("--context-tokens", type=_count, metavar="N",
                   help="the model's context window when its server does not say it (llama.cpp's /props does)")
    p.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"per-task sandbox time limit (default {DEFAULT_TIMEOUT_S:.0f} s)")
    p.add_argument("--sandbox", choices=("docker", "process"), default="docker",
                   help="where answers run (default docker; process is no isolation)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where samples run: threads here, or a Ray cluster, each worker with its own sandbox "
                        "(default local)")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="with --executor ray: the cluster (e.g. ray://head:10001; default RAY_ADDRESS, "
                        "else a local Ray)")
    p.add_argument("--out", type=Path, help="output folder (default bench-results/tasks-<model>-<strategy>[-repair])")
    p.add_argument("--report-only", action="store_true", help="rebuild the tables from --out's saved results")


def add_selfcheck_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", metavar="PATTERNS", help="only tasks whose id contains one of these")
    p.add_argument("--mutants", type=int, default=mutation.DEFAULT_PER_TASK, metavar="N",
                   help=f"mutants per task (default {mutation.DEFAULT_PER_TASK})")
    p.add_argument("--jobs", type=int, default=2, metavar="N", help="tasks at once (default 2)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT / "selfcheck.md", help="where to write the report")


def _default_out(model: str, strategy: str, repair: bool) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-") or "model"
    return DEFAULT_OUT / f"tasks-{safe}-{strategy}{'-repair' if repair else ''}"


def _cached_models(cache: BaseCache | None) -> ModelFactory:
    """Sample ``i``'s chat model: the run's, seeded with ``i``, answering from ``cache`` what it answered before."""
    def make(config: llm.ModelConfig, sample: int) -> BaseChatModel:
        return llm.make_chat_model(dataclasses.replace(config, seed=sample), cache=cache)
    return make


def run_tasks(args: argparse.Namespace, *, model_factory: ModelFactory | None = None,
              runner: hidden.Runner | None = None) -> int:
    """``tasks``: the pass@k benchmark (or, with ``--report-only``, its tables from saved results)."""
    strategy = parse_strategy(args.strategy)
    suite = load_suite()
    tasks = suite.select(args.tasks)
    bad = [k for k in args.k if k > args.samples]
    if bad and not args.report_only:
        raise passk.BenchError(f"pass@{bad[0]} needs --samples of at least {bad[0]} (got {args.samples})")
    if args.report_only:
        if args.out is None:
            raise passk.BenchError("--report-only needs --out (the folder of a benchmark run)")
        store = passk.Store(args.out)
        settings = store.settings()
        return _write(store, tasks, settings, args.k)
    config = llm.resolve_model_config(None, model=args.model, base_url=args.base_url)
    if config is None:
        raise passk.BenchError("no model: pass --model NAME (and --base-url URL for a local server), "
                               "or set OPENAI_MODEL")
    config = dataclasses.replace(config, temperature=args.temperature, timeout_s=args.model_timeout_s,
                                 deadline_s=args.model_timeout_s, max_answer_tokens=args.max_answer_tokens)
    settings = passk.Settings(strategy=strategy, model=config.model, samples=args.samples, repair=args.repair,
                              attempts=args.attempts, temperature=args.temperature,
                              base_url_host=config.base_url_host, model_timeout_s=args.model_timeout_s)
    executor = make_executor(args.executor, jobs=max(1, args.jobs), ray_address=args.ray_address, chunksize=1)
    store = passk.Store(args.out or _default_out(config.model, strategy, args.repair))
    store.open(settings)
    if model_factory is None:
        model_factory = _cached_models(None if args.no_cache else AnswerCache(store.folder / CACHE_FILE))
    models = model_factory
    worker = None if executor.name == "local" else passk.WorkerSpec(settings, config, args.sandbox, args.timeout_s)
    if runner is None and worker is None:
        sandbox = resources.make_sandbox_for(args.sandbox, args.timeout_s)
        note = resources.sandbox_note(sandbox, args.sandbox)
        if note:
            logger.warning("%s", note)
        runner = hidden.Runner(sandbox, args.timeout_s)
    elif worker is not None and args.sandbox == "process":
        logger.warning("%s", resources.PROCESS_WARNING)
    window = context_window.resolve(config.base_url, config.model, args.context_tokens)
    if window is not None:
        logger.info("context window: %d tokens (%s)", window.tokens, window.source)
    context = passk.Context(suite, settings, strategy, lambda i: models(config, i), runner or hidden.Runner(),
                            model_timeout_s=config.timeout_s, window=window,
                            max_answer_tokens=config.max_answer_tokens,
                            transcripts=store.folder / passk.TRANSCRIPTS_DIR)

    def progress(sample: passk.Sample, done: int, total: int) -> None:
        verdict = "passed" if sample.passed else f"{sample.failure}{f' ({sample.stage})' if sample.stage else ''}"
        logger.info("[%d/%d] %s sample %d: %s (%.1f s)", done, total, sample.task, sample.sample, verdict,
                    sample.seconds)

    logger.info("%d tasks x %d samples, strategy %s, model %s%s, executor %s; results in %s", len(tasks),
                args.samples, strategy, config.model, ", with repair" if args.repair else "", executor.name,
                store.folder)
    with cancel.cancellable():
        passk.run(context, tasks, store, jobs=args.jobs, progress=progress, executor=executor, worker=worker)
    return _write(store, tasks, settings, args.k)


def _write(store: passk.Store, tasks: Sequence[BenchTask], settings: passk.Settings, ks: list[int]) -> int:
    table = passk.build_table(passk.current(store.load()), tasks, settings, ks)
    md, js = passk.write_table(store.folder, table)
    sys.stdout.write(passk.table_markdown(table))
    logger.info("wrote %s and %s", md, js)
    return 0


def run_selfcheck(args: argparse.Namespace) -> int:
    """``selfcheck``: the golden sanity run and the mutation score; 1 when the suite has a defect."""
    suite = load_suite()
    tasks = suite.select(args.tasks)
    problems = suite_problems(suite) if args.tasks is None else []

    def progress(check: mutation.TaskCheck, done: int, total: int) -> None:
        golden = "golden ok" if check.golden is not None and check.golden.passed else "GOLDEN FAILS"
        logger.info("[%d/%d] %s: %s, %d/%d mutants killed (%.1f s)", done, total, check.task, golden,
                    len(check.killed), len(check.tried), check.seconds)

    result = mutation.self_check(suite, tasks, per_task=args.mutants, jobs=args.jobs, progress=progress)
    text = mutation.report_text(result)
    if problems:
        text += "\nSuite problems:\n" + "".join(f"- {p}\n" for p in problems)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 1 if result.problems() or problems else 0


def run_list(args: argparse.Namespace) -> int:
    """``list``: the tasks (id, level, module, kind, what the model writes), as a table or as JSON lines."""
    tasks = load_suite().select(args.tasks)
    if args.json:
        for t in tasks:
            sys.stdout.write(json.dumps({"id": t.id, "level": t.level, "module": t.module, "kind": t.kind,
                                         "unit": t.unit, "family": t.family, "signature": t.signature,
                                         "description": t.description}) + "\n")
        return 0
    width = max(len(t.id) for t in tasks)
    for t in tasks:
        sys.stdout.write(f"{t.id:<{width}}  {t.level:<8}  {t.module:<7}  {t.kind:<7}  {t.signature.splitlines()[0]}\n")
    logger.info("%d tasks", len(tasks))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m graph.bench", description=(
        "SimulatorCoder's benchmark: the task suite's pass@k (Table 1), its self-check, and the eight "
        "networks' cycle error and runtime against SCALE-Sim (Table 2, Fig 3)."))
    sub = parser.add_subparsers(dest="command", required=True)
    add_tasks_arguments(sub.add_parser("tasks", help="pass@k of a model on the task suite (Table 1)"))
    add_selfcheck_arguments(sub.add_parser("selfcheck", help="golden sanity run and mutation score of the suite"))
    listing = sub.add_parser("list", help="the suite's tasks")
    listing.add_argument("--tasks", metavar="PATTERNS", help="only tasks whose id contains one of these")
    listing.add_argument("--json", action="store_true", help="one JSON object per task")
    table2.add_arguments(sub.add_parser("table2", help="cycles, error and runtime on the eight networks (Table 2)"))
    return parser


def main(argv: Sequence[str] | None = None, *, model_factory: ModelFactory | None = None,
         runner: hidden.Runner | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpx2", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "tasks":
            return run_tasks(args, model_factory=model_factory, runner=runner)
        if args.command == "selfcheck":
            return run_selfcheck(args)
        if args.command == "list":
            return run_list(args)
        return table2.main(args)
    except SandboxUnavailable as exc:
        logger.error("no usable sandbox: %s", exc)
        return 3
    except (SimCoderError, OSError) as exc:
        logger.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted; run the same command again to resume")
        return 130
