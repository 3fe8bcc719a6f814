"""The feature coder's prompt: one feature module written on top of the run's verified modules.

``[system, human]`` like every prompt (:func:`agents.prompts.system_message`), the human message laid
out by ``prompts/feature/write.md`` with the blocks every feature shares first (the opening, then what
the package gives: the engine's functions, the contract's types, ``FeatureRun``), then the feature
(its description, parameters, report tables and the checks that judge it, each with its statement),
then how to answer (``answer.md``, or ``reasoning.md`` for the ``cot`` strategies).  The ``icl``
strategies add no worked example: there is no verified feature written in the package's form to show.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import BaseMessage, HumanMessage

import reference_sim
from agents.planner import FEATURE_INTERFACE
from agents.prompts import STRATEGIES, PromptError, contract_pieces, outline_of, render, system_message
from features.catalogue import Feature
from judge.harness import feature_api

ENGINE_FILE = Path(reference_sim.__file__).resolve().parent / "engine.py"
FEATURE_API_FILE = Path(feature_api.__file__).resolve()
ENGINE_NAMES = ("LayerResult", "simulate", "simulate_layer", "layer_result", "check_work", "layer_shape")
"""What of the package's engine a feature module is shown (and may use)."""
CONTRACT_NAMES = ("OperandName", "OPERANDS", "NO_REQUEST", "Layer", "Hardware", "TraceSet")
ORACLE_TEXT = (": your results and tables must equal an expected result computed exactly from the engine's own "
               "runs for the same setting.")
NO_ORACLE_TEXT = ": does not apply; no exact expected result exists for this feature, the properties judge it."


def module_file(name: str) -> str:
    """The file a feature's module is in the package (``feature_energy.py``)."""
    return f"feature_{name}.py"


def _api_block() -> str:
    engine = outline_of(ENGINE_FILE.read_text(encoding="utf-8"), ENGINE_NAMES)
    api = FEATURE_API_FILE.read_text(encoding="utf-8")
    return render("feature/api.md", engine=engine, contract=contract_pieces(CONTRACT_NAMES),
                  feature_api=outline_of(api, ("FeatureRun",), summary=False)).strip()


def _parameters(feature: Feature) -> str:
    rows = ["| parameter | type | range | neutral | what it is |", "|---|---|---|---|---|"]
    for p in feature.definition.parameters:
        rows.append(f"| `{p.name}` | {p.type} | {p.min:g} to {p.max:g} | {p.neutral:g} | {p.description or ''} |")
    return "\n".join(rows)


def _reports(feature: Feature) -> str:
    reports = feature.definition.reports
    if not reports:
        return "None: this feature changes the run's own figures and writes no table of its own."
    lines = [f"- `{r.file}`, in `FeatureRun.tables[{r.file!r}]`, one row per layer (a dict of column to "
             f"number) with the columns {', '.join(f'`{c}`' for c in r.columns)}." for r in reports]
    return "\n".join(lines)


def _checks(feature: Feature) -> str:
    registry = feature.registry()
    return "\n".join(f"- `{name}` ({registry[name].family}): {' '.join(registry[name].statement.split())}"
                     for name in feature.definition.checks)


def feature_messages(feature: Feature, strategy: str) -> list[BaseMessage]:
    """The coder's prompt for ``feature``: ``[SystemMessage, HumanMessage]``."""
    if strategy not in STRATEGIES:
        raise PromptError(f"unknown strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    definition = feature.definition
    block = render("feature/feature.md", name=definition.name, summary=definition.summary.strip(),
                   description=feature.description.strip(), parameters=_parameters(feature),
                   reports=_reports(feature), oracle=ORACLE_TEXT if definition.oracle else NO_ORACLE_TEXT,
                   checks=_checks(feature)).strip()
    answer = render("feature/reasoning.md" if strategy in ("cot", "icl_cot") else "feature/answer.md",
                    name=definition.name, signature=FEATURE_INTERFACE).strip()
    body = render("feature/write.md", opening=render("feature/opening.md").strip(), api=_api_block(),
                  feature=block, answer=answer)
    return [system_message(), HumanMessage(content=body.strip() + "\n")]
