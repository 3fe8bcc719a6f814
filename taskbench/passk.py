"""The pass@k benchmark: n samples of a model per task, judged by the hidden tests, and Table 1.

Each (task, sample) is one job: prompt the model the way the product's coder does (stage tasks:
the coder's own prompt for the unit or module; feature tasks: the feature coder's; probe tasks:
``prompts/bench/``), extract the code, judge it (:func:`taskbench.hidden.judge`).  With ``repair``
the feedback loop runs first: the visible part of the checks, the repairer's prompt with the
diagnosis (a feature task: the conversation goes on with the judge's diagnosis, as in a run), up to
``attempts`` answers; the hidden tests judge the last code.  A crash or timeout anywhere is a failed sample.

Results are appended, one JSON line per sample, to ``results.jsonl`` in the output folder beside
``settings.json``; a rerun with the same settings skips the samples already there (resume), and
:func:`build_table` rebuilds the tables from that file alone (``--report-only``).

pass@k uses the unbiased estimator of Chen et al. (2021): ``1 - C(n-c, k) / C(n, k)`` per task,
averaged over tasks; the paper's ``c/n`` is shown beside it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from agents import coder, feature_prompts, llm, prompts, resources, skeleton
from agents.extract import ExtractionError, extract_code
from agents.planner import ENTRY_POINTS, INTERFACES, ModuleTask, UnitTask
from agents.window import Window
from reference_sim.errors import SimCoderError
from reference_sim.executors import Executor, JobFailed, LocalExecutor
from sandbox.factory import SandboxKind

from . import feature_tasks, hidden
from .suite import BenchTask, Suite, architecture_text, load_suite, module_description

logger = logging.getLogger(__name__)

RESULTS_FORMAT = "simcoder-bench-sample/1"
SETTINGS_FORMAT = "simcoder-bench-run/1"
RESUMABLE_CHANGES = frozenset({"model_timeout_s"})
"""Settings a resumed run may change (a longer timeout for the samples whose call timed out)."""
TABLE_FORMAT = "simcoder-bench-table/1"
RESULTS_FILE = "results.jsonl"
SETTINGS_FILE = "settings.json"


class BenchError(SimCoderError):
    """The benchmark cannot run as asked (names what to change)."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` samples of which ``c`` passed (needs ``n >= k``)."""
    if k > n:
        raise BenchError(f"pass@{k} needs at least {k} samples per task; got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass(frozen=True)
class Settings:
    """What defines a benchmark run (a resumed run must match)."""

    strategy: str
    model: str
    samples: int
    repair: bool
    attempts: int
    temperature: float | None = None
    base_url_host: str | None = None
    """The endpoint's ``host:port`` (``None``: OpenAI's default), never its path or credentials."""
    model_timeout_s: float | None = None
    """The total time one model call may take; a resume may change it (it is not compared)."""

    def as_json(self) -> dict[str, Any]:
        return {"format": SETTINGS_FORMAT, **asdict(self)}

    def defining(self) -> dict[str, Any]:
        """What a resumed run must match."""
        return {k: v for k, v in self.as_json().items() if k not in RESUMABLE_CHANGES}


@dataclass(frozen=True)
class Sample:
    """One judged sample."""

    task: str
    digest: str
    """The task's digest when it ran (results of a task that changed since are not reused)."""
    sample: int
    passed: bool
    failure: str = ""
    stage: str = ""
    detail: str = ""
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    transcript: str = ""
    """The sample's transcript (every call's messages and answer), relative to the output folder; empty when
    none was kept."""

    def as_json(self) -> dict[str, Any]:
        return {"format": RESULTS_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sample:
        fields = {k: v for k, v in data.items() if k != "format"}
        return cls(**fields)


ASKED_AGAIN = frozenset({"model_error"})
"""Failures that are the endpoint's, not the model's answer: a resumed run asks for those samples again."""


def current(samples: Sequence[Sample]) -> list[Sample]:
    """The last record of each (task, digest, sample), in the order first seen (a sample asked again on a
    resume is appended after its earlier record)."""
    latest: dict[tuple[str, str, int], Sample] = {}
    for sample in samples:
        latest[(sample.task, sample.digest, sample.sample)] = sample
    return list(latest.values())


class Store:
    """The output folder: ``settings.json`` and the append-only ``results.jsonl``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    @property
    def results_path(self) -> Path:
        return self.folder / RESULTS_FILE

    def open(self, settings: Settings) -> None:
        """Start or resume a run; refuses an output folder holding a run with other settings."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / SETTINGS_FILE
        if path.is_file():
            old = json.loads(path.read_text(encoding="utf-8"))
            wanted = settings.defining()
            if {k: old.get(k) for k in wanted} != wanted:
                changed = sorted(k for k in wanted if old.get(k) != wanted[k])
                raise BenchError(f"{self.folder} holds a benchmark run with other settings ({', '.join(changed)}); "
                                 "use another --out, or the same settings to resume it")
        path.write_text(json.dumps(settings.as_json(), indent=2) + "\n", encoding="utf-8")
        self._drop_torn_line()

    def _drop_torn_line(self) -> None:
        """Cut a last line an interrupted write left unfinished, so the next sample starts a line of its own."""
        if not self.results_path.is_file():
            return
        data = self.results_path.read_bytes()
        if data and not data.endswith(b"\n"):
            logger.warning("%s: the unfinished last line of an interrupted run is dropped", self.results_path)
            with self.results_path.open("r+b") as out:
                out.truncate(data.rfind(b"\n") + 1)

    def settings(self) -> Settings:
        path = self.folder / SETTINGS_FILE
        if not path.is_file():
            raise BenchError(f"{self.folder}: no {SETTINGS_FILE}; is this a benchmark output folder?")
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("format", None)
        return Settings(**data)

    def load(self) -> list[Sample]:
        """Every sample on record (a torn last line from an interrupted run is ignored)."""
        if not self.results_path.is_file():
            return []
        found: list[Sample] = []
        for number, line in enumerate(self.results_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                logger.warning("%s:%d: unreadable line ignored (an interrupted write)", self.results_path, number)
                continue
            if isinstance(data, dict) and data.get("format") == RESULTS_FORMAT:
                found.append(Sample.from_json(data))
        return found

    def append(self, sample: Sample) -> None:
        with self._lock, self.results_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(sample.as_json()) + "\n")
            out.flush()
            os.fsync(out.fileno())


# --------------------------------------------------------------------------- one sample


def module_task(suite: Suite, task: BenchTask) -> ModuleTask:
    """A stage task as the planner's :class:`ModuleTask` (what the product's coder is given)."""
    sk = skeleton.skeleton(task.role)
    unit = task.unit is not None
    return ModuleTask(role=task.role, description=module_description(task),
                      architecture=architecture_text(suite, task), interface=INTERFACES[task.role],
                      granularity="function" if unit else "module", skeleton=sk.text if unit else "",
                      units=[UnitTask(name=u.name, stub=u.stub) for u in sk.units] if unit else [])


def first_messages(suite: Suite, task: BenchTask, strategy: str) -> list[BaseMessage]:
    """The opening prompt of a task."""
    if task.kind == "feature":
        return feature_prompts.feature_messages(feature_tasks.catalogue()[task.feature], strategy)
    if task.kind == "stage":
        return coder.opening_messages(module_task(suite, task), strategy, mode="write", unit=task.unit)
    return prompts.bench_messages(strategy=strategy, description=task.description, signature=task.signature,
                                  context=task.context, names=task.names)


def repair_messages(suite: Suite, task: BenchTask, strategy: str, code: str, diagnosis: str,
                    history: Sequence[tuple[str, str]]) -> list[BaseMessage]:
    """The repairer's prompt after a visible check failed (a feature task: its prompt, the answer's code and the
    judge's diagnosis, the conversation a run continues)."""
    if task.kind == "feature":
        return [*first_messages(suite, task, strategy), AIMessage(content=f"```python\n{code.strip()}\n```"),
                prompts.retry_message(diagnosis)]
    if task.kind == "stage":
        return coder.opening_messages(module_task(suite, task), strategy, mode="repair", unit=task.unit, code=code,
                                      diagnosis=diagnosis, history=history)
    return prompts.bench_messages(strategy=strategy, description=task.description, signature=task.signature,
                                  context=task.context, names=task.names, code=code, diagnosis=diagnosis)


def required_names(task: BenchTask) -> list[str]:
    return list(task.names) if task.names else [ENTRY_POINTS[task.role]]


def truncated(answer: llm.Answer) -> hidden.Judgement:
    """An answer cut off at the length limit: not judged as code (it would be a syntax error)."""
    return hidden.Judgement(False, "truncated", detail=coder.truncated_review(answer.output_tokens,
                                                                              answer.text).problem)


def extract(task: BenchTask, answer: str) -> str | hidden.Judgement:
    """The code in an answer, or the failed judgement (``no_code``, ``syntax``, ``interface``)."""
    try:
        unit = task.kind == "stage" and task.unit is not None
        code = extract_code(answer, required=required_names(task),
                            provided=skeleton.skeleton(task.role).provided if unit else ())
    except ExtractionError as exc:
        failure = "interface" if exc.missing else "syntax" if "parse" in str(exc) else "no_code"
        return hidden.Judgement(False, failure, detail=str(exc))
    if task.kind == "stage" and task.unit is not None:
        code = coder.unit_answer(task.role, task.unit, code)
    return code


@dataclass
class Context:
    """What every sample of a run shares."""

    suite: Suite
    settings: Settings
    strategy: str
    """The prompts' strategy name (``zero_shot``...)."""
    model_for: Callable[[int], BaseChatModel]
    """The chat model for sample ``i`` (a seed or temperature per sample, or one model for all)."""
    runner: hidden.Runner
    model_timeout_s: float | None = None
    window: Window | None = None
    """The model's context window, when known: a prompt that does not fit is not sent."""
    transcripts: Path | None = None
    """Where each sample's transcript is written (``<out>/transcripts``); ``None``: not kept."""
    max_answer_tokens: int = llm.DEFAULT_MAX_ANSWER_TOKENS
    judge: hidden.JudgeFunction = hidden.judge
    visible: hidden.JudgeFunction = hidden.visible_feedback


@dataclass
class _Tally:
    input_tokens: int = 0
    output_tokens: int = 0
    model_seconds: float = 0.0
    attempts: int = 0
    history: list[tuple[str, str]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)


def _ask(context: Context, sample: int, messages: Sequence[BaseMessage], tally: _Tally) -> llm.Answer:
    start = time.perf_counter()
    tally.attempts += 1
    call: dict[str, Any] = {"messages": [{"role": m.type, "content": str(m.content)} for m in messages]}
    tally.calls.append(call)
    try:
        answer = llm.ask(context.model_for(sample), messages, timeout_s=context.model_timeout_s)
    except Exception as exc:
        call["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        raise
    finally:
        tally.model_seconds += time.perf_counter() - start
    call.update(answer=answer.text, finish_reason=answer.finish_reason, cached=answer.cached,
                input_tokens=answer.input_tokens, output_tokens=answer.output_tokens)
    tally.input_tokens += answer.input_tokens
    tally.output_tokens += answer.output_tokens
    return answer


def _attempts(context: Context, task: BenchTask, sample: int, tally: _Tally) -> str | hidden.Judgement:
    """Ask (and with repair, re-ask from the visible checks' feedback); the last usable code or its failure."""
    messages = first_messages(context.suite, task, context.strategy)
    budget = context.settings.attempts if context.settings.repair else 1
    last: str | hidden.Judgement = hidden.Judgement(False, "no_code", detail="no answer")
    while tally.attempts < budget:
        too_long = context.window.problem(messages, context.max_answer_tokens) if context.window else None
        if too_long is not None:
            return hidden.Judgement(False, "too_long", detail=too_long)
        answer = _ask(context, sample, messages, tally)
        found = truncated(answer) if answer.truncated else extract(task, answer.text)
        if isinstance(found, hidden.Judgement):
            last = found
            messages = [*messages, AIMessage(content=answer.text), prompts.retry_message(found.detail)]
            continue
        last = found
        if not context.settings.repair or tally.attempts >= budget:
            break
        check = context.visible(context.suite, task, found, context.runner)
        if check.passed:
            break
        diagnosis = check.detail or check.failure
        messages = repair_messages(context.suite, task, context.strategy, found, diagnosis, tally.history)
        tally.history.append((found, diagnosis))
    return last


def run_sample(context: Context, task: BenchTask, sample: int) -> Sample:
    """One sample of one task, judged; never raises for the model's or the candidate's faults."""
    start = time.perf_counter()
    tally = _Tally()
    try:
        found = _attempts(context, task, sample, tally)
        verdict = found if isinstance(found, hidden.Judgement) else context.judge(
            context.suite, task, found, context.runner)
    except (llm.ModelCallError, llm.ModelConfigError) as exc:
        verdict = hidden.Judgement(False, "model_error", detail=str(exc)[:500])
    except Exception as exc:
        if llm.is_transient(exc):
            verdict = hidden.Judgement(False, "model_error", detail=f"{type(exc).__name__}: {str(exc)[:300]}")
        else:
            logger.exception("task %s sample %d: the benchmark's own error", task.id, sample)
            verdict = hidden.Judgement(False, "crash", "harness", f"{type(exc).__name__}: {str(exc)[:300]}")
    kept = save_transcript(context.transcripts, task, sample, tally.calls, verdict)
    return Sample(task.id, task.digest, sample, verdict.passed, verdict.failure, verdict.stage, verdict.detail[:1000],
                  max(1, tally.attempts), tally.input_tokens, tally.output_tokens,
                  round(time.perf_counter() - start, 3), round(tally.model_seconds, 3), kept)


TRANSCRIPTS_DIR = "transcripts"
TRANSCRIPT_FORMAT = "simcoder-bench-transcript/1"


def save_transcript(folder: Path | None, task: BenchTask, sample: int, calls: list[dict[str, Any]],
                    verdict: hidden.Judgement) -> str:
    """Write one sample's calls and verdict to ``folder/<task>.s<sample>.json``; its path relative to the output
    folder (empty when ``folder`` is ``None``, e.g. on a remote worker)."""
    if folder is None:
        return ""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task.id}.s{sample}.json"
    record = {"format": TRANSCRIPT_FORMAT, "task": task.id, "sample": sample, "passed": verdict.passed,
              "failure": verdict.failure, "detail": verdict.detail[:1000], "calls": calls}
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return f"{TRANSCRIPTS_DIR}/{path.name}"


@dataclass(frozen=True)
class Job:
    """One (task, sample) as it crosses to a worker: the task's id and the digest the driver holds."""

    task: str
    digest: str
    sample: int


@dataclass(frozen=True)
class WorkerSpec:
    """What a remote worker needs to rebuild the run's context on its own machine (no key: workers read the key
    from their own environment, the variable ``model.api_key_env`` names)."""

    settings: Settings
    model: llm.ModelConfig
    sandbox: SandboxKind
    timeout_s: float


_worker_contexts: dict[WorkerSpec, Context] = {}
_worker_lock = threading.Lock()


def _worker_context(spec: WorkerSpec) -> Context:
    """The worker process's context for ``spec``: its own suite, model factory and sandbox, made once."""
    with _worker_lock:
        context = _worker_contexts.get(spec)
        if context is None:
            runner = hidden.Runner(resources.make_sandbox_for(spec.sandbox, spec.timeout_s), spec.timeout_s)
            context = Context(load_suite(), spec.settings, spec.settings.strategy,
                              lambda i: llm.make_chat_model(replace(spec.model, seed=i)), runner,
                              model_timeout_s=spec.model.timeout_s)
            _worker_contexts[spec] = context
        return context


def remote_sample(spec: WorkerSpec, job: Job) -> dict[str, Any]:
    """A worker's job: one sample, run in the worker's own sandbox, as its results line (:data:`RESULTS_FORMAT`)."""
    context = _worker_context(spec)
    task = context.suite.task(job.task)
    if task.digest != job.digest:
        raise BenchError(f"task {job.task} differs on this worker (digest {task.digest}, the driver's {job.digest}): "
                         "install the same checkout on every node")
    return run_sample(context, task, job.sample).as_json()


def lost_sample(job: Job, lost: JobFailed) -> Sample:
    """The failed sample recorded for a job its executor lost for good (a ``crash`` at the executor)."""
    return Sample(job.task, job.digest, job.sample, False, "crash", "executor", lost.message[:1000])


def run(context: Context, tasks: Sequence[BenchTask], store: Store, *, jobs: int = 2,
        progress: Callable[[Sample, int, int], None] | None = None, executor: Executor | None = None,
        worker: WorkerSpec | None = None) -> list[Sample]:
    """Every (task, sample) not yet on record, ``jobs`` at a time; returns the run's samples (old and new).

    With ``executor`` (e.g. Ray) and ``worker`` the samples run remotely, each worker with its own
    sandbox, and come back as results lines; otherwise they run in this process's threads.  Either
    way the driver appends each sample to the store as it arrives, and a job the executor lost is a
    failed sample.
    """
    digests = {t.id: t.digest for t in tasks}
    by_id = {t.id: t for t in tasks}
    on_record = [s for s in current(store.load())
                 if digests.get(s.task) == s.digest and s.sample < context.settings.samples]
    kept = [s for s in on_record if s.failure not in ASKED_AGAIN]
    done = {(s.task, s.sample) for s in kept}
    todo = [Job(t.id, t.digest, i) for t in tasks for i in range(context.settings.samples) if (t.id, i) not in done]
    if on_record:
        logger.info("resuming: %d of %d samples are on record; %d to run (%d whose model call failed, asked again)",
                    len(done), len(done) + len(todo), len(todo), len(on_record) - len(kept))

    def local(job: Job) -> dict[str, Any]:
        return run_sample(context, by_id[job.task], job.sample).as_json()

    work: Callable[[Job], dict[str, Any]] = local if worker is None else partial(remote_sample, worker)
    runner = executor if executor is not None else LocalExecutor(max(1, jobs))
    results: dict[int, Sample] = {}
    for index, outcome in runner.map_unordered(work, todo):
        sample = lost_sample(todo[index], outcome) if isinstance(outcome, JobFailed) else Sample.from_json(outcome)
        store.append(sample)
        results[index] = sample
        if progress is not None:
            progress(sample, len(results), len(todo))
    return kept + [results[i] for i in range(len(todo))]


# --------------------------------------------------------------------------- the table


def _rates(samples: Iterable[Sample], ks: Sequence[int]) -> dict[str, Any]:
    per_task: dict[str, list[Sample]] = {}
    for s in samples:
        per_task.setdefault(s.task, []).append(s)
    if not per_task:
        return {"tasks": 0, "samples": 0, "passed": 0, **{f"pass@{k}": None for k in ks}, "c/n": None}
    counts = {t: (len(v), sum(1 for s in v if s.passed)) for t, v in per_task.items()}
    out: dict[str, Any] = {"tasks": len(counts), "samples": sum(n for n, _ in counts.values()),
                           "passed": sum(c for _, c in counts.values())}
    for k in ks:
        usable = [(n, c) for n, c in counts.values() if n >= k]
        out[f"pass@{k}"] = (sum(pass_at_k(n, c, k) for n, c in usable) / len(usable)) if usable else None
    out["c/n"] = out["passed"] / out["samples"]
    return out


def build_table(samples: Sequence[Sample], tasks: Sequence[BenchTask], settings: Settings,
                ks: Sequence[int]) -> dict[str, Any]:
    """Table 1 as data: overall, per level, per module and per level x module; failure classes; tokens and time."""
    by_id = {t.id: t for t in tasks}
    known = [s for s in samples if s.task in by_id and by_id[s.task].digest == s.digest]
    bad_k = [k for k in ks if k > settings.samples]
    if bad_k:
        raise BenchError(f"pass@{bad_k[0]} needs --samples of at least {bad_k[0]} (the run has {settings.samples})")
    levels = sorted({by_id[s.task].level for s in known})
    modules = sorted({by_id[s.task].module for s in known})
    failures = Counter(s.failure + (f" ({s.stage})" if s.failure in ("wrong", "crash") and s.stage else "")
                       for s in known if not s.passed)
    return {
        "format": TABLE_FORMAT,
        "settings": settings.as_json(),
        "ks": list(ks),
        "overall": _rates(known, ks),
        "by_level": {lv: _rates((s for s in known if by_id[s.task].level == lv), ks) for lv in levels},
        "by_module": {m: _rates((s for s in known if by_id[s.task].module == m), ks) for m in modules},
        "by_level_module": {f"{lv}/{m}": _rates((s for s in known if by_id[s.task].level == lv
                                                 and by_id[s.task].module == m), ks)
                            for lv in levels for m in modules},
        "failures": dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
        "tokens": {"input": sum(s.input_tokens for s in known), "output": sum(s.output_tokens for s in known)},
        "seconds": {"wall_sum": round(sum(s.seconds for s in known), 1),
                    "model_sum": round(sum(s.model_seconds for s in known), 1)},
        "tasks_without_samples": sorted(set(by_id) - {s.task for s in known}),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def table_markdown(table: Mapping[str, Any]) -> str:
    """Table 1 in markdown."""
    ks = table["ks"]
    s = table["settings"]
    head = "| group | tasks | samples | " + " | ".join(f"pass@{k}" for k in ks) + " | c/n |"
    rule = "|---|---:|---:|" + "---:|" * (len(ks) + 1)

    def row(name: str, rates: Mapping[str, Any]) -> str:
        return (f"| {name} | {rates['tasks']} | {rates['samples']} | "
                + " | ".join(_pct(rates[f"pass@{k}"]) for k in ks)
                + f" | {rates['passed']}/{rates['samples']} |")

    lines = [f"# Table 1: pass@k, model {s['model']}, strategy {s['strategy']}"
             + (f", with repair (up to {s['attempts']} answers)" if s["repair"] else ""), "",
             f"{s['samples']} samples per task; pass@k is the unbiased estimator, c/n the passed samples.", "",
             head, rule, row("all", table["overall"])]
    lines += [row(f"level {k}", v) for k, v in table["by_level"].items()]
    lines += [row(f"module {k}", v) for k, v in table["by_module"].items()]
    lines += ["", "Per level and module:", "", head, rule]
    lines += [row(k, v) for k, v in table["by_level_module"].items() if v["samples"]]
    lines += ["", "| failure class | samples |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in table["failures"].items()] or ["| (none) | 0 |"]
    tokens, seconds = table["tokens"], table["seconds"]
    lines += ["", f"Tokens: {tokens['input']:,} in, {tokens['output']:,} out. Time: {seconds['wall_sum']:,} s of "
              f"sample wall time, {seconds['model_sum']:,} s in the model."]
    if table["tasks_without_samples"]:
        lines.append(f"Tasks without samples yet: {len(table['tasks_without_samples'])}.")
    return "\n".join(lines) + "\n"


def write_table(folder: Path, table: Mapping[str, Any]) -> tuple[Path, Path]:
    md, js = folder / "table1.md", folder / "table1.json"
    md.write_text(table_markdown(table), encoding="utf-8")
    js.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return md, js

