"""Prompts of the coder, repairer and optimiser agents: one loader for every prompt file.

Prompt texts live in ``prompts/`` at the repository root as markdown with ``{{ name }}``
placeholders; :func:`render` fills them (only ``{{ identifier }}`` is a placeholder, so braces in code
survive).  The layout:

* ``system.md`` -- the model's role and the rules for candidate code;
* ``context.md`` -- the shared task context: the spec's module description, the architecture, the
  contract excerpt (:func:`contract_excerpt`, cut from ``reference_sim/contract.py`` by code), the
  domain notes (``notes/<role>.md``) and the required interface;
* ``coder/<granularity>/<strategy>.md`` and ``repairer/<granularity>/<strategy>.md`` -- the task
  framing per prompting strategy (``zero_shot``, ``icl``, ``cot``, ``icl_cot``) and granularity
  (``module``: the whole file; ``function``: one unit of a skeleton);
* ``optimiser.md``, ``retry.md``;
* ``examples/`` -- in-context examples: a toy vector-unit simulator (``examples/toy/*.py``, verified
  against its own literal reference by ``tests/unit/test_icl_examples.py``) with a task text and a
  worked reasoning per role.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from judge.harness import rules
from judge.harness.harness import FUNCTIONS, STAGES
from judge.harness.rules import parse
from reference_sim.errors import SimCoderError

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"
"""The folder of prompt files (``<repo>/prompts``)."""
CONTRACT_FILE = Path(__file__).resolve().parents[1] / "reference_sim" / "contract.py"
"""The contract the excerpts are cut from (candidates carry a verbatim copy of it)."""
TOY_DIR = PROMPTS_DIR / "examples" / "toy"
"""The toy simulator whose modules are the in-context examples."""

ROLES: tuple[str, ...] = STAGES
STRATEGIES: tuple[str, ...] = ("zero_shot", "icl", "cot", "icl_cot")
GRANULARITIES: tuple[str, ...] = ("module", "function")
HISTORY_IN_FULL = 2
"""Earlier attempts shown with their code; older ones show their diagnosis only."""
HISTORY_DIAGNOSES = 4
"""Older attempts whose diagnosis is still shown; beyond these only a count remains."""

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

_CONTRACT_NAMES: dict[str, tuple[str, ...]] = {
    "mapping": (
        "Dataflow", "OperandName", "FoldAxis", "OPERANDS", "NO_REQUEST",
        "Layer", "Hardware", "WindowOperand", "AffineOperand", "OperandMatrix", "OperandTiling", "LayerMapping",
    ),
    "network": (
        "Dataflow", "OperandName", "BandwidthMode", "FoldAxis", "OPERANDS", "NO_REQUEST",
        "Hardware", "OperandTiling", "LayerMapping", "OperandTiming", "DramPort", "NetworkSchedule",
        "fold_demand",
    ),
    "memory": (
        "Dataflow", "OperandName", "BandwidthMode", "FoldAxis", "OPERANDS", "READ_OPERANDS", "NO_REQUEST",
        "Layer", "Hardware", "WindowOperand", "AffineOperand", "OperandMatrix", "OperandTiling", "LayerMapping",
        "OperandTiming", "DramPort", "NetworkSchedule", "TraceSet", "MemoryResult",
        "fold_axis_size", "dense_block_shape", "dense_block_indices", "dense_block", "fold_demand",
        "layer_demand", "prefetch_order",
    ),
}
"""Per role, the contract's names its module consumes, produces or should call, in file order."""

_INTERFACES: dict[str, tuple[str, str]] = {
    "mapping": (
        "def map_layer(layer: Layer, hardware: Hardware) -> LayerMapping",
        "Map one layer onto the array for the hardware's dataflow.",
    ),
    "network": (
        "def schedule(mapping: LayerMapping, hardware: Hardware) -> NetworkSchedule",
        "Fold timing and DRAM ports for one mapped layer.",
    ),
    "memory": (
        "def simulate(\n"
        "    mapping: LayerMapping, network: NetworkSchedule, hardware: Hardware, *, traces: bool = False\n"
        ") -> MemoryResult",
        "Serve one layer's demand; traces (a TraceSet) only when ``traces`` is true, else None.",
    ),
}
_TOY_FILES = {"mapping": "mapping.py", "network": "network.py", "memory": "memory.py"}


class PromptError(SimCoderError):
    """A prompt cannot be built: a missing file, a placeholder without a value or a bad argument."""


def _load(path: Path) -> str:
    """Read one prompt file (the only place prompt files are read)."""
    return path.read_text(encoding="utf-8")


