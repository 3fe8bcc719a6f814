"""Prompts of the coder, repairer and optimiser agents: one loader for every prompt file.

Prompt texts live in ``prompts/`` at the repository root as markdown with ``{{ name }}``
placeholders; :func:`render` fills them (only ``{{ identifier }}`` is a placeholder, so braces in code
survive).  Every prompt is ``[system, human]``; the system message (``system.md``: the role, the rules)
is the same in all of them, and the human message puts the blocks a run's prompts share first, always
in the same order, so a server's prefix cache reads them once:

* the opening (``<coder|repairer>/<granularity>/opening.md``, never naming a unit);
* with ``icl``/``icl_cot``, the worked example (``shared/examples.md``): the toy simulator's module
  (``examples/``, verified against its own literal reference by ``tests/unit/test_icl_examples.py``)
  at ``module`` granularity, one toy unit (:func:`unit_example`) at ``function`` granularity;
* the module block (``shared/module.md``): the spec's description and the architecture;
* the material: for a module ``context.md`` (the contract excerpt, :func:`contract_excerpt`, the
  domain notes ``notes/<role>.md`` and the interface); for a unit ``shared/unit.md`` (the module
  header, then only what the unit needs, :func:`unit_focus`: its stub, its contract pieces, its notes
  sections, the stubs of the units it calls or that call it);
* a repair's evidence (``repairer/<granularity>/evidence.md``);
* how to answer (``answer.md``, ``reasoning.md`` or ``reasoning_as_example.md`` by strategy).

``<mode>/<granularity>/<strategy>.md`` lays the blocks out; ``optimiser.md``, ``retry.md`` and
``bench/`` (the benchmark's probe tasks) complete the set.  ``taskbench.prompt_sizes`` measures them all.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agents import skeleton
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

_ALSO_SHOWN: dict[str, tuple[str, ...]] = {
    "mapping": (),
    "network": ("NO_REQUEST", "fold_demand"),
    "memory": ("READ_OPERANDS", "fold_demand", "num_folds", "fold_order"),
}
"""Per role, contract names and class members a module's prompt shows beyond those the literal reference
module uses: what its notes point at (``fold_demand`` defines the network's timing and serves the memory
fold by fold, over ``mapping.num_folds`` folds in ``mapping.fold_order``)."""

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
_TOY_UNIT = ("memory", "_ready_cycles")
"""The toy unit every ``function`` granularity example shows (the shortest: at that granularity the example
shows the form of an answer, one unit with its imports)."""


class PromptError(SimCoderError):
    """A prompt cannot be built: a missing file, a placeholder without a value or a bad argument."""


@dataclass(frozen=True)
class UnitFocus:
    """What a ``function`` granularity prompt carries about its unit, and nothing of the other units' bodies."""

    name: str
    stub: str
    """Its signature and docstring (``...`` bodies)."""
    header: str
    """The module's header (imports, constants; not its docstring), already written above every unit."""
    neighbours: str
    """The stubs of the other units it calls or that call it, in module order (``""``: none)."""
    uses: frozenset[str]
    """The names its code refers to: they choose the contract pieces it is shown."""
    attributes: frozenset[str] = frozenset()
    """The attributes its code reads (``x.ports`` gives ``ports``): they bring in the contract classes
    that define them (see :func:`contract_names`)."""
    calls: frozenset[str] = frozenset()
    """The names its code calls (a contract class it constructs is shown with its fields)."""


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


def _span(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start - 1 : end])


def _is_string(node: ast.stmt | None) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _docstring(node: ast.stmt, lines: list[str], summary: bool) -> str:
    """A docstring's source, with ``summary`` cut after its first paragraph (and closed again)."""
    text = _span(lines, node.lineno, node.end_lineno or node.lineno)
    head, blank, _ = text.partition("\n\n")
    if not summary or not blank:
        return text
    indent = head[: len(head) - len(head.lstrip())]
    return f'{head}\n{indent}"""'


