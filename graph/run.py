"""``python -m graph.run --arch scale_sim.yaml``: write, verify and repair a simulator; package and report it.

Exit codes: 0 verified; 1 failed (a coder gave up, a module cannot be repaired, a model error);
2 bad input (the spec, a flag, the model settings); 3 no usable sandbox; 4 a budget or cap ran
out before the candidate verified; 130 cancelled (Ctrl-C; resume with ``--resume RUN_ID``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig

from agents import cancel, intake, llm, planner, resources
from agents.report import write_report
from agents.run_config import NO_MAXIMA, CallerRequest, OperatorSettings, RunConfig
from agents.run_lock import run_lock
from agents.summary import final_status, one_line
from graph import checkpoint
from graph.graph import build_builder, report_of
from graph.host import Host
from reference_sim.errors import InputError, SimCoderError, SimulationError
from sandbox.base import Sandbox, SandboxUnavailable

logger = logging.getLogger("graph.run")

EXIT_CODES = {"verified": 0, "failed": 1, "budget_exhausted": 4, "cancelled": 130}
EXIT_BAD_INPUT = 2
EXIT_NO_SANDBOX = 3
SETTINGS_FILE = "run.json"
SETTINGS_FORMAT = "simcoder-run/1"
CHECKPOINTS_FILE = checkpoint.SQLITE_FILE


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m graph.run", description=(
        "Write a cycle-accurate simulator from the spec's module descriptions, prove it against the reference "
        "in a sandbox, repair it from the verifier's evidence, and package it. With no model configured the "
        "run is in template mode: the built-in verified modules go through the same pipeline."))
    p.add_argument("--arch", help="the architecture spec (default: scale_sim.yaml)")
    p.add_argument("--strategy", metavar="|".join(planner.STRATEGIES),
                   help="prompting strategy (default: the spec's)")
    p.add_argument("--granularity", choices=planner.GRANULARITIES, default=None,
                   help="module: each module in one answer; function: unit by unit from a skeleton (default module)")
    p.add_argument("--model", help="model name (else OPENAI_MODEL, else the spec's model.model)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (else OPENAI_BASE_URL, else the spec's)")
    p.add_argument("--seed", type=int, help="sampling seed for endpoints that take one")
    p.add_argument("--generate", help="comma-separated modules to write (default: the spec's, else all three); "
                                      "the others are the reference's; none: only the spec's features")
    p.add_argument("--reference", metavar="DIR", help="verify against your own reference: a folder with "
                                                      "mapping.py, network.py and memory.py under the same contract")
    p.add_argument("--features-dir", metavar="DIR",
                   help="your own folder of features (one folder per feature: feature.yaml, description.md, optional "
                        "properties.py, which runs on this machine)")
    p.add_argument("--max-attempts", type=int, metavar="N", help="answers per module or unit (default: spec, 3)")
    p.add_argument("--repair-rounds", type=int, metavar="N", help="verify-repair rounds (default: spec, 5)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="token cap of the run (default: spec, 2,000,000)")
    p.add_argument("--max-wall-s", type=float, metavar="S", help="wall-time cap, seconds (default: spec, 3600)")
    p.add_argument("--max-sandboxes", type=int, metavar="N", help="sandbox runs at once (default: spec, 2)")
    p.add_argument("--sandbox", choices=("docker", "process"), default=None,
                   help="where candidates run (default: Docker; template mode falls back to processes without "
                        "an engine). 'process' is not isolation")
    p.add_argument("--optimise", dest="optimise", action="store_true", default=None,
                   help="ask for a faster slowest module once verified (default: on with a model)")
    p.add_argument("--no-optimise", dest="optimise", action="store_false")
    p.add_argument("--out", default="runs", help="folder of run folders (default: runs)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a killed or cancelled run from its checkpoint")
    p.add_argument("--checkpoint", metavar="URL",
                   help="keep the run's state in PostgreSQL (postgres://USER:PASSWORD@HOST:PORT/DB) so another "
                        f"machine can resume it (default: {checkpoint.CHECKPOINT_ENV}, else SQLite in the run folder)")
    p.add_argument("--model-timeout-s", type=float, metavar="S",
                   help="total time one model call may take, seconds (default: the spec's model.timeout_s, 120); "
                        "a slow local model may need 600 or more")
    p.add_argument("--context-tokens", type=int, metavar="N",
                   help="the model's context window when its server does not say it (llama.cpp's /props does; "
                        "default: the spec's model.context_tokens)")
    p.add_argument("--no-cache", action="store_true",
                   help="ask the model every time (default: answers are kept in the run folder's model-cache.sqlite, "
                        "so a resumed run pays for no answer twice)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return p


def check_limits(values: dict[str, Any]) -> None:
    """The budget and cap flags: positive and finite (repair rounds: not negative)."""
    for name in ("max_attempts", "max_tokens", "max_wall_s", "max_sandboxes", "model_timeout_s", "context_tokens"):
        value = values.get(name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"--{name.replace('_', '-')}", "must be a positive finite number")
    rounds = values.get("repair_rounds")
    if rounds is not None and rounds < 0:
        raise InputError("--repair-rounds", "must not be negative")


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as plain data (saved in ``run.json``; never a key)."""
    check_limits(vars(args))
    if args.features_dir is not None and not Path(args.features_dir).is_dir():
        raise InputError("--features-dir", f"{args.features_dir} is not a folder")
    return {"format": SETTINGS_FORMAT, "arch": str(Path(args.arch or "scale_sim.yaml").resolve()),
            "strategy": planner.parse_strategy(args.strategy) if args.strategy is not None else None,
            "granularity": args.granularity or "module", "model": args.model, "base_url": args.base_url,
            "seed": args.seed, "generate": planner.parse_generate(args.generate),
            "reference": str(Path(args.reference).resolve()) if args.reference else None,
            "features_dir": str(Path(args.features_dir).resolve()) if args.features_dir else None,
            "max_attempts": args.max_attempts, "repair_rounds": args.repair_rounds, "max_tokens": args.max_tokens,
            "max_wall_s": args.max_wall_s, "max_sandboxes": args.max_sandboxes, "sandbox": args.sandbox,
            "optimise": args.optimise, "model_timeout_s": args.model_timeout_s,
            "context_tokens": args.context_tokens, "model_cache": not args.no_cache}