def _check(kind: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise PromptError(f"unknown {kind} {value!r}; allowed: {', '.join(allowed)}")


def render(name: str, /, **variables: str) -> str:
    """Read ``prompts/<name>`` and replace every ``{{ var }}`` with ``variables[var]``.

    Only ``{{ identifier }}`` is a placeholder; other braces are kept, and substituted values are not
    scanned again.  Extra variables are allowed.  Raises :class:`PromptError` naming the file when it
    does not exist (or lies outside ``prompts/``) and the file and variable when a placeholder has no
    value.
    """
    path = (PROMPTS_DIR / name).resolve()
    if not path.is_relative_to(PROMPTS_DIR.resolve()) or not path.is_file():
        raise PromptError(f"prompt file {name!r} not found under {PROMPTS_DIR}")
    text = _load(path)
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - variables.keys())
    if missing:
        raise PromptError(f"prompt file {name!r}: no value for placeholder(s) {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), text)


def _contract_segments(source: str) -> dict[str, str]:
    """Source text of each top-level name of the contract, with an attribute docstring that follows it."""
    tree = parse(source)
    lines = source.splitlines()
    segments: dict[str, str] = {}
    body = tree.body
    for i, node in enumerate(body):
        names: list[str] = []
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        if not names:
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        end = node.end_lineno or node.lineno
        following = body[i + 1] if i + 1 < len(body) else None
        if (isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)):
            end = following.end_lineno or end
        for name in names:
            segments[name] = "\n".join(lines[start - 1 : end])
    return segments


def contract_excerpt(role: str) -> str:
    """The parts of ``reference_sim/contract.py`` a ``role`` module needs, cut from the file's source.

    The module docstring, then (in file order) the type aliases, constants and dataclasses the module
    consumes and produces and the helper functions it should call.
    """
    _check("role", role, ROLES)
    source = _load(CONTRACT_FILE)
    docstring = ast.get_docstring(parse(source), clean=False) or ""
    segments = _contract_segments(source)
    absent = [name for name in _CONTRACT_NAMES[role] if name not in segments]
    if absent:
        raise PromptError(f"{CONTRACT_FILE}: the contract defines no {', '.join(absent)}")
    names = ", ".join(_CONTRACT_NAMES[role])
    parts = [f'"""{docstring}"""', f"# Available to import, e.g.: from .contract import {names}"]
    parts += [segments[name] for name in _CONTRACT_NAMES[role]]
    return "\n\n".join(parts)


def behaviour_notes(role: str) -> str:
    """The domain notes of a role (``prompts/notes/<role>.md``): formulas, fields and SCALE-Sim quirks."""
    _check("role", role, ROLES)
    return render(f"notes/{role}.md")


def interface(role: str) -> str:
    """The required interface of a role's module: the function, its signature and what it returns."""
    _check("role", role, ROLES)
    signature, doc = _INTERFACES[role]
    return (f"`{role}.py` must define `{FUNCTIONS[role]}` with exactly this signature:\n\n"
            f"```python\n{signature}:\n    \"\"\"{doc}\"\"\"\n```\n\n"
            "It is called once per layer; the verifier compares the returned object field by field.")


def examples(role: str, *, reasoning: bool = False) -> str:
    """The in-context example for a role: a toy simulator's task text, optionally its reasoning, and its module.

    The example is the same role's module of a different, toy simulator (``prompts/examples/toy``),
    never the reference's code.
    """
    _check("role", role, ROLES)
    toy_contract = _load(TOY_DIR / "contract.py").strip()
    code = _load(TOY_DIR / _TOY_FILES[role]).strip()
    parts = [f"### Worked example: the {role} module of a toy vector-unit simulator",
             render(f"examples/{role}.md", toy_contract=toy_contract).strip()]
    if reasoning:
        parts.append(render(f"examples/{role}_reasoning.md").strip())
    parts.append(f"#### Example answer (`{role}.py`)\n\n```python\n{code}\n```")
    return "\n\n".join(parts)


def _rules_text() -> tuple[str, str]:
    modules = ", ".join(f"`{m}`" for m in sorted(rules.ALLOWED_STDLIB - {"__future__"}))
    names = ", ".join(f"`{n}`" for n in sorted(rules.DENIED_NAMES))
    return modules, names


def _system() -> SystemMessage:
    modules, names = _rules_text()
    return SystemMessage(content=render("system.md", allowed_modules=modules, refused_names=names))


def _context(role: str, description: str, architecture: str) -> str:
    return render("context.md", role=role, description=description.strip(), architecture=architecture.strip(),
                  contract=contract_excerpt(role), notes=behaviour_notes(role).strip(), interface=interface(role))


def _unit_variables(granularity: str, unit_name: str | None, unit_stub: str | None,
                    skeleton: str | None) -> dict[str, str]:
    if granularity == "module":
        return {}
    given = {"unit_name": unit_name, "unit_stub": unit_stub, "skeleton": skeleton}
    absent = [k for k, v in given.items() if v is None]
    if absent:
        raise PromptError(f"granularity 'function' needs {', '.join(absent)}")
    return {k: str(v).strip() for k, v in given.items()}


def _validate(role: str, strategy: str, granularity: str) -> None:
    _check("role", role, ROLES)
    _check("strategy", strategy, STRATEGIES)
    _check("granularity", granularity, GRANULARITIES)


