"""The prompt loader: every prompt file renders, carries what its agent needs, and nothing is dead."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agents import prompts as pr
from agents import skeleton
from agents.feature_prompts import feature_messages
from agents.spec import load_agent_spec as load_spec
from features.catalogue import load_catalogue
from judge.harness.harness import FUNCTIONS

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "scale_sim.yaml").spec
assert SPEC.modules is not None
DESCRIPTIONS = {role: getattr(SPEC.modules, role) for role in pr.ROLES}
ARCHITECTURE = yaml.safe_dump(yaml.safe_load((REPO / "scale_sim.yaml").read_text())["architecture"], sort_keys=False)
CODE = 'def f(x):\n    table = {"a": {1: 2}}\n    return f"{x}:{table[x]!r}" + str(table)\n'
DIAGNOSIS = ("REJECTED (wrong_result). Blamed: memory.\n"
             "Stage evidence: MemoryResult.total_cycles: expected 5747, got 5750.")
EXAMPLE_MARK = "Worked example: "
REASONING_MARK = "#### Example reasoning"
COMBOS = list(itertools.product(pr.ROLES, pr.STRATEGIES, pr.GRANULARITIES))


def _unit(role: str, granularity: str) -> dict[str, pr.UnitFocus]:
    """At ``function`` granularity, the module's entry point as the unit (it has neighbours)."""
    return {"unit": pr.unit_focus(role, FUNCTIONS[role])} if granularity == "function" else {}


def coder(role: str, strategy: str, granularity: str) -> list[BaseMessage]:
    return pr.coder_messages(role=role, strategy=strategy, granularity=granularity, description=DESCRIPTIONS[role],
                            architecture=ARCHITECTURE, **_unit(role, granularity))


def repairer(role: str, strategy: str, granularity: str,
             history: list[tuple[str, str]] | None = None) -> list[BaseMessage]:
    return pr.repair_messages(role=role, strategy=strategy, granularity=granularity,
                             description=DESCRIPTIONS[role], architecture=ARCHITECTURE, code=CODE,
                             diagnosis=DIAGNOSIS, history=history or [("old code", "old diagnosis")],
                             **_unit(role, granularity))


def human(messages: list[BaseMessage]) -> str:
    assert len(messages) == 2
    assert isinstance(messages[0], SystemMessage) and isinstance(messages[1], HumanMessage)
    content = messages[1].content
    assert isinstance(content, str)
    return content


def every_prompt() -> Iterator[tuple[str, str]]:
    """(id, text) of every prompt the public functions build."""
    for role, strategy, granularity in COMBOS:
        yield f"coder/{role}/{strategy}/{granularity}", human(coder(role, strategy, granularity))
        yield f"repairer/{role}/{strategy}/{granularity}", human(repairer(role, strategy, granularity))
    for role in pr.ROLES:
        messages = pr.optimiser_messages(role=role, description=DESCRIPTIONS[role], architecture=ARCHITECTURE,
                                        code=CODE, profile="simulate  12.3 s  99%")
        yield f"optimiser/{role}", human(messages)
        yield f"system/{role}", str(messages[0].content)
    yield "retry", str(pr.retry_message("no ```python block found").content)
    for strategy in pr.STRATEGIES:
        bench = pr.bench_messages(strategy=strategy, description="Write f(x).", signature="def f(x: int) -> int:",
                                  context="def f(x: int) -> int:\n    ...", names=["f"])
        yield f"bench/{strategy}", human(bench)
    yield "bench/repair", human(pr.bench_messages(strategy="cot", description="Write f(x).", signature="def f(x):",
                                                  context="", names=["f"], code="def f(x): ...", diagnosis="wrong"))
    for strategy in pr.STRATEGIES:
        yield f"feature/energy/{strategy}", human(feature_messages(load_catalogue()["energy"], strategy))


