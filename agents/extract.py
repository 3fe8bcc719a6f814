"""The Python code in a model's answer: fenced blocks, reasoning around them, ``<think>`` blocks.

:func:`extract_code` finds the code that defines the names a module must expose and checks that it
parses (it never runs anything).  When it cannot, :class:`ExtractionError` says so in words meant for
the model: what was wrong with the answer and how to answer instead.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from judge.harness.rules import parse
from reference_sim.errors import SimCoderError

PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3", "ipython", "pycon"})
"""Fence info strings (first word, lower case) taken as Python; other languages' blocks are skipped."""

_HOW = "Answer with the complete module in a single ```python fenced code block."
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_OPEN_THINK = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
_CLOSE_THINK = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_TRAILING_FENCE = re.compile(r"^.*[^`\s][ \t]*(?P<fence>`{3,})(?P<info>[A-Za-z0-9]+)[ \t]*$")
"""A fence opened at the end of a line of prose (``... in one ```python``: small models echo a prompt's heading)."""
_CODE_START = re.compile(r"^\s*(?:def |class |import |from \S+ import |async def |@\w)", re.MULTILINE)


class ExtractionError(SimCoderError, ValueError):
    """The answer holds no usable code; the message is written to the model (what was wrong, what to do).

    ``missing`` names the required top-level names the code lacked (empty for other problems).
    """

    def __init__(self, message: str, *, missing: Sequence[str] = ()):
        self.missing = tuple(missing)
        super().__init__(message)


@dataclass(frozen=True)
class _Block:
    code: str
    number: int
    """1-based position among the Python blocks of the answer."""


def top_level_names(source: str) -> set[str]:
    """Names the module defines at top level: ``def``, ``class`` and assignments (also under top-level
    ``if``/``try``/``with``).  Imports do not count.  Raises :class:`SyntaxError` when it does not parse."""
    names: set[str] = set()
    _collect(parse(source).body, names)
    return names


def _collect(body: list[ast.stmt], names: set[str]) -> None:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                _targets(target, names)
        elif isinstance(node, ast.AnnAssign):
            _targets(node.target, names)
        elif isinstance(node, ast.If):
            _collect(node.body, names)
            _collect(node.orelse, names)
        elif isinstance(node, ast.Try):
            _collect(node.body, names)
            for handler in node.handlers:
                _collect(handler.body, names)
            _collect(node.orelse, names)
            _collect(node.finalbody, names)
        elif isinstance(node, ast.With):
            _collect(node.body, names)


def _targets(target: ast.expr, names: set[str]) -> None:
    if isinstance(target, ast.Name):
        names.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            _targets(element, names)
    elif isinstance(target, ast.Starred):
        _targets(target.value, names)


def _strip_reasoning(text: str) -> str:
    text = _THINK.sub("", text)
    closes = list(_CLOSE_THINK.finditer(text))
    if closes:  # reasoning whose opening tag the server dropped: everything before the last closing tag
        text = text[closes[-1].end():]
    opening = _OPEN_THINK.search(text)
    if opening:  # reasoning never closed (the answer was cut off): nothing after it is the answer
        text = text[:opening.start()]
    return text


def _blocks(text: str) -> tuple[list[_Block], int]:
    """The Python fenced blocks of ``text`` in order, and the number of fenced blocks of any language."""
    found: list[_Block] = []
    fenced = 0
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i]) or _python_fence_after_prose(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        info = opening["info"].strip().split()
        tag = info[0].lower().lstrip("{.").rstrip("}") if info else ""
        body: list[str] = []
        i += 1
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence) and not closing[
                    "info"].strip():
                break
            body.append(lines[i])
            i += 1
        i += 1
        fenced += 1
        if tag in PYTHON_TAGS:
            code = textwrap.dedent("\n".join(body)).strip("\n")
            if code.strip():
                found.append(_Block(code + "\n", len(found) + 1))
    return found, fenced


def _python_fence_after_prose(line: str) -> re.Match[str] | None:
    found = _TRAILING_FENCE.match(line)
    return found if found and found["info"].lower() in PYTHON_TAGS else None


def _parses(code: str) -> set[str] | None:
    try:
        return top_level_names(code)
    except (SyntaxError, ValueError):
        return None


_NO_BODY = re.compile(r"expected an indented block after function definition on line (\d+)")
_DEF_NAME = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)")


def _syntax_message(code: str, where: str) -> str | None:
    try:
        parse(code)
    except SyntaxError as exc:
        line = exc.lineno or 0
        text = (exc.text or "").strip()
        shown = f" (`{text}`)" if text else ""
        empty = _NO_BODY.search(exc.msg)
        if empty:
            lines = code.splitlines()
            start = int(empty.group(1))
            name = _DEF_NAME.match(lines[start - 1]) if 0 < start <= len(lines) else None
            if name:
                return (f"The Python code {where} does not parse: function `{name.group(1)}` (line {start}) has no "
                        f"body, only comments{shown}: a placeholder is not an answer. Write its whole body. {_HOW}")
        return (f"The Python code {where} does not parse: line {line}: {exc.msg}{shown}. "
                f"Fix the syntax error. {_HOW}")
    except ValueError as exc:
        return f"The Python code {where} cannot be parsed: {exc}. {_HOW}"
    return None


def _missing_message(missing: list[str], found: set[str], where: str, provided: Collection[str] = ()) -> str:
    listed = ", ".join(f"`{name}`" for name in missing)
    have = ", ".join(sorted(found)) or "nothing"
    copied = sorted(found & set(provided))
    one = len(copied) == 1
    hint = (f" {', '.join(f'`{name}`' for name in copied)} {'is' if one else 'are'} given to your code (the "
            f"module's imports, the contract): "
            f"use {'it' if one else 'them'} as given, do not copy {'its definition' if one else 'their definitions'}."
            ) if copied else ""
    return (f"The Python code {where} does not define {listed} at top level (it defines: {have}). "
            f"Define each of them as a top-level def, class or assignment, not only in an earlier draft.{hint} {_HOW}")