def _function_outline(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str], indent: str,
                      summary: bool = False) -> str:
    """Signature and docstring (its first paragraph with ``summary``); the body itself when it is one
    ``return`` line (but with ``summary``), else ``...``."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    body = node.body[1:] if _is_string(node.body[0]) else node.body
    head_end = node.body[0].lineno - 1 if node.body[0].lineno > node.lineno else node.lineno
    parts = [_span(lines, first, head_end)]
    if _is_string(node.body[0]):
        doc = node.body[0]
        parts.append(_docstring(doc, lines, summary))
    short = (not summary and len(body) == 1 and isinstance(body[0], ast.Return)
             and body[0].lineno == body[0].end_lineno)
    parts.append(_span(lines, body[0].lineno, body[0].lineno) if short else f"{indent}    ...")
    return "\n".join(parts)


def _assigned(item: ast.stmt) -> set[str]:
    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
        return {item.target.id}
    if isinstance(item, ast.Assign):
        return {t.id for t in item.targets if isinstance(t, ast.Name)}
    return set()


def _class_outline(node: ast.ClassDef, lines: list[str], methods: Collection[str] | None = None,
                   fields: Collection[str] | None = None, summary: bool = False) -> str:
    """The class line, docstring (its first paragraph with ``summary``), fields (with their attribute
    docstrings) and the outlines of its public methods and ``__init__``; given ``methods`` and ``fields``,
    only those."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    parts = [_span(lines, first, node.lineno)]
    if _is_string(node.body[0]):
        doc = node.body[0]
        parts.append(_docstring(doc, lines, summary))
    kept = False
    left_out = False
    for item in node.body[1:] if _is_string(node.body[0]) else node.body:
        if _is_string(item) and kept and not summary:
            parts.append(_span(lines, item.lineno, item.end_lineno or item.lineno))
        kept = False
        if isinstance(item, ast.Assign | ast.AnnAssign):
            kept = fields is None or bool(_assigned(item) & set(fields))
            if kept:
                parts.append(_span(lines, item.lineno, item.end_lineno or item.lineno))
            left_out = left_out or not kept
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                item.name == "__init__" or not item.name.startswith("_")):
            if methods is None or item.name in methods:
                parts.append("\n" + _function_outline(item, lines, "    ", summary))
            elif fields is not None:
                left_out = True
    if left_out:
        parts.append("    ...  # more members, not used here")
    return "\n".join(parts)