@pytest.mark.parametrize(("role", "strategy", "granularity"), COMBOS)
def test_coder_and_repairer_prompts_carry_the_task(role: str, strategy: str, granularity: str) -> None:
    for text in (human(coder(role, strategy, granularity)), human(repairer(role, strategy, granularity))):
        assert DESCRIPTIONS[role].strip() in text
        assert ARCHITECTURE.strip() in text
        assert f"def {FUNCTIONS[role]}(" in text
        assert "{{" not in text and "<!--" not in text
        with_examples = strategy in ("icl", "icl_cot")
        assert (EXAMPLE_MARK in text) == with_examples
        assert (REASONING_MARK in text) == (strategy == "icl_cot")
        if granularity == "function":
            unit = pr.unit_focus(role, FUNCTIONS[role])
            assert pr.contract_excerpt(role, unit) in text
            assert pr.behaviour_notes(role, unit.name).strip() in text
            assert unit.stub in text and unit.header in text and f"`{unit.name}`" in text
            assert unit.neighbours in text and bool(unit.neighbours) == (role != "network")
            assert ("#### Example answer\n" in text) == with_examples
        else:
            assert pr.contract_excerpt(role) in text
            assert pr.behaviour_notes(role).strip() in text
            assert "## The unit to" not in text
            assert (f"#### Example answer (`{role}.py`)" in text) == with_examples
        assert ("step by step" in text) == strategy.endswith("cot")


@pytest.mark.parametrize(("role", "strategy", "granularity"), COMBOS)
def test_repairer_prompt_carries_code_diagnosis_and_history(role: str, strategy: str, granularity: str) -> None:
    text = human(repairer(role, strategy, granularity))
    assert CODE.strip() in text
    assert DIAGNOSIS in text
    assert "old diagnosis" in text and "old code" in text


def test_no_placeholder_left_in_any_rendered_prompt() -> None:
    seen = 0
    for name, text in every_prompt():
        assert "{{" not in text, name
        seen += 1
    assert seen == 2 * len(COMBOS) + 2 * len(pr.ROLES) + 1 + 2 * len(pr.STRATEGIES) + 1


def test_system_prompt_states_the_rules() -> None:
    text = str(coder("mapping", "zero_shot", "module")[0].content)
    assert "numpy" in text and "from .contract import" in text and "```python" in text
    assert "`itertools`" in text and "`math`" in text and "`open`" in text
    assert "`importlib`" not in text and "`pathlib`" not in text, "the prompt lists what is allowed, not what is not"


def test_braces_in_code_survive() -> None:
    text = human(repairer("network", "cot", "module"))
    assert 'table = {"a": {1: 2}}' in text and 'f"{x}:{table[x]!r}"' in text
    tricky = 'x = f"{{literal}} {{ code }}"\n'
    messages = pr.repair_messages(role="network", strategy="zero_shot", granularity="module", description="d",
                                 architecture="a", code=tricky, diagnosis="{{ diagnosis }}", history=[])
    assert tricky.strip() in human(messages) and "{{ diagnosis }}" in human(messages)


def test_render_keeps_non_placeholder_braces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t.md").write_text('d = {"k": {1: 2}}; f"{x}" {{ name }} {{name}} { {not} } {{ 1x }}\n')
    monkeypatch.setattr(pr, "PROMPTS_DIR", tmp_path)
    out = pr.render("t.md", name="{{ name }}", unused="extra is fine")
    assert out == 'd = {"k": {1: 2}}; f"{x}" {{ name }} {{ name }} { {not} } {{ 1x }}\n'


def test_missing_variable_names_file_and_variable() -> None:
    with pytest.raises(pr.PromptError, match=r"retry\.md.*error"):
        pr.render("retry.md")
    with pytest.raises(pr.PromptError, match=r"coder/function/icl\.md.*answer"):
        pr.render("coder/function/icl.md", opening="o", examples="e", material="m")


def test_missing_or_outside_file_is_refused() -> None:
    with pytest.raises(pr.PromptError, match=r"no_such\.md"):
        pr.render("no_such.md")
    with pytest.raises(pr.PromptError, match="not found"):
        pr.render("../README.md")


