"""The SimulatorCoder graph: plan, one coder per module in parallel, assemble, verify, repair, optimise, report.

Wiring only: every node is a few lines over the pure functions in :mod:`agents`.

```
START -> plan -(Send per module)-> coder -> assemble -> verify -+-> plan_repair -(Send)-> coder -> assemble ...
                                                                +-> optimise_prompt -> optimise_ask
                                                                |     -> optimise_check -> report
                                                                +-> report -> END
```

The coder is a subgraph (``gate -> prompt -> ask -> review -> finish``, looping within the attempt budget;
``gate`` pauses for a person before a repair when ``human_review`` is on).  LLM
nodes retry transient errors (:func:`agents.llm.is_transient`) with a :class:`RetryPolicy`.

A compiled graph is bound to a :class:`graph.host.Host`: the operator's settings and the objects runs
share.  The ``plan`` node checks the caller's request (the input, and the run's context when it is a
mapping) against them with :func:`agents.intake.prepare` and stores the one :class:`RunConfig` every
other node reads.  The module-level ``graph`` (what ``langgraph.json`` serves) is bound to the
environment's operator settings for remote callers.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy, Send, interrupt

from agents import (
    coder,
    feature_coder,
    feature_prompts,
    intake,
    llm,
    optimiser,
    planner,
    prompts,
    resources,
    run_features,
    summary,
    transcripts,
    unit_checks,
)
from agents.package import package_name_for, write_package
from agents.report import RuntimeRecord, write_report
from agents.run_config import OperatorSettings, RunConfig
from features.catalogue import Feature
from graph.host import Host, request_of
from graph.state import (
    REQUEST_FIELDS,
    CoderOutput,
    CoderState,
    InputState,
    ModuleRecord,
    OutputState,
    RunState,
    tokens_spent,
)
from judge import checks, reference_runs, verdict, verifier

logger = logging.getLogger(__name__)

LLM_RETRY = RetryPolicy(max_attempts=3, initial_interval=1.0, backoff_factor=2.0, retry_on=llm.is_transient)
"""Transient model errors (429, 5xx, dropped connections) retried with backoff, then the run fails."""


def _emit(runtime: Runtime[Any], **event: Any) -> None:
    logger.info("%s", event)
    try:
        runtime.stream_writer(event)
    except Exception:
        logger.debug("no stream writer for %s", event)


def _to_dicts(messages: list[BaseMessage]) -> list[dict[str, str]]:
    roles = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}
    return [{"role": roles.get(type(m), "user"), "content": llm.content_text(m.content)} for m in messages]


def route_after_gate(state: CoderState) -> Literal["prompt", "finish"]:
    return "finish" if state.get("done") else "prompt"


def route_after_prompt(state: CoderState) -> Literal["ask", "finish"]:
    return "finish" if state.get("done") else "ask"


def route_after_ask(state: CoderState) -> Literal["review", "finish"]:
    return "finish" if state.get("done") else "review"


def route_after_review(state: CoderState) -> Literal["prompt", "ask", "finish"]:
    if state.get("done"):
        return "finish"
    if state.get("attempts") and state["attempts"][-1]["status"] == "accepted":
        return "prompt"
    return "ask"


def route_after_assemble(state: RunState) -> Literal["verify", "report"]:
    return "report" if state.get("stop_reason") else "verify"



class Workflow:
    """The run's nodes, bound to a :class:`Host`."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def run_dir(self, state: Any) -> Path:
        """The run's folder where it is now (a resumed run's may have moved)."""
        return Path(self.host.config(state).run_dir)

    def _candidate_dir(self, state: RunState) -> Path:
        return self.run_dir(state) / "candidates" / f"round-{state.get('repair_round', 0)}"

    def assemble(self, state: RunState) -> dict[str, Any]:
        """Put the candidate on disk (``candidates/round-N``), or stop when a coder gave up."""
        failed = [m for m in [*state.get("modules", {}).values(), *state.get("feature_modules", {}).values()]
                  if m["status"] == "failed"]
        if any(m["message"] == coder.STOPPED_BY_REVIEWER for m in failed):
            return {"stop_reason": f"cancelled: {coder.STOPPED_BY_REVIEWER}"}
        capped = [m for m in failed if "cap reached" in m["message"]]
        if capped:
            return {"stop_reason": capped[0]["message"]}
        if failed:
            return {"stop_reason": "failed: " + "; ".join(f"{m['role']}: {m['message']}" for m in failed)[:600]}
        checks.write_candidate(self._candidate_dir(state), {r: m["code"] for r, m in state["modules"].items()})
        return {}

    def res(self, state: Any) -> resources.Resources:
        return self.host.resources(state["plan"], self.host.config(state))

    def model(self, state: Any) -> Any:
        model = self.host.chat_model or self.res(state).chat_model
        if model is None:
            raise llm.ModelConfigError("no chat model is configured for a run that is not in template mode")
        return model

    def feature(self, state: Any, task: planner.ModuleTask) -> Feature:
        """The catalogue feature a feature task implements."""
        return run_features.feature_named(task.get("feature") or "", self.features_dir(state))

    def features_dir(self, state: Any) -> Path | None:
        """The operator's folder of user features, if any."""
        folder = self.host.config(state).features_dir
        return Path(folder) if folder else None

    def sandboxed(self, state: Any, *, reference: bool) -> run_features.SandboxedFeatures:
        """Written feature code run in the sandbox over the reference's modules (while it is written) or the
        run's verified ones."""
        res = self.res(state)
        if res.feature_executor is None:
            raise RuntimeError("this run has no sandbox for feature code")
        modules = (reference_runs.reference_sources() if reference
                   else {r: m["code"] for r, m in state["modules"].items()})
        return run_features.SandboxedFeatures(res.feature_executor, modules)

    def coder_gate(self, state: CoderState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Before a repair, when ``human_review`` is on: pause for a person (nothing before the interrupt to repeat)."""
        if state.get("mode") != "repair" or not self.host.config(state).human_review:
            return {}
        decision = coder.review_decision(interrupt(coder.review_request(state["task"], state.get("diagnosis", ""),
                                                                      state.get("repair_unit"))))
        if decision["action"] == "stop":
            return {"decision": decision, "failure": coder.STOPPED_BY_REVIEWER, "done": True}
        return {"decision": decision}

    def coder_prompt(self, state: CoderState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Open the conversation for the current module or unit (template mode: emit the built-in code)."""
        task = state["task"]
        if state["plan"]["template"]:
            code = unit_checks.template_code(task["role"], task["granularity"])
            return {"written": code, "done": True,
                    "attempts": [{"module": task["role"], "attempt": 1, "kind": "write", "unit": None,
                                  "status": "template", "message": "the built-in verified module", "input_tokens": 0,
                                  "output_tokens": 0, "seconds": 0.0}]}
        unit = state.get("repair_unit") or coder.current_unit(task, state.get("unit_index", 0))
        base = state.get("base")
        old_code = ""
        if state.get("mode") == "repair" and base is not None:
            old_code = base["units"].get(unit, "") if unit else base["code"]
        history = [(h[0], h[1]) for h in (base["history"] if base is not None else [])]
        diagnosis = coder.with_instruction(state.get("diagnosis", ""), state.get("decision"))
        strategy = self.host.config(state).strategy
        if task.get("feature"):
            messages = feature_prompts.feature_messages(self.feature(state, task), strategy)
        else:
            messages = coder.opening_messages(task, strategy, mode=state.get("mode", "write"),  # type: ignore[arg-type]
                                              unit=unit, code=old_code, diagnosis=diagnosis, history=history)
        _emit(runtime, event="module", module=task["role"], unit=unit, mode=state.get("mode", "write"), status="asking")
        return {"conversation": _to_dicts(messages), "attempt": 0, "answer_digests": []}

    def coder_ask(self, state: CoderState, runtime: Runtime[Any]) -> dict[str, Any]:
        """One model answer (retried on transient errors by the node's policy)."""
        spent = state.get("tokens_before", 0) + tokens_spent(state.get("tokens") or {})
        config = self.host.config(state)
        capped = config.cap_reached(spent, time.time() - state.get("run_started_at", time.time()))
        if capped is not None:
            return {"failure": capped, "done": True}
        model = self.model(state)
        node = "repairer" if state.get("mode") == "repair" else "coder"
        unit = state.get("repair_unit") or coder.current_unit(state["task"], state.get("unit_index", 0))
        attempt = state.get("attempt", 0) + 1
        sampling = coder.sampling(config, attempt)
        _emit(runtime, event="asking", module=state["task"]["role"], unit=unit, attempt=attempt, node=node,
              temperature=sampling.temperature)
        messages = convert_to_messages(transcripts.messages(config.run_dir, state["conversation"]))
        window = self.res(state).window
        too_big = window.problem(messages, config.max_answer_tokens) if window is not None else None
        if too_big is not None:
            return {"failure": f"model call not made: {too_big}", "done": True}
        def progress(tokens: int, seconds: float) -> None:
            _emit(runtime, event="streaming", module=state["task"]["role"], unit=unit, attempt=attempt, tokens=tokens,
                  seconds=round(seconds, 1))

        try:
            answer = llm.ask(model, messages, deadline=state.get("run_started_at", time.time()) + config.max_wall_s,
                             temperature=sampling.temperature, seed=sampling.seed, on_progress=progress)
        except llm.WallCapReached as exc:
            return {"failure": f"wall-time cap reached ({config.max_wall_s:.0f} s): {exc}", "done": True}
        except llm.ModelCallError as exc:
            return {"failure": f"model call failed: {exc}", "done": True}
        what = ".".join(p for p in (state["task"]["role"], unit) if p)
        saved = transcripts.save(config.run_dir, answer.text, what=f"{what}-{node}-{attempt}")
        return {"answer": saved["file"], "attempt": attempt, "truncated": answer.truncated,
                "conversation": [*state["conversation"], saved],
                "tokens": {node: {"calls": 1, "input_tokens": answer.input_tokens,
                                  "output_tokens": answer.output_tokens}},
                "last_seconds": answer.seconds, "last_tokens": [answer.input_tokens, answer.output_tokens]}

    def coder_review(self, state: CoderState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Check the answer; accept it, ask again with the problem, or give up when the budget is spent."""
        task = state["task"]
        res = self.res(state)
        unit = state.get("repair_unit") or coder.current_unit(task, state.get("unit_index", 0))
        answer = transcripts.text_of(self.host.config(state).run_dir, {"file": state["answer"]})
        if state.get("truncated"):
            found = coder.truncated_review((state.get("last_tokens") or [0, 0])[1], answer)
        elif task.get("feature"):
            found = feature_coder.review(self.feature(state, task), answer, self.sandboxed(state, reference=True))
        else:
            found = coder.review(task, answer, unit=unit, executor_for=res.executor_for, suite=res.suite)
        attempt = state.get("attempt", 1)
        tokens = state.get("last_tokens") or [0, 0]
        record = {"module": task["role"], "attempt": attempt, "kind": state.get("mode", "write"), "unit": unit,
                  "status": found.status, "message": found.problem[:500], "input_tokens": tokens[0],
                  "output_tokens": tokens[1], "seconds": float(state.get("last_seconds") or 0.0)}
        _emit(runtime, event="attempt", module=task["role"], unit=unit, attempt=attempt, status=found.status,
              message=found.problem[:200])
        if found.code is not None:
            written = {**state.get("written", {}), (unit or task["role"]): found.code}
            next_index = state.get("unit_index", 0) + (0 if state.get("repair_unit") else 1)
            more = (not state.get("repair_unit")) and coder.current_unit(task, next_index) is not None
            return {"written": written, "unit_index": next_index, "done": not more, "attempts": [record]}
        if coder.retry_allowed(attempt, self.host.config(state).attempts_per_module):
            digest = hashlib.sha256(answer.encode()).hexdigest()
            seen = state.get("answer_digests") or []
            problem = found.problem + (coder.REPEATED if digest in seen else "")
            return {"attempts": [record], "answer_digests": [*seen, digest],
                    "conversation": [*state["conversation"], _to_dicts([prompts.retry_message(problem)])[0]]}
        return {"attempts": [record], "done": True,
                "failure": f"{attempt} answer(s) without an acceptable {task['role']} module; last problem: "
                           f"{found.problem[:300]}"}

    def coder_finish(self, state: CoderState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Hand the module back to the run."""
        task = state["task"]
        role = task["role"]
        base = state.get("base")
        answers = sum(1 for a in state.get("attempts", []) if a["status"] != "template")
        units = {**(base["units"] if base is not None else {}), **state.get("written", {})} \
            if task["granularity"] == "function" else {}
        failure = state.get("failure", "")
        template = bool(state["plan"]["template"])
        key = "feature_modules" if task.get("feature") else "modules"
        name = task.get("feature") or role
        if failure:
            record = ModuleRecord(role=role, source="generated", status="failed",
                                  code=base["code"] if base is not None else "", units=units,
                                  attempts=(base["attempts"] if base else 0) + answers,
                                  history=base["history"] if base else [], message=failure)
            _emit(runtime, event="module", module=role, status="failed", message=failure[:200])
            return {key: {name: record}, "notes": [f"{role}: {failure}"]}
        code = coder.module_code(task, units if units else state.get("written", {}))
        history = list(base["history"]) if base is not None else []
        if state.get("mode") == "repair" and base is not None:
            history.append([base["code"], state.get("diagnosis", "")])
        record = ModuleRecord(role=role, source="template" if template else "generated",
                              status="repaired" if state.get("mode") == "repair" else "written", code=code, units=units,
                              attempts=(base["attempts"] if base else 0) + answers, history=history, message="")
        _emit(runtime, event="module", module=role, status=record["status"], attempts=record["attempts"])
        return {key: {name: record}}

    def build_coder(self) -> Any:
        """The coder subgraph: one module (or its units), within the attempt budget."""
        builder = StateGraph(CoderState, input_schema=CoderState, output_schema=CoderOutput)
        builder.add_node("gate", self.coder_gate)
        builder.add_node("prompt", self.coder_prompt)
        builder.add_node("ask", self.coder_ask, retry_policy=LLM_RETRY)
        builder.add_node("review", self.coder_review)
        builder.add_node("finish", self.coder_finish)
        builder.add_edge(START, "gate")
        builder.add_conditional_edges("gate", route_after_gate)
        builder.add_conditional_edges("prompt", route_after_prompt)
        builder.add_conditional_edges("ask", route_after_ask)
        builder.add_conditional_edges("review", route_after_review)
        builder.add_edge("finish", END)
        return builder.compile()

    def plan(self, state: RunState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Check the request and the spec, resolve the run's settings once, plan the modules (nothing is written
        before all of it is valid); keep the reference's modules the run does not write."""
        started = state.get("started_at") or time.time()
        operator = self.host.operator
        checked = self.host.prepared if self.host.prepared is not None and self.host.prepared.run_id == state.get(
            "run_id") else intake.prepare(request_of(state, runtime.context, REQUEST_FIELDS), operator,
                                          template=None if self.host.chat_model is None else False)
        run_dir = intake.commit(checked, operator)
        made, config = checked.plan, checked.config
        res = self.host.resources(made, config)
        notes = []
        if made["template"]:
            notes.append("template mode: no model is configured, so the coders emit the built-in verified modules")
        if res.sandbox_note:
            notes.append(res.sandbox_note)
        if made["reference"] != "built-in":
            notes.append(f"verified against the user's own reference in {made['reference']}")
        kept = {role: ModuleRecord(role=role, source="reference", status="kept",
                                   code=reference_runs.reference_code(role), units={}, attempts=0, history=[],
                                   message="") for role in made["keep"]}
        _emit(runtime, event="plan", generate=made["generate"], keep=made["keep"], template=made["template"],
              granularity=made["granularity"], features=[t.get("feature") for t in made.get("feature_tasks", [])])
        return {"plan": made, "config": config.model_dump(mode="json"), "started_at": started,
                "spec_path": made["spec_path"], "modules": kept, "notes": notes, "repair_round": 0,
                "run_dir": str(run_dir), "run_id": checked.run_id}

    def _branch(self, state: RunState, task: planner.ModuleTask, **extra: Any) -> Send:
        return Send("coder", {"task": task, "plan": state["plan"], "config": state["config"], "mode": "write",
                              "unit_index": 0, "written": {},
                              "tokens_before": tokens_spent(state.get("tokens") or {}),
                              "run_started_at": self.host.clock_start or state.get("started_at", time.time()),
                              **extra})

    def fan_out(self, state: RunState) -> list[Send] | Literal["assemble"]:
        """One coder per module to write, in parallel."""
        tasks = [*state["plan"]["tasks"], *state["plan"].get("feature_tasks", [])]
        return [self._branch(state, task) for task in tasks] if tasks else "assemble"

    def verify(self, state: RunState, runtime: Runtime[Any]) -> dict[str, Any]:
        """The honest verifier on the assembled candidate; keeps the best candidate so far."""
        res = self.res(state)
        folder = self._candidate_dir(state)
        _emit(runtime, event="verify", round=state.get("repair_round", 0), status="running")
        result = verifier.verify(res.executor_for(folder), res.suite, final_check=res.final_check)
        record = summary.verification_record(result)
        _emit(runtime, event="verify", round=state.get("repair_round", 0), status=result.outcome.value,
              blamed=list(result.blamed), message=result.diagnosis.splitlines()[0][:300])
        update: dict[str, Any] = {"verification": record}
        best = state.get("best")
        if best is None or summary.score(record) > tuple(best["score"]):
            update["best"] = {"modules": {r: m["code"] for r, m in state["modules"].items()},
                              "score": list(summary.score(record)), "round": state.get("repair_round", 0)}
        if result.passed and state["plan"].get("features"):
            workloads = [(w.id.replace("@", "-"), w.layers, w.hardware) for w in res.final_check]
            written = {name: m["code"] for name, m in (state.get("feature_modules") or {}).items()}
            outcomes = run_features.judge_features(
                state["plan"]["features"], workloads, self.run_dir(state), written=written,
                sandboxed=self.sandboxed(state, reference=False) if written else None,
                user_folder=self.features_dir(state))
            update["features"] = outcomes
            failed = [o["summary"] for o in outcomes if not o["passed"]]
            if failed:
                update["stop_reason"] = "failed: a feature's implementation does not pass its judge: " + "; ".join(
                    failed)[:600]
        if not result.passed:
            lim = self.host.config(state)
            generated = state["plan"]["generate"]
            blamed = [m for m in result.blamed if m in generated]
            capped = lim.cap_reached(tokens_spent(state.get("tokens") or {}), time.time() - (
                self.host.clock_start or state.get("started_at", time.time())))
            if state["plan"]["template"]:
                update["stop_reason"] = "failed: the built-in modules do not verify against this reference"
            elif not blamed:
                update["stop_reason"] = (f"failed: the verifier blames {', '.join(result.blamed) or 'no module'}, "
                                         "which this run does not write")
            elif state.get("repair_round", 0) >= lim.repair_rounds:
                update["stop_reason"] = f"repair budget spent ({lim.repair_rounds} rounds)"
            elif capped is not None:
                update["stop_reason"] = capped
            else:
                update["repairs"] = [{"role": role, "diagnosis": result.diagnosis} for role in blamed]
        return update

    def _optimise_enabled(self, state: RunState) -> bool:
        return self.host.config(state).optimise and not state["plan"]["template"]

    def route_after_verify(self, state: RunState) -> Literal["plan_repair", "optimise_prompt", "report"]:
        if (state.get("verification") or {}).get("outcome") == "passed":
            return "optimise_prompt" if self._optimise_enabled(state) and not state.get("optimiser") else "report"
        return "report" if state.get("stop_reason") else "plan_repair"

    def plan_repair(self, state: RunState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Every blamed module the run writes is repaired (in parallel); at function granularity, its failing unit."""
        repairs = []
        for wanted in state["repairs"]:
            repair = dict(wanted)
            record = state["modules"][repair["role"]]
            if state["plan"]["granularity"] == "function" and record["units"]:
                res = self.res(state)
                unit, why = unit_checks.blamed_unit(repair["role"], record["units"], res.executor_for, res.suite)
                repair["unit"] = unit
                repair["diagnosis"] = f"{repair['diagnosis']}\nUnit check of {unit}: {why}"[:1600]
            _emit(runtime, event="repair", module=repair["role"], unit=repair.get("unit"),
                  round=state.get("repair_round", 0) + 1)
            repairs.append(repair)
        return {"repairs": repairs, "repair_round": state.get("repair_round", 0) + 1}

    def send_repair(self, state: RunState) -> list[Send]:
        """One repairer branch per blamed module."""
        sends = []
        for repair in state["repairs"]:
            task = next(t for t in state["plan"]["tasks"] if t["role"] == repair["role"])
            extra: dict[str, Any] = {"mode": "repair", "base": state["modules"][repair["role"]],
                                     "diagnosis": repair["diagnosis"]}
            if repair.get("unit"):
                extra["repair_unit"] = repair["unit"]
            sends.append(self._branch(state, task, **extra))
        return sends

    def optimise_prompt(self, state: RunState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Profile the verified candidate on the final check and ask for a faster slowest module."""
        res = self.res(state)
        modules = {r: m["code"] for r, m in state["modules"].items()}
        generated = state["plan"]["generate"]
        if not generated or not res.final_check:
            return {"optimiser": {"module": None, "accepted": False, "before_s": None, "after_s": None,
                                  "message": "not tried: no generated module or no final check"}}
        try:
            found = optimiser.profile(modules, res.executor_for, res.final_check)
            before = optimiser.measure(modules, res.executor_for, res.final_check)
        except optimiser.MeasureError as exc:
            return {"optimiser": {"module": None, "accepted": False, "before_s": None, "after_s": None,
                                  "message": f"not tried: {exc}"}}
        role = max(generated, key=lambda r: found.seconds.get(r, 0.0))
        task = next(t for t in state["plan"]["tasks"] if t["role"] == role)
        messages = prompts.optimiser_messages(role=role, description=task["description"],
                                              architecture=task["architecture"], code=modules[role],
                                              profile=found.describe())
        _emit(runtime, event="optimise", module=role, status="asking", before_s=round(before, 4))
        return {"pending_optimisation": {"role": role, "before_s": before, "conversation": _to_dicts(messages)}}

    def optimise_ask(self, state: RunState, runtime: Runtime[Any]) -> dict[str, Any]:
        """The model's faster version (retried on transient errors)."""
        pending = state.get("pending_optimisation")
        if not pending or state.get("optimiser"):
            return {}
        lim = self.host.config(state)
        spent = tokens_spent(state.get("tokens") or {})
        if spent >= lim.max_tokens:
            return {"optimiser": {"module": pending["role"], "accepted": False, "before_s": pending["before_s"],
                                  "after_s": None, "message": "not tried: token cap reached"}}
        model = self.model(state)
        started = self.host.clock_start or state.get("started_at", time.time())
        try:
            answer = llm.ask(model, convert_to_messages(pending["conversation"]), deadline=started + lim.max_wall_s)
            saved = transcripts.save(lim.run_dir, answer.text, what=f"{pending['role']}-optimiser")
        except llm.ModelCallError as exc:
            return {"optimiser": {"module": pending["role"], "accepted": False, "before_s": pending["before_s"],
                                  "after_s": None, "message": f"not tried: {exc}"}}
        return {"pending_optimisation": {**pending, "answer": saved["file"]},
                "tokens": {"optimiser": {"calls": 1, "input_tokens": answer.input_tokens,
                                         "output_tokens": answer.output_tokens}},
                "attempts": [{"module": pending["role"], "attempt": 1, "kind": "optimise", "unit": None,
                              "status": "answered", "message": "", "input_tokens": answer.input_tokens,
                              "output_tokens": answer.output_tokens, "seconds": answer.seconds}]}

    def optimise_check(self, state: RunState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Accept the faster module only if it verifies and is measured faster (median of 3)."""
        if state.get("optimiser"):
            return {}
        pending = state["pending_optimisation"]
        role = pending["role"]
        res = self.res(state)
        task = next(t for t in state["plan"]["tasks"] if t["role"] == role)
        answer = transcripts.text_of(self.run_dir(state), {"file": pending["answer"]}) if pending.get("answer") \
            else ""
        found = coder.review({**task, "granularity": "module"}, answer, unit=None,
                             executor_for=res.executor_for, suite=res.suite)
        modules = {r: m["code"] for r, m in state["modules"].items()}
        after: float | None = None
        result: verdict.Verification | None = None
        if found.code is None:
            accepted, message = False, f"refused: {found.problem[:300]}"
        else:
            candidate = {**modules, role: found.code}
            folder = self.run_dir(state) / "candidates" / "optimised"
            checks.write_candidate(folder, candidate)
            result = verifier.verify(res.executor_for(folder), res.suite, final_check=res.final_check)
            if result.passed:
                try:
                    after = optimiser.measure(candidate, res.executor_for, res.final_check)
                except optimiser.MeasureError:
                    after = None
            accepted, message = optimiser.decide(pending["before_s"], after, result)
        _emit(runtime, event="optimise", module=role, status="accepted" if accepted else "refused", message=message)
        update: dict[str, Any] = {"optimiser": {"module": role, "accepted": accepted, "before_s": pending["before_s"],
                                                "after_s": after, "message": message}}
        if accepted and found.code is not None:
            record = state["modules"][role]
            update["modules"] = {role: {**record, "code": found.code, "status": "optimised", "history": [
                *record["history"], [record["code"], "replaced by a faster version"]]}}
            assert result is not None
            update["verification"] = summary.verification_record(result)
        return update

    def report(self, state: RunState, runtime: Runtime[Any]) -> dict[str, Any]:
        """Package a verified candidate, measure it against the reference, and write the report and charts."""
        plan_ = state["plan"]
        run_dir = self.run_dir(state)
        status = summary.final_status(state)
        package_path: str | None = None
        runtime_record: RuntimeRecord | None = None
        notes: list[str] = []
        res = self.res(state)
        if status == "verified":
            final = run_dir / "candidate"
            checks.write_candidate(final, {r: m["code"] for r, m in state["modules"].items()})
            packaged, not_packaged = run_features.packaged_features(
                plan_.get("features") or [], {n: m["code"] for n, m in (state.get("feature_modules") or {}).items()},
                self.features_dir(state))
            notes += not_packaged
            package_path = str(write_package(final, run_dir, package_name_for(plan_["spec_name"]), features=packaged))
            if res.final_check:
                tried = state.get("optimiser") or {}
                timed = tried.get("after_s") if tried.get("accepted") else tried.get("before_s")
                try:
                    candidate_s = timed if timed is not None else optimiser.measure(
                        {r: m["code"] for r, m in state["modules"].items()}, res.executor_for, res.final_check)
                    reference_s = optimiser.measure(summary.reference_sources(res.final_check[0].reference),
                                                    res.executor_for, res.final_check)
                    runtime_record = RuntimeRecord(candidate_s=candidate_s, reference_s=reference_s,
                                                   workload=", ".join(w.id for w in res.final_check))
                except optimiser.MeasureError as exc:
                    notes.append(f"runtime not measured: {exc}")
        elif state.get("best"):
            checks.write_candidate(run_dir / "best", state["best"]["modules"])
            notes.append(f"the best candidate (round {state['best']['round']}) is in {run_dir / 'best'}")
        built = report_of({**state, "notes": [*state.get("notes", []), *notes]}, self.host, status=status,
                          package=package_path, runtime=runtime_record)
        self.host.release(self.host.config(state))
        write_report(run_dir, built)
        line = summary.one_line(built)
        _emit(runtime, event="report", status=status, path=str(run_dir / "report.md"), summary=line)
        out: dict[str, Any] = {"status": status, "report_path": str(run_dir / "report.md"), "summary": line,
                               "run_dir": str(run_dir), "notes": notes}
        if package_path:
            out["package_path"] = package_path
        return out

    def run_report(self, state: Any, *, status: str, package: str | None = None,
                   runtime: RuntimeRecord | None = None) -> Any:
        """The run's report from its state (the ``report`` node's, and the CLI's when a run is cancelled)."""
        return report_of(state, self.host, status=status, package=package, runtime=runtime)

    def build_builder(self) -> StateGraph[RunState, None, InputState, OutputState]:
        """The run's graph, not yet compiled."""
        builder = StateGraph(RunState, input_schema=InputState, output_schema=OutputState)
        builder.add_node("plan", self.plan)
        builder.add_node("coder", self.build_coder())
        builder.add_node("assemble", self.assemble)
        builder.add_node("verify", self.verify)
        builder.add_node("plan_repair", self.plan_repair)
        builder.add_node("optimise_prompt", self.optimise_prompt)
        builder.add_node("optimise_ask", self.optimise_ask, retry_policy=LLM_RETRY)
        builder.add_node("optimise_check", self.optimise_check)
        builder.add_node("report", self.report)
        builder.add_edge(START, "plan")
        builder.add_conditional_edges("plan", self.fan_out, ["coder", "assemble"])
        builder.add_edge("coder", "assemble")
        builder.add_conditional_edges("assemble", route_after_assemble)
        builder.add_conditional_edges("verify", self.route_after_verify)
        builder.add_conditional_edges("plan_repair", self.send_repair, ["coder"])
        builder.add_edge("optimise_prompt", "optimise_ask")
        builder.add_edge("optimise_ask", "optimise_check")
        builder.add_edge("optimise_check", "report")
        builder.add_edge("report", END)
        return builder


def report_of(state: Any, host: Host, *, status: str, package: str | None = None,
              runtime: RuntimeRecord | None = None) -> Any:
    """A run's report from its state and settings (also before the settings were resolved: a refused request)."""
    config = RunConfig.model_validate(state["config"]) if state.get("config") else None
    plan_ = state.get("plan")
    template = bool(plan_["template"]) if plan_ else host.chat_model is None
    found = resources.model_config(config) if config is not None and not template and host.chat_model is None \
        else None
    run_dir = Path(state.get("run_dir") or ".")
    return summary.build_report(
        state, run_id=state.get("run_id") or run_dir.name, status=status,
        mode="template" if template else "model", strategy=config.strategy if config else "icl_cot",
        granularity=config.granularity if config else "module",
        model=found.model if found else (type(host.chat_model).__name__ if host.chat_model is not None else None),
        base_url_host=found.base_url_host if found else None,
        temperature=found.temperature if found else None, seed=config.seed if config else None,
        budgets=config.budgets() if config else {}, package=package, runtime=runtime)


def build_builder(host: Host | None = None) -> StateGraph[RunState, None, InputState, OutputState]:
    """The run's graph bound to ``host`` (default: the environment's operator settings, remote callers)."""
    return Workflow(host or Host(OperatorSettings.from_env(remote=True))).build_builder()


def build_graph(host: Host | None = None) -> Any:
    """The whole run, compiled without a checkpointer (callers add one: ``graph.run`` uses SQLite)."""
    return build_builder(host).compile()


graph = build_graph()
"""The module-level compiled graph (what ``langgraph.json`` names): remote callers, the environment's settings."""