def _example_variables(role: str, strategy: str) -> dict[str, str]:
    if strategy not in ("icl", "icl_cot"):
        return {}
    return {"examples": examples(role, reasoning=strategy == "icl_cot")}


def coder_messages(
    *,
    role: str,
    strategy: str,
    granularity: str,
    description: str,
    architecture: str,
    unit_name: str | None = None,
    unit_stub: str | None = None,
    skeleton: str | None = None,
) -> list[BaseMessage]:
    """The coder's first prompt: ``[SystemMessage, HumanMessage]`` for one module or one unit of it.

    ``description`` is the spec's module description, ``architecture`` the architecture as YAML text.
    With ``granularity="function"``, ``unit_name``, ``unit_stub`` (its signature and docstring) and
    ``skeleton`` (every unit's signature and docstring) are required.
    """
    _validate(role, strategy, granularity)
    variables = {
        "role": role,
        "context": _context(role, description, architecture),
        **_unit_variables(granularity, unit_name, unit_stub, skeleton),
        **_example_variables(role, strategy),
    }
    return [_system(), HumanMessage(content=render(f"coder/{granularity}/{strategy}.md", **variables))]


def retry_message(error: str) -> HumanMessage:
    """Feedback after an unusable answer (no code, a syntax error, a missing function, a refused import...)."""
    return HumanMessage(content=render("retry.md", error=error.strip()))


def format_history(history: Sequence[tuple[str, str]]) -> str:
    """Earlier attempts, newest last: the last :data:`HISTORY_IN_FULL` with code and diagnosis, older ones bounded."""
    if not history:
        return "None: this is the first repair of this module."
    total = len(history)
    full_from = max(0, total - HISTORY_IN_FULL)
    brief_from = max(0, full_from - HISTORY_DIAGNOSES)
    parts: list[str] = []
    if brief_from:
        parts.append(f"({brief_from} older attempt(s) omitted.)")
    for number in range(brief_from, total):
        code, diagnosis = history[number]
        heading = f"### Attempt {number + 1} of {total}"
        if number < full_from:
            parts.append(f"{heading} (code omitted)\n\nDiagnosis:\n\n```text\n{diagnosis.strip()}\n```")
        else:
            parts.append(f"{heading}\n\n```python\n{code.strip()}\n```\n\nDiagnosis:\n\n```text\n"
                         f"{diagnosis.strip()}\n```")
    return "\n\n".join(parts)


def repair_messages(
    *,
    role: str,
    strategy: str,
    granularity: str,
    description: str,
    architecture: str,
    code: str,
    diagnosis: str,
    history: Sequence[tuple[str, str]],
    unit_name: str | None = None,
    unit_stub: str | None = None,
    skeleton: str | None = None,
) -> list[BaseMessage]:
    """The repairer's prompt: the coder's context plus the blamed code, the diagnosis and earlier attempts.

    ``code`` is the current module (or, with ``granularity="function"``, the current unit);
    ``history`` holds ``(code, diagnosis)`` of earlier attempts, newest last (see :func:`format_history`).
    """
    _validate(role, strategy, granularity)
    variables = {
        "role": role,
        "context": _context(role, description, architecture),
        "code": code.strip(),
        "diagnosis": diagnosis.strip(),
        "history": format_history(history),
        **_unit_variables(granularity, unit_name, unit_stub, skeleton),
        **_example_variables(role, strategy),
    }
    return [_system(), HumanMessage(content=render(f"repairer/{granularity}/{strategy}.md", **variables))]


def optimiser_messages(*, role: str, description: str, architecture: str, code: str,
                       profile: str) -> list[BaseMessage]:
    """The optimiser's prompt: a verified module and a run's profile; asks for a faster, identical module."""
    _check("role", role, ROLES)
    variables = {"role": role, "context": _context(role, description, architecture), "code": code.strip(),
                 "profile": profile.strip()}
    return [_system(), HumanMessage(content=render("optimiser.md", **variables))]


def bench_messages(*, strategy: str, description: str, signature: str, context: str, names: Sequence[str],
                   code: str | None = None, diagnosis: str | None = None) -> list[BaseMessage]:
    """A benchmark probe task's prompt (``prompts/bench/``): the task, then the strategy's way to answer,
    or with ``code`` and ``diagnosis`` the repair prompt."""
    _check("strategy", strategy, STRATEGIES)
    listed = ", ".join(f"`{n}`" for n in names)
    task = render("bench/task.md", description=description.strip(), signature=signature.strip(),
                  context=context.strip(), names=listed).strip()
    if code is not None:
        body = render("bench/repair.md", task=task, code=code.strip(), diagnosis=(diagnosis or "").strip(),
                      names=listed)
    else:
        example = render("bench/example.md").strip()
        if strategy == "icl_cot":
            example += "\n\n" + render("bench/example_reasoning.md").strip()
        body = render(f"bench/{strategy}.md", task=task, names=listed, example=example)
    return [_system(), HumanMessage(content=body)]