def _class_brief(node: ast.ClassDef, lines: list[str]) -> str:
    """The class line and docstring, then ``...``."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    parts = [_span(lines, first, node.lineno)]
    if _is_string(node.body[0]):
        parts.append(_span(lines, node.body[0].lineno, node.body[0].end_lineno or node.body[0].lineno))
    return "\n".join(parts) + "\n    ..."


def outline(source: str, keep: Collection[str] = (), *, summary: bool = False) -> str:
    """``source`` with every top-level function and class (but those in ``keep``) cut to its outline:
    signature, docstring (its first paragraph with ``summary``) and fields; a body only when it is one
    ``return`` line; private methods (but ``__init__``) left out."""
    lines = source.splitlines()
    parts: list[str] = []
    for node in parse(source).body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name not in keep:
            parts.append(_function_outline(node, lines, "", summary))
        elif isinstance(node, ast.ClassDef) and node.name not in keep:
            parts.append(_class_outline(node, lines, summary=summary))
        else:
            parts.append(_span(lines, start, node.end_lineno or node.lineno))
    return "\n\n".join(parts)


def outline_of(source: str, names: Sequence[str], *, summary: bool = True) -> str:
    """The outlines of the top-level functions and classes ``names`` of ``source``, in the order given
    (:func:`outline`'s form; a missing name is a :class:`PromptError`)."""
    lines = source.splitlines()
    found = {node.name: node for node in parse(source).body
             if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    missing = [n for n in names if n not in found]
    if missing:
        raise PromptError(f"no top-level {', '.join(missing)} to outline")
    return "\n\n".join(_class_outline(node, lines, summary=summary) if isinstance(node, ast.ClassDef)
                        else _function_outline(node, lines, "", summary)
                        for node in (found[n] for n in names))


def contract_pieces(names: Collection[str]) -> str:
    """The contract's pieces named ``names`` (classes in outline, constants and aliases whole), in contract
    order."""
    contract = _contract()
    return "\n\n".join(text for name, text in contract.segments.items() if name in names)


@dataclass(frozen=True)
class _Contract:
    """The contract cut up: per top-level name its outline (an attribute docstring that follows an assignment
    included) and the contract names its fields or signature refer to; per class its members and nodes."""

    segments: dict[str, str]
    refers: dict[str, frozenset[str]]
    members: dict[str, frozenset[str]]
    briefs: dict[str, str]
    """Per class: its class line and docstring only."""
    nodes: dict[str, ast.ClassDef]
    lines: list[str]

    def filtered(self, name: str, methods: Collection[str], fields: Collection[str] | None,
                 summary: bool = False) -> str:
        """A class's outline with only the ``methods`` (and properties) and, given, the ``fields`` named."""
        return _class_outline(self.nodes[name], self.lines, methods, fields, summary)


def _members(node: ast.ClassDef) -> frozenset[str]:
    fields = {i.target.id for i in node.body if isinstance(i, ast.AnnAssign) and isinstance(i.target, ast.Name)}
    methods = {i.name for i in node.body if isinstance(i, ast.FunctionDef) and not i.name.startswith("_")}
    return frozenset(fields | methods)


@functools.cache
def _contract() -> _Contract:
    source = _load(CONTRACT_FILE)
    tree = parse(source)
    lines = source.splitlines()
    segments: dict[str, str] = {}
    members: dict[str, frozenset[str]] = {}
    briefs: dict[str, str] = {}
    nodes: dict[str, ast.ClassDef] = {}
    body = tree.body
    for i, node in enumerate(body):
        names: list[str] = []
        text = ""
        if isinstance(node, ast.ClassDef):
            names, text = [node.name], _class_outline(node, lines)
            members[node.name] = _members(node)
            briefs[node.name] = _class_brief(node, lines)
            nodes[node.name] = node
        elif isinstance(node, ast.FunctionDef):
            names, text = [node.name], _function_outline(node, lines, "")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            following = body[i + 1] if i + 1 < len(body) else None
            end = (following.end_lineno if following is not None and _is_string(following) else None) or node.end_lineno
            text = _span(lines, node.lineno, end or node.lineno)
        for name in names:
            segments[name] = text
    typed = {name: _class_outline(node, lines, methods=()) for name, node in nodes.items()}
    refers = {name: frozenset(n.id for n in ast.walk(parse(typed.get(name, text))) if isinstance(n, ast.Name))
              & segments.keys() - {name} for name, text in segments.items()}
    return _Contract(segments, refers, members, briefs, nodes, lines)


def contract_names(uses: Collection[str], attributes: Collection[str] = ()) -> tuple[str, ...]:
    """The contract pieces a unit whose code refers to the names ``uses`` and reads the ``attributes`` is
    shown, in contract order.

    The public names it refers to, and one level down the names their outlines refer to (a class's field
    types, a function's signature types): a type alias or constant always, a class only when the code
    reads one of its fields or methods (``network.ports[name].words_per_cycle`` brings ``DramPort``),
    a function never.
    """
    contract = _contract()
    direct = {n for n in uses if n in contract.segments and not n.startswith("_")}
    below = {r for n in direct for r in contract.refers[n] if not r.startswith("_")}
    wanted = direct | {r for r in below if not contract.segments[r].startswith("def ")
                       and (r not in contract.members or contract.members[r] & set(attributes))}
    return tuple(n for n in contract.segments if n in wanted)


def contract_excerpt(role: str, unit: UnitFocus | None = None) -> str:
    """The parts of ``reference_sim/contract.py`` a ``role`` module (or one ``unit`` of it) needs, cut from
    the file by code, in file order.

    The pieces are those the reference's code refers to (:func:`contract_names`; for a module, the literal
    reference module's, plus what its notes point at), each in outline:
    signature, docstring and fields, a body only when it is one line, of a class's methods only those the
    code uses, and of a class it reads but does not construct only the fields it reads.  A unit is shown a
    class it only names (in a signature, or passes on) by its class line and docstring
    (:func:`brief_classes`), and docstrings' first paragraphs only.
    """
    _check("role", role, ROLES)
    contract = _contract()
    focus = unit if unit is not None else _module_focus(role)
    chosen = contract_names(focus.uses, focus.attributes)
    brief = brief_classes(focus) if unit is not None else frozenset()
    parts = [] if unit is not None else [f"# Available to import, e.g.: from .contract import {', '.join(chosen)}"]
    for name in chosen:
        if name in brief:
            parts.append(contract.briefs[name])
        elif name in contract.nodes:
            read = contract.members[name] if name in focus.calls else focus.attributes
            parts.append(contract.filtered(name, focus.attributes, read, summary=unit is not None))
        else:
            parts.append(contract.segments[name])
    return "\n\n".join(parts)


def brief_classes(unit: UnitFocus) -> frozenset[str]:
    """The contract classes ``unit`` only names (in a signature, or passes on): it neither constructs them
    nor reads their fields, so their fields are left out of its prompt."""
    contract = _contract()
    return frozenset(n for n in unit.uses if n in contract.members and n not in unit.calls
                     and not contract.members[n] & unit.attributes)


_NOTE_UNITS = re.compile(r"^<!-- units: ([^>]*) -->\n", re.MULTILINE)


def _note_sections(role: str) -> list[tuple[str, frozenset[str] | None]]:
    """The notes of ``role`` cut at ``###`` headings: each section's text and the units it is for
    (``<!-- units: a, b -->`` under its heading; ``<!-- units: none -->``: the module prompts only;
    no tag, ``None``: every unit)."""
    text = render(f"notes/{role}.md")
    sections: list[tuple[str, frozenset[str] | None]] = []
    for part in re.split(r"\n(?=### )", text.strip()):
        tag = _NOTE_UNITS.search(part)
        units = frozenset(u.strip() for u in tag.group(1).split(",") if u.strip() not in ("", "none")) if tag else None
        sections.append((_NOTE_UNITS.sub("", part).strip(), units))
    return sections


def note_units(role: str) -> dict[str, frozenset[str] | None]:
    """Per ``###`` section heading of ``role``'s notes, the units it is shown to (``None``: every unit)."""
    return {text.splitlines()[0]: units for text, units in _note_sections(role)[1:]}


def behaviour_notes(role: str, unit: str | None = None) -> str:
    """The domain notes of a role (``prompts/notes/<role>.md``): formulas, fields and SCALE-Sim quirks.

    With ``unit``: the opening paragraphs and the sections tagged for that unit (or for every unit).
    """
    _check("role", role, ROLES)
    sections = _note_sections(role)
    kept = [text for i, (text, units) in enumerate(sections)
            if unit is None or i == 0 or units is None or unit in units]
    return "\n\n".join(kept)


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
    code = _load(TOY_DIR / _TOY_FILES[role]).strip()
    toy_contract = _toy_contract(code)
    parts = [f"### Worked example: the {role} module of a toy vector-unit simulator",
             render(f"examples/{role}.md", toy_contract=toy_contract).strip()]
    if reasoning:
        parts.append(render(f"examples/{role}_reasoning.md").strip())
    parts.append(f"#### Example answer (`{role}.py`)\n\n```python\n{code}\n```")
    return "\n\n".join(parts)


def _toy_contract(module: str) -> str:
    """The toy contract as a toy ``module``'s example shows it: its imports and the names the module
    imports from it (an attribute docstring kept with its assignment), without its docstring."""
    wanted = {alias.name for node in parse(module).body if isinstance(node, ast.ImportFrom)
              and node.module == "contract" for alias in node.names}
    parts: list[str] = []
    keep = False
    for node, text in skeleton.top_level(_without_docstring(_load(TOY_DIR / "contract.py"))):
        if _is_string(node):
            if keep:
                parts[-1] += "\n" + text
            continue
        named = {getattr(node, "name", "")} | _assigned(node)
        keep = isinstance(node, ast.Import | ast.ImportFrom) or bool(named & wanted)
        if keep:
            parts.append(text)
    return "\n\n".join(parts)


def _without_docstring(source: str) -> str:
    """``source`` without its module docstring."""
    body = parse(source).body
    if body and _is_string(body[0]):
        return "\n".join(source.splitlines()[body[0].end_lineno or 0 :]).strip()
    return source.strip()


def _imports_of(node: ast.Import | ast.ImportFrom, used: Collection[str]) -> ast.Import | ast.ImportFrom:
    """The import ``node`` cut to the names in ``used``."""
    names = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
    if isinstance(node, ast.Import):
        return ast.Import(names=names)
    return ast.ImportFrom(module=node.module, names=names, level=node.level)


def unit_example(*, reasoning: bool = False) -> str:
    """The in-context example at ``function`` granularity: one unit of a toy module (:data:`_TOY_UNIT`),
    answered with its imports and code; optionally its worked reasoning before the answer.  Cut from
    ``prompts/examples/toy`` by code."""
    role, name = _TOY_UNIT
    source = _load(TOY_DIR / _TOY_FILES[role])
    code = skeleton.unit_source(source, name)
    used = _names_in(code)
    imports = [ast.unparse(_imports_of(node, used)) for node, _ in skeleton.top_level(source)
               if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "module", "") != "__future__"
               and _imports_of(node, used).names]
    return render("examples/unit.md", role=role, name=name,
                  reasoning=("\n\n" + render(f"examples/{role}_unit_reasoning.md").strip()) if reasoning else "",
                  answer="\n".join(imports) + "\n\n\n" + code).strip()


def _rules_text() -> tuple[str, str]:
    modules = ", ".join(f"`{m}`" for m in sorted(rules.ALLOWED_STDLIB - {"__future__"}))
    names = ", ".join(f"`{n}`" for n in sorted(rules.DENIED_NAMES))
    return modules, names


def system_message() -> SystemMessage:
    """The one system message of every prompt (identical in all, so a server caches it once)."""
    modules, names = _rules_text()
    return SystemMessage(content=render("system.md", allowed_modules=modules, refused_names=names))


def _validate(role: str, strategy: str, granularity: str) -> None:
    _check("role", role, ROLES)
    _check("strategy", strategy, STRATEGIES)
    _check("granularity", granularity, GRANULARITIES)


def _module(role: str, description: str, architecture: str) -> str:
    """The module block every prompt of ``role`` shares, right after the opening."""
    return render("shared/module.md", role=role, description=description.strip(),
                  architecture=architecture.strip()).strip()


def _material(role: str, granularity: str, unit: UnitFocus | None, *, repair: bool) -> str:
    """After the module block: the module's contract, notes and interface, or the unit's own pieces."""
    if granularity == "module":
        return render("context.md", contract=contract_excerpt(role), notes=behaviour_notes(role).strip(),
                      interface=interface(role)).strip()
    if unit is None:
        raise PromptError("granularity 'function' needs the unit (a UnitFocus)")
    heading = ("## The unit to correct: `{name}`\n\nWrite a corrected version of the unit `{name}` only."
               if repair else "## The unit to write: `{name}`").format(name=unit.name)
    neighbours = (render("shared/neighbours.md", neighbours=unit.neighbours.strip()).strip()
                  if unit.neighbours.strip() else "")
    return render("shared/unit.md", header=unit.header.strip(), unit_heading=heading, unit_stub=unit.stub.strip(),
                  contract=contract_excerpt(role, unit),
                  notes=behaviour_notes(role, unit.name).strip(), neighbours=neighbours).strip()


def _opening(mode_dir: str, granularity: str, role: str, strategy: str, material: str,
             extra: dict[str, str]) -> list[BaseMessage]:
    """``[system, human]``: the human message laid out by ``<mode_dir>/<granularity>/<strategy>.md``:
    opening, (examples), module block, material, (evidence), how to answer; shared blocks first."""
    folder = f"{mode_dir}/{granularity}"
    examples_block = ""
    if strategy in ("icl", "icl_cot"):
        with_reasoning = strategy == "icl_cot"
        shown = (unit_example(reasoning=with_reasoning) if granularity == "function"
                 else examples(role, reasoning=with_reasoning))
        examples_block = render("shared/examples.md", examples=shown).strip()
    unit_name = extra.get("unit_name", "")
    variables = {"opening": render(f"{folder}/opening.md", role=role).strip(), "examples": examples_block,
                 "material": material, **extra}
    answer = {"zero_shot": "answer", "icl": "answer", "cot": "reasoning", "icl_cot": "reasoning_as_example"}[strategy]
    variables[answer] = render(f"{folder}/{answer}.md", role=role, unit_name=unit_name).strip()
    return [system_message(), HumanMessage(content=render(f"{folder}/{strategy}.md", **variables).strip() + "\n")]


def coder_messages(
    *,
    role: str,
    strategy: str,
    granularity: str,
    description: str,
    architecture: str,
    unit: UnitFocus | None = None,
) -> list[BaseMessage]:
    """The coder's first prompt: ``[SystemMessage, HumanMessage]`` for one module or one unit of it.

    ``description`` is the spec's module description, ``architecture`` the architecture as YAML text.
    With ``granularity="function"`` the ``unit`` (see :func:`unit_focus`) is required.
    """
    _validate(role, strategy, granularity)
    material = _module(role, description, architecture) + "\n\n" + _material(role, granularity, unit, repair=False)
    return _opening("coder", granularity, role, strategy, material, {"unit_name": unit.name if unit else ""})


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
    unit: UnitFocus | None = None,
) -> list[BaseMessage]:
    """The repairer's prompt: the coder's material plus the blamed code, the diagnosis and earlier attempts.

    ``code`` is the current module (or, with ``granularity="function"``, the current ``unit``);
    ``history`` holds ``(code, diagnosis)`` of earlier attempts, newest last (see :func:`format_history`).
    """
    _validate(role, strategy, granularity)
    folder = f"repairer/{granularity}"
    evidence = render(f"{folder}/evidence.md", role=role, unit_name=unit.name if unit else "", code=code.strip(),
                      diagnosis=diagnosis.strip(), history=format_history(history)).strip()
    material = "\n\n".join((_module(role, description, architecture),
                            _material(role, granularity, unit, repair=True), evidence))
    return _opening("repairer", granularity, role, strategy, material, {"unit_name": unit.name if unit else ""})