@pytest.mark.parametrize(("kwargs", "allowed"), [
    ({"role": "compute"}, "mapping, network, memory"),
    ({"strategy": "few_shot"}, "zero_shot, icl, cot, icl_cot"),
    ({"granularity": "file"}, "module, function"),
])
def test_bad_arguments_list_allowed_values(kwargs: dict[str, str], allowed: str) -> None:
    args = {"role": "mapping", "strategy": "icl", "granularity": "module", **kwargs}
    role, strategy, granularity = args["role"], args["strategy"], args["granularity"]
    with pytest.raises(pr.PromptError, match=allowed):
        pr.coder_messages(role=role, strategy=strategy, granularity=granularity, description="d", architecture="a")
    with pytest.raises(pr.PromptError, match=allowed):
        pr.repair_messages(role=role, strategy=strategy, granularity=granularity, description="d", architecture="a",
                           code="c", diagnosis="x", history=[])


def test_function_granularity_needs_the_unit() -> None:
    with pytest.raises(pr.PromptError, match="needs the unit"):
        pr.coder_messages(role="memory", strategy="cot", granularity="function", description="d", architecture="a")


def test_history_is_bounded() -> None:
    history = [(f"code number {i}", f"diagnosis number {i}") for i in range(12)]
    text = pr.format_history(history)
    assert "code number 11" in text and "code number 10" in text and "code number 9" not in text
    kept = range(12 - pr.HISTORY_IN_FULL - pr.HISTORY_DIAGNOSES, 12)
    assert all(f"diagnosis number {i}" in text for i in kept)
    assert "diagnosis number 5" not in text and "6 older attempt(s) omitted" in text
    assert pr.format_history([]).startswith("None")
    full = human(repairer("memory", "icl", "module", history))
    assert len(full) < len(human(repairer("memory", "icl", "module", history[-1:]))) + 2000


def test_optimiser_and_retry() -> None:
    messages = pr.optimiser_messages(role="memory", description=DESCRIPTIONS["memory"], architecture=ARCHITECTURE,
                                    code=CODE, profile="PROFILE-LINE _service 80%")
    text = human(messages)
    assert CODE.strip() in text and "PROFILE-LINE _service 80%" in text and "identical" in text
    assert pr.behaviour_notes("memory").strip() in text and "numpy" in text
    retry = pr.retry_message("SyntaxError: line 3")
    assert isinstance(retry, HumanMessage) and "SyntaxError: line 3" in str(retry.content)


CONTRACT_SOURCE = (REPO / "reference_sim" / "contract.py").read_text()


ELISIONS = ("", "...", "...  # more members, not used here", '"""')


def _lines_of_the_contract(excerpt: str) -> None:
    """Every line of an excerpt is a line of the contract, but the elision marks and the import hint."""
    lines = set(CONTRACT_SOURCE.splitlines())
    for line in excerpt.splitlines():
        if line.strip() in ELISIONS or line.startswith("# Available to import, e.g.: from .contract import "):
            continue
        assert line in lines, line


@pytest.mark.parametrize("role", pr.ROLES)
def test_contract_excerpt_is_cut_from_the_contract(role: str) -> None:
    excerpt = pr.contract_excerpt(role)
    ast.parse(excerpt)
    assert excerpt.startswith("# Available to import, e.g.: from .contract import ")
    _lines_of_the_contract(excerpt)
    needed = {"mapping": ("class Layer:", "class Hardware:", "class LayerMapping:", "class OperandTiling:",
                          "class WindowOperand:", "class AffineOperand:"),
              "network": ("class LayerMapping:", "class NetworkSchedule:", "class OperandTiming:", "class DramPort:"),
              "memory": ("class MemoryResult:", "class TraceSet:", "def layer_demand(", "def prefetch_order(",
                         "def fold_demand(", "NO_REQUEST = -1", "def num_folds(self)")}[role]
    for text in needed:
        assert text in excerpt
    assert ("class MemoryResult:" in excerpt) == (role == "memory")
    assert "@dataclass(frozen=True)\nclass Hardware:" in excerpt
    assert "def __post_init__" not in excerpt and "def _require_positive" not in excerpt
    for unit in skeleton.skeleton(role).units:
        piece = pr.contract_excerpt(role, pr.unit_focus(role, unit.name))
        ast.parse(piece)
        _lines_of_the_contract(piece)
        assert len(piece) <= len(excerpt)