def extract_code(answer: str, *, required: Sequence[str], provided: Collection[str] = ()) -> str:
    """The Python code in ``answer`` that defines every name in ``required`` at top level.

    ``provided``: names the code will find already defined (a unit's module header imports them); an
    earlier block is never taken for defining one of them, and an answer that only copies them is told so.

    ``<think>`` blocks are ignored, and so are fenced blocks tagged with another language.  Of the
    ``python``/``py``/untagged fenced blocks, the last one that parses and defines every required name
    is chosen; else the blocks that parse, joined in order, when together they define them.  An answer
    without fences is taken whole when it parses and defines the names.  Never executes anything.
    Raises :class:`ExtractionError` (its message is for the model) when none of this works.
    """
    text = _strip_reasoning(answer.replace("\r\n", "\n").replace("\r", "\n"))
    blocks, fenced = _blocks(text)
    wanted = list(dict.fromkeys(required))
    if not blocks:
        return _unfenced(text, wanted, fenced, provided)
    parsed = [(block, _parses(block.code)) for block in blocks]
    for index in range(len(parsed) - 1, -1, -1):
        block, names = parsed[index]
        if names is not None and all(name in names for name in wanted):
            return _no_placeholders(_with_helpers(block, [b for b, n in parsed[:index] if n is not None], provided),
                                    wanted)
    good = [block for block, names in parsed if names is not None]
    joined = "\n\n\n".join(block.code.rstrip("\n") for block in good) + "\n"
    if len(good) > 1:
        names = _parses(joined)
        if names is not None and all(name in names for name in wanted):
            return _no_placeholders(joined, wanted)
    broken = [block for block, names in parsed if names is None and _CODE_START.search(block.code)]
    if broken:
        where = "in your answer" if len(blocks) == 1 else f"in code block {broken[-1].number} of your answer"
        message = _syntax_message(broken[-1].code, where)
        if message is not None:
            raise ExtractionError(message)
    if not good:
        raise ExtractionError(f"No Python code block found in your answer: its fenced blocks hold no Python code. "
                              f"{_HOW}")
    found = _parses(joined) or set().union(*(names for _, names in parsed if names is not None))
    missing = [name for name in wanted if name not in found]
    where = "in your answer" if len(blocks) == 1 else "in your answer's code blocks"
    raise ExtractionError(_missing_message(missing, found, where, provided), missing=missing)


def _no_placeholders(code: str, wanted: Sequence[str]) -> str:
    """``code``, unless a wanted function's body is only ``...`` (and a docstring): the stub handed back."""
    stubs = [node.name for node in parse(code).body
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in wanted and _is_stub(node)]
    if stubs:
        listed = ", ".join(f"`{name}`" for name in stubs)
        raise ExtractionError(f"The Python code in your answer leaves {listed} as a placeholder (its body is only "
                              f"`...`): a placeholder is not an answer. Write the whole body. "
                              f"{_HOW}")
    return code


def _is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = node.body[1:] if ast.get_docstring(node, clean=False) is not None else node.body
    return all(isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt.value.value is Ellipsis
               for stmt in body)


def _free_names(code: str) -> set[str]:
    """Names ``code`` reads but binds nowhere (and that are not built-ins)."""
    tree = parse(code)
    loaded: set[str] = set()
    bound: set[str] = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).partition(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound


def _with_helpers(chosen: _Block, earlier: list[_Block], provided: Collection[str]) -> str:
    """``chosen``, preceded by the earlier blocks that define names it uses but does not define itself.

    Models often put a helper in one block and the function that calls it in the next; taking the last
    block alone would lose the helper.
    """
    needed = _free_names(chosen.code) - set(provided)
    taken: list[_Block] = []
    for block in reversed(earlier):
        provides = top_level_names(block.code) & needed
        if provides:
            taken.append(block)
            needed = (needed - provides) | (_free_names(block.code) - top_level_names(block.code))
    if not taken:
        return chosen.code
    joined = "\n\n\n".join(block.code.rstrip("\n") for block in [*reversed(taken), chosen]) + "\n"
    return joined if _parses(joined) is not None else chosen.code


def _unfenced(text: str, wanted: list[str], fenced: int, provided: Collection[str]) -> str:
    code = textwrap.dedent(text).strip("\n")
    names = _parses(code) if code.strip() else None
    if names is not None and _CODE_START.search(code):
        missing = [name for name in wanted if name not in names]
        if not missing:
            return _no_placeholders(code + "\n", wanted)
        raise ExtractionError(_missing_message(missing, names, "in your answer", provided), missing=missing)
    if code.strip() and fenced == 0 and _looks_like_code(code):
        message = _syntax_message(code, "in your answer")
        if message is not None:
            raise ExtractionError(message)
    other = " (only blocks in other languages)" if fenced else ""
    raise ExtractionError(f"No Python code block found in your answer{other}. {_HOW}")


def _looks_like_code(text: str) -> bool:
    """True when most non-blank lines look like Python rather than prose (an unfenced module with an error)."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines or not _CODE_START.search(text):
        return False
    codeish = sum(1 for line in lines if line.startswith((" ", "\t", "#", "@", ")", "]", "}"))
                  or re.match(r"^(def|class|import|from|return|if|for|while|with|try|except|[A-Za-z_]\w*\s*[=:(\[])",
                              line))
    return codeish * 2 >= len(lines)