RESUME_FIXED = {"arch": "--arch", "strategy": "--strategy", "granularity": "--granularity",
                "generate": "--generate", "reference": "--reference", "features_dir": "--features-dir"}
"""Settings that shaped the plan: a resumed run keeps them."""
RESUME_FLAGS = {"model": "model", "base_url": "base_url", "seed": "seed", "max_attempts": "max_attempts",
                "repair_rounds": "repair_rounds", "max_tokens": "max_tokens", "max_wall_s": "max_wall_s",
                "max_sandboxes": "max_sandboxes", "sandbox": "sandbox", "optimise": "optimise",
                "model_timeout_s": "model_timeout_s", "context_tokens": "context_tokens"}
"""Settings a resumed run may change (a new endpoint, more budget)."""


def resumed_settings(saved: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The saved settings with the flags given on ``--resume`` applied; plan-shaping flags are refused."""
    fixed = [flag for key, flag in RESUME_FIXED.items() if getattr(args, key) is not None]
    if fixed:
        raise InputError("--resume", f"{', '.join(fixed)} cannot change on resume (they shaped the plan); "
                                     "start a new run instead")
    given = {key: getattr(args, attr) for key, attr in RESUME_FLAGS.items() if getattr(args, attr) is not None}
    if args.no_cache:
        given["model_cache"] = False
    check_limits(given)
    return {**saved, **given}


def operator_from(settings: dict[str, Any], out: Path, env: Mapping[str, str] | None = None) -> OperatorSettings:
    """The CLI's operator settings: its flags, else ``OPENAI_MODEL``/``OPENAI_BASE_URL``; no maxima (one's own
    machine)."""
    env = os.environ if env is None else env
    return OperatorSettings(
        remote=False, sandbox=settings["sandbox"] or "default",
        model=settings["model"] or env.get(llm.ENV_MODEL, "").strip() or None,
        base_url=settings["base_url"] or env.get(llm.ENV_BASE_URL, "").strip() or None,
        reference_dir=settings["reference"], features_dir=settings.get("features_dir"), run_root=str(out),
        maxima=NO_MAXIMA,
        model_deadline_s=settings.get("model_timeout_s"), context_tokens=settings.get("context_tokens"))


def request_from(settings: dict[str, Any], run_id: str) -> CallerRequest:
    """The CLI's run request from its settings."""
    return CallerRequest(
        spec_path=settings["arch"], run_id=run_id, strategy=settings["strategy"],
        granularity=settings["granularity"], generate=settings["generate"], seed=settings["seed"],
        attempts_per_module=settings["max_attempts"], repair_rounds=settings["repair_rounds"],
        max_tokens=settings["max_tokens"], max_wall_s=settings["max_wall_s"], max_sandboxes=settings["max_sandboxes"],
        optimise=settings["optimise"], model_cache=settings.get("model_cache", True))