def optimiser_messages(*, role: str, description: str, architecture: str, code: str,
                       profile: str) -> list[BaseMessage]:
    """The optimiser's prompt: a verified module and a run's profile; asks for a faster, identical module."""
    _check("role", role, ROLES)
    context = _module(role, description, architecture) + "\n\n" + _material(role, "module", None, repair=False)
    variables = {"role": role, "context": context, "code": code.strip(), "profile": profile.strip()}
    return [system_message(), HumanMessage(content=render("optimiser.md", **variables))]


def bench_messages(*, strategy: str, description: str, signature: str, context: str, names: Sequence[str],
                   code: str | None = None, diagnosis: str | None = None) -> list[BaseMessage]:
    """A benchmark probe task's prompt (``prompts/bench/``): the task, then the strategy's way to answer,
    or with ``code`` and ``diagnosis`` the repair prompt.  The module the answer goes into is shown in
    outline (:func:`outline`), without its docstring: every other unit's signature and docstring, not its
    body."""
    _check("strategy", strategy, STRATEGIES)
    listed = ", ".join(f"`{n}`" for n in names)
    try:
        shown = _without_docstring(outline(context, keep=names, summary=True))
    except SyntaxError:
        shown = context
    task = render("bench/task.md", description=description.strip(), signature=signature.strip(),
                  context=shown.strip(), names=listed).strip()
    if code is not None:
        body = render("bench/repair.md", task=task, code=code.strip(), diagnosis=(diagnosis or "").strip(),
                      names=listed)
    else:
        example = render("bench/example.md").strip()
        if strategy == "icl_cot":
            example += "\n\n" + render("bench/example_reasoning.md").strip()
        body = render(f"bench/{strategy}.md", task=task, names=listed, example=example)
    return [system_message(), HumanMessage(content=body)]