def test_a_unit_prompt_carries_its_own_pieces() -> None:
    def text(unit: str) -> str:
        return human(pr.coder_messages(role="memory", strategy="zero_shot", granularity="function",
                                       description=DESCRIPTIONS["memory"], architecture=ARCHITECTURE,
                                       unit=pr.unit_focus("memory", unit)))

    words = text("_sram_words")
    assert "def _read_buffer(" in words and "def simulate(" in words, "the units that call it"
    assert "class _EstimateReadBuffer" not in words and "class MemoryResult" not in words
    assert "### SRAM sizes and ports" in words and "### Read buffers, USER bandwidth mode" not in words
    assert "from __future__ import annotations" in words and "A literal memory module" not in words
    user = text("_UserReadBuffer")
    assert "### Read buffers, USER bandwidth mode" in user and "### Read buffers, CALC bandwidth mode" not in user
    assert "NO_REQUEST = -1" in user and "def _in_window" not in user.split("## The unit to write")[0]
    simulate = text("simulate")
    assert "class MemoryResult:" in simulate and "total_cycles: int" in simulate
    assert "class LayerMapping:" in simulate and "spatial_rows" not in simulate, "a class it only passes on"
    assert "    ofmap_sram_kib: int" in simulate and "    array_rows: int" not in simulate, "the fields it reads"


@pytest.mark.parametrize("role", pr.ROLES)
def test_note_sections_name_units_of_the_skeleton(role: str) -> None:
    names = set(skeleton.skeleton(role).names)
    sections = pr.note_units(role)
    assert sections
    for heading, units in sections.items():
        assert units is None or units <= names, heading
    whole = pr.behaviour_notes(role)
    assert "<!--" not in whole
    for name in names:
        own = pr.behaviour_notes(role, name)
        assert "<!--" not in own and len(own) <= len(whole)
        assert own.startswith(whole.split("\n### ", 1)[0].strip()), "every unit gets the opening paragraphs"


def test_every_prompt_file_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    used: set[Path] = set()
    real = pr._load

    def recording(path: Path) -> str:
        used.add(path.resolve())
        return real(path)

    monkeypatch.setattr(pr, "_load", recording)
    for _ in every_prompt():
        pass
    files = {p.resolve() for p in pr.PROMPTS_DIR.rglob("*") if p.is_file() and p.suffix != ".py"
             and "__pycache__" not in p.parts}
    assert files, "no prompt files found"
    assert files - used == set()


# A distinctive phrase per README "Where SCALE-Sim looks wrong" item, in the notes of the module it belongs to.
QUIRKS = [
    ("mapping", "SRAM OFMAP Writes"),
    ("mapping", "num_folds * (R + C)"),
    ("mapping", "2R + 2C + T - 3"),
    ("mapping", "T + 2R + C - 2"),
    ("memory", "to the prefetch size instead of advancing"),
    ("memory", "exactly fills"),
    ("memory", "ceil(total / 100)"),
    ("memory", "whole rows, padding and blanked entries included"),
    ("memory", "Python set order"),
    ("memory", "in the cycles *before* that epoch ends"),
    ("memory", "padded with `1.0`, not `-1`"),
    ("memory", "even while a drain is still running"),
    ("memory", "counts as full when it is not the last line drained"),
    ("memory", "including rows with no request"),
    ("memory", "two read-estimate epochs end in one cycle"),
]


@pytest.mark.parametrize(("role", "phrase"), QUIRKS)
def test_notes_name_every_scalesim_quirk(role: str, phrase: str) -> None:
    assert " ".join(phrase.split()) in " ".join(pr.behaviour_notes(role).split())


def test_readme_quirk_list_is_covered() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Where SCALE-Sim looks wrong, and we match it anyway", 1)[1].split("\n## ", 1)[0]
    items = [line for line in section.splitlines() if line.startswith("- ")]
    assert len(items) == 7, "the README's quirk list changed: update QUIRKS and the notes"


def test_network_notes_give_every_timing() -> None:
    notes = pr.behaviour_notes("network")
    for phrase in ("T + R + C - 2", "T + 2*R + C - 2", "start `T - 1`, flip `R`", "start `2*R - 1`",
                   "`latency_cycles = 1`", "`10` words per", "`array_cols` (C) words per cycle"):
        assert phrase in notes