def _progress(event: dict[str, Any], start: float) -> str | None:
    kind = event.get("event")
    at = f"[{time.time() - start:6.1f}s]"
    if kind == "plan":
        keep = f"; kept from the reference: {', '.join(event['keep'])}" if event.get("keep") else ""
        written = [*event["generate"], *(f"feature_{name}" for name in event.get("features") or [])]
        return f"{at} plan: write {', '.join(written) or 'nothing'} ({event['granularity']}){keep}"
    if kind == "asking":
        unit = f".{event['unit']}" if event.get("unit") else ""
        again = f" (answer {event['attempt']}, temperature {event['temperature']:g})" if event["attempt"] > 1 else ""
        return f"{at} {event['module']}{unit}: asking the model{again}"
    if kind == "streaming":
        unit = f".{event['unit']}" if event.get("unit") else ""
        rate = event["tokens"] / event["seconds"] if event.get("seconds") else 0.0
        return f"{at} {event['module']}{unit}: {event['tokens']} tokens so far ({rate:.1f} tokens/s)"
    if kind == "attempt":
        unit = f".{event['unit']}" if event.get("unit") else ""
        why = f": {event['message']}" if event.get("message") else ""
        return f"{at} {event['module']}{unit}: answer {event['attempt']} {event['status']}{why}"
    if kind == "module" and event.get("status") != "asking":
        more = f" after {event['attempts']} answer(s)" if "attempts" in event else ""
        why = f": {event['message']}" if event.get("message") else ""
        return f"{at} {event['module']}: {event['status']}{more}{why}"
    if kind == "verify":
        if event.get("status") == "running":
            return f"{at} verify (round {event['round']}): running in the sandbox"
        blamed = f", blamed {', '.join(event['blamed'])}" if event.get("blamed") else ""
        return f"{at} verify (round {event['round']}): {event['status']}{blamed}: {event.get('message', '')}"
    if kind == "repair":
        unit = f".{event['unit']}" if event.get("unit") else ""
        return f"{at} repair round {event['round']}: {event['module']}{unit}"
    if kind == "optimise":
        return f"{at} optimise {event['module']}: {event['status']} {event.get('message', '')}".rstrip()
    return None


def _mode_line(config: RunConfig, template: bool, model: llm.ModelConfig | None) -> str:
    if template:
        return ("SimulatorCoder: template mode (no model configured): the coders emit the built-in verified "
                "modules; plan, sandbox verification, package and report run as usual")
    assert model is not None
    host = model.base_url_host or "api.openai.com"
    return (f"SimulatorCoder: model {model.model} at {host}, strategy {config.strategy}, "
            f"granularity {config.granularity}")