def _names_in(code: str) -> frozenset[str]:
    return frozenset(n.id for n in ast.walk(parse(code)) if isinstance(n, ast.Name))


def _attributes_in(code: str) -> frozenset[str]:
    return frozenset(n.attr for n in ast.walk(parse(code)) if isinstance(n, ast.Attribute))


def _compact_header(header: str) -> str:
    """A module header as a unit's prompt shows it: no docstring, one line per statement, imports
    on one line each."""
    return "\n".join(ast.unparse(node) if isinstance(node, ast.Import | ast.ImportFrom) else text
                     for node, text in skeleton.top_level(_without_docstring(header)))


def _code_focus(name: str, code: str) -> UnitFocus:
    """The names, attributes and calls of ``code`` (the rest of the focus left empty)."""
    tree = parse(code)
    calls = frozenset(n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name))
    return UnitFocus(name=name, stub="", header="", neighbours="", uses=_names_in(code),
                     attributes=_attributes_in(code), calls=calls)


@functools.cache
def _module_focus(role: str) -> UnitFocus:
    """What a whole ``role`` module uses: the literal reference module's names, and :data:`_ALSO_SHOWN`."""
    sk = skeleton.skeleton(role)
    focus = _code_focus(role, "\n\n".join([sk.header, *(u.reference for u in sk.units)]))
    also = set(_ALSO_SHOWN[role])
    return replace(focus, uses=focus.uses | also, attributes=focus.attributes | also)


def unit_focus(role: str, name: str) -> UnitFocus:
    """What the prompt for unit ``name`` of ``role``'s skeleton carries: its stub, the module header, the
    stubs of the units it calls or that call it, and the names its reference code refers to."""
    sk = skeleton.skeleton(role)
    target = sk.unit(name)
    uses = _names_in(target.reference) | _names_in(target.stub)
    neighbours = [u.stub for u in sk.units
                  if u.name != name and (u.name in uses or name in _names_in(u.reference))]
    code = _code_focus(name, target.reference)
    return replace(code, stub=target.stub, header=_compact_header(sk.header),
                   neighbours="\n\n\n".join(outline(stub) for stub in neighbours), uses=uses)