def _load_settings(run_dir: Path, url: str | None = None) -> dict[str, Any]:
    """The run's saved settings: its ``run.json``, else (a run started on another machine) the database's copy."""
    path = run_dir / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        saved = checkpoint.load_settings(url, run_dir.name) if url is not None else None
        if saved is None:
            where = f" here or in {checkpoint.where(url)}" if url is not None else ""
            raise InputError(path, f"no such run to resume (its run.json is missing{where})") from None
        data = saved
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the run's settings ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SETTINGS_FORMAT:
        raise InputError(path, f"not a run settings file of format {SETTINGS_FORMAT}")
    return data


def preflight(settings: dict[str, Any], out: Path,
              run_id: str) -> tuple[intake.Intake, llm.ModelConfig | None, Sandbox | None]:
    """Check the spec, the settings, the model and the sandbox before anything is spent or written; the sandbox
    is the run's."""
    checked = intake.prepare(request_from(settings, run_id), operator_from(settings, out), where="command line")
    model = resources.model_config(checked.config)
    kind = resources.sandbox_kind(checked.config.sandbox, checked.config.template)
    sandbox = resources.make_sandbox_for(kind, checked.config.sandbox_timeout_s, checked.config.sandbox_memory_mib)
    note = resources.sandbox_note(sandbox, kind)
    if note:
        print(note if kind == "auto" else f"warning: {note}", file=sys.stderr)
    return checked, model, sandbox


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("graph.graph").setLevel(logging.WARNING)
    out = Path(args.out)
    try:
        url = checkpoint.checkpoint_url(args.checkpoint)
        if args.resume:
            run_id = args.resume
            run_dir = out / run_id
            settings = resumed_settings(_load_settings(run_dir, url), args)
        else:
            run_id = intake.new_run_id()
            run_dir = out / run_id
            settings = settings_from(args)
        checked, model, sandbox = preflight(settings, out, run_id)
        if url is not None:
            checkpoint.save_settings(url, run_id, settings)
    except (InputError, planner.PlanError, llm.ModelConfigError, SandboxUnavailable, SimulationError) as exc:
        return _refused(exc)
    config = checked.config
    print(_mode_line(config, model is None, model), flush=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        return _refused(InputError("--out", f"cannot write the run folder {run_dir}: {exc.strerror or exc}"))
    print(f"run {run_id}: {run_dir}" + (f" (state in PostgreSQL at {checkpoint.where(url)})" if url else ""),
          flush=True)
    host = Host(operator_from(settings, out), sandbox=sandbox, clock_start=time.time(), prepared=checked,
                resume_overrides=config.model_dump() if args.resume else {})
    thread: RunnableConfig = {"configurable": {"thread_id": run_id}}
    try:
        with run_lock(run_dir):
            return _run(args, host, thread, settings, run_id, run_dir, url)
    except InputError as exc:
        return _refused(exc)


def _run(args: argparse.Namespace, host: Host, thread: RunnableConfig, settings: dict[str, Any], run_id: str,
         run_dir: Path, url: str | None) -> int:
    """The run itself, under the run folder's lock."""
    start = time.time()
    if args.resume and url is None:
        _check_checkpoint(run_dir / CHECKPOINTS_FILE)
    with checkpoint.open_saver(url, run_dir) as saver:
        app = build_builder(host).compile(checkpointer=saver)
        try:
            snapshot = app.get_state(thread)
        except sqlite3.DatabaseError as exc:
            raise InputError(run_dir / CHECKPOINTS_FILE, f"not a checkpoint database ({exc}); the run cannot be "
                                                         "resumed: start a new run") from None
        if args.resume and not snapshot.values:
            raise InputError(run_dir / CHECKPOINTS_FILE, f"holds no state of run {run_id}; the run cannot be "
                                                         "resumed (nothing was saved): start a new run")
        if args.resume and not snapshot.next:
            status = str(snapshot.values.get("status") or "failed")
            print(f"run {run_id} already ended: {snapshot.values.get('summary') or status}")
            return EXIT_CODES.get(status, 1)
        inputs: Any = None if args.resume else request_from(settings, run_id).model_dump(exclude_none=True)
        try:
            with cancel.cancellable():
                for _namespace, event in cancel.watched(app.stream(inputs, thread, stream_mode="custom",
                                                                   subgraphs=True)):
                    line = _progress(event, start) if isinstance(event, dict) else None
                    if line and not args.quiet:
                        print(line, file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            return _cancelled(app, thread, host, run_dir, run_id)
        except (InputError, planner.PlanError, llm.ModelConfigError, SandboxUnavailable) as exc:
            _partial(app, thread, host, run_dir, run_id, "failed", f"the run stopped: {exc}")
            return _refused(exc)
        except SimCoderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            _partial(app, thread, host, run_dir, run_id, "failed", f"the run stopped: {exc}")
            return EXIT_CODES["failed"]
        except OSError as exc:
            where = exc.filename or run_dir
            print(f"error: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
            try:
                _partial(app, thread, host, run_dir, run_id, "failed", f"the run stopped: cannot write {where}: "
                                                                       f"{exc.strerror or exc}")
            except OSError as again:
                print(f"error: the report could not be written either: {again.strerror or again}", file=sys.stderr)
            return EXIT_CODES["failed"]
        except Exception as exc:
            if not llm.is_transient(exc):
                raise
            print(f"error: the model stayed unreachable after retries: {type(exc).__name__}: {exc}", file=sys.stderr)
            _partial(app, thread, host, run_dir, run_id, "failed", "the model stayed unreachable after retries")
            return EXIT_CODES["failed"]
        values = app.get_state(thread).values
    status = str(values.get("status") or final_status(values))
    print(f"{values.get('summary') or status}")
    print(f"report: {values.get('report_path') or run_dir / 'report.md'}")
    if values.get("package_path"):
        print(f"package: {values['package_path']} (run it: cd {run_dir} && python -m "
              f"{Path(values['package_path']).name} -c CFG -t TOPOLOGY -p OUT)")
    return EXIT_CODES.get(status, 1)


def _check_checkpoint(path: Path) -> None:
    """A run to resume needs its checkpoint file: present, not empty."""
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError(path, "missing: the run cannot be resumed (nothing was saved); start a new run") from None
    if size == 0:
        raise InputError(path, "empty: the run cannot be resumed (nothing was saved); start a new run")


def _refused(exc: Exception) -> int:
    """One line on stderr; exit 3 when no sandbox can be used, else 2 (bad input)."""
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_NO_SANDBOX if isinstance(exc, SandboxUnavailable) else EXIT_BAD_INPUT


def _partial(app: Any, thread: RunnableConfig, host: Host, run_dir: Path, run_id: str, status: str,
             note: str) -> None:
    values = dict(app.get_state(thread).values)
    values.setdefault("run_dir", str(run_dir))
    values.setdefault("run_id", run_id)
    values["notes"] = [*values.get("notes", []), note]
    report = report_of(values, host, status=status)
    write_report(run_dir, report)
    print(one_line(report))
    print(f"report: {run_dir / 'report.md'}")


def _cancelled(app: Any, thread: RunnableConfig, host: Host, run_dir: Path, run_id: str) -> int:
    print("cancelled: the last checkpoint is kept; continue with "
          f"`python -m graph.run --resume {run_id} --out {run_dir.parent}`", file=sys.stderr)
    _partial(app, thread, host, run_dir, run_id, "cancelled", "cancelled by the user (Ctrl-C)")
    return EXIT_CODES["cancelled"]


if __name__ == "__main__":
    sys.exit(main())
