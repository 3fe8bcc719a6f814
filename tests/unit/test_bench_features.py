"""The benchmark's feature tasks: one per catalogue feature, judged by the whole feature judge (in process here),
their golden solutions one file each, their failure classes, their rows in Table 1 and their self-check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents import feature_prompts
from judge.executors import Execution
from judge.feature_jobs import feature_static_problem
from sandbox.base import Outcome
from taskbench import cli, feature_tasks, hidden, mutation, passk
from taskbench.single_file import InlineError, inline_modules
from taskbench.suite import load_suite, suite_problems
from tests.fakes import Request, ScriptedChatModel, fenced

SUITE = load_suite()
RUNNER = hidden.Runner()
FAST = "feature.sparsity"
"""The feature whose judge is quickest (well under a second in process)."""
RAISES = "def run(layers, hardware, params, *, traces=False):\n    raise ValueError('not written yet')\n"


def test_every_catalogue_feature_is_a_module_level_feature_task() -> None:
    found = {t.feature: t for t in SUITE.tasks if t.kind == "feature"}
    assert set(found) == set(feature_tasks.catalogue())
    for name, t in found.items():
        assert (t.id, t.module, t.level, t.names) == (f"feature.{name}", "feature", "module", ("run",))
    assert [t.id for t in SUITE.select("feature.energy")] == ["feature.energy"]


def test_a_catalogue_feature_without_a_task_is_a_suite_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {**feature_tasks.catalogue(), "warp": feature_tasks.catalogue()["energy"]}
    monkeypatch.setattr(feature_tasks, "catalogue", lambda: extra)
    assert [p for p in suite_problems(SUITE) if "feature" in p] == [
        "feature warp has no built-in implementation, so no benchmark task (no golden solution)"]


def test_a_feature_tasks_prompt_is_the_feature_coders() -> None:
    t = SUITE.task("feature.energy")
    for strategy in ("zero_shot", "icl_cot"):
        assert passk.first_messages(SUITE, t, strategy) == feature_prompts.feature_messages(
            feature_tasks.catalogue()["energy"], strategy)


@pytest.mark.parametrize("name", sorted(feature_tasks.catalogue()))
def test_a_golden_solution_is_one_file_the_sandbox_package_takes(name: str) -> None:
    code = feature_tasks.golden_source(name)
    assert feature_static_problem(code) is None
    assert "feature_semantics" not in code and "feature_types" not in code
    assert code.startswith('"""Built-in')


def test_inlining_puts_helpers_first_merges_imports_and_keeps_renamings() -> None:
    sources = {
        "entry.py": '"""Entry."""\n\nfrom __future__ import annotations\n\nimport numpy as np\n'
                    "from .contract import Layer\nfrom .helper import SCALE, twice as double\n\n\n"
                    "def run(x: Layer) -> float:\n    return double(np.float64(x)) * SCALE\n",
        "helper.py": '"""Helper."""\n\nfrom __future__ import annotations\n\nimport numpy as np\n'
                     "from .contract import Hardware, Layer\n\nSCALE = 3\n\n\n@staticmethod\n"
                     "def _unused() -> None:\n    pass\n\n\ndef twice(v: float) -> float:\n    return 2 * v\n",
        "other.py": "BROKEN = 1\n",
    }
    text = inline_modules("entry.py", sources)
    assert text.startswith('"""Entry."""') and "Helper." not in text and "BROKEN" not in text
    assert text.count("from __future__") == 1 and text.count("import numpy as np") == 1
    assert "from .contract import Hardware, Layer" in text and "@staticmethod" in text
    assert text.index("def twice") < text.index("double = twice") < text.index("def run")
    namespace: dict[str, Any] = {}
    exec(compile(text.replace("from .contract import Hardware, Layer", ""), "joined", "exec"), namespace)
    assert namespace["run"](2.0) == 12.0


@pytest.mark.parametrize(("sources", "message"), [
    ({"e.py": "from . import h\n", "h.py": "X = 1\n"}, "e.py:1: imports a helper module as a module"),
    ({"e.py": "from .h import X\n", "h.py": "from .e import Y\nX = 1\n"}, "cycle (e -> h -> e)"),
    ({"e.py": "from .h import Z\n", "h.py": "X = 1\n"}, "e.py:1: h.py binds no 'Z'"),
    ({"e.py": "from .h import X\nY = 2\n", "h.py": "X = 1\nY = 1\n"}, "e.py:2: binds 'Y'"),
    ({"e.py": "from .h import X\nimport json as Y\n", "h.py": "X = 1\nimport os as Y\n"}, "binds 'Y'"),
    ({"e.py": "def f():\n    from .h import X\n", "h.py": "X = 1\n"}, "e.py:2: imports a helper module inside"),
    ({"e.py": "def f(:\n", "h.py": "X = 1\n"}, "e.py:1: does not parse"),
])
def test_what_cannot_be_joined_is_an_error_naming_the_file(sources: dict[str, str], message: str) -> None:
    with pytest.raises(InlineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        inline_modules("e.py", sources)


def test_every_seeded_mutant_applies_to_the_portable_built_in() -> None:
    for name in feature_tasks.catalogue():
        found = feature_tasks.seeded_mutants(name)
        assert found and all(code != feature_tasks.golden_source(name) for _, code in found)


@pytest.mark.parametrize(("answer", "failure", "stage", "detail"), [
    (None, "", "", ""),
    ("mutant", "wrong", "oracle", "The check `oracle`"),
    (RAISES, "crash", "run", "ValueError: not written yet"),
    ("import os\n\n\n" + RAISES, "refused_import", "", "the verifier refuses"),
    ("def run(layers, hardware, params):\n    return None\n", "interface", "", "takes no keyword argument traces"),
])
def test_a_feature_answer_gets_the_benchmarks_failure_class(answer: str | None, failure: str, stage: str,
                                                            detail: str) -> None:
    t = SUITE.task(FAST)
    code = {None: t.solution, "mutant": feature_tasks.seeded_mutants("sparsity")[0][1]}.get(answer, answer)
    assert isinstance(code, str)
    verdict = hidden.judge(SUITE, t, code, RUNNER)
    assert (verdict.passed, verdict.failure, verdict.stage) == (answer is None, failure, stage)
    assert detail in verdict.detail


def test_a_feature_run_the_sandbox_cut_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    class Cut:
        def run(self, files: Any, job: Any, arrays: Any) -> Execution:
            return Execution(Outcome.TIMED_OUT, "the feature's run timed out after 2 s", 2.0)

    monkeypatch.setattr(hidden.Runner, "feature_executor", lambda self: Cut())
    verdict = hidden.judge(SUITE, SUITE.task(FAST), SUITE.task(FAST).solution, RUNNER)
    assert (verdict.failure, verdict.stage) == ("timeout", "run")


def test_the_self_check_passes_each_golden_feature_solution_and_kills_seeded_mutants() -> None:
    for t in SUITE.select("feature."):
        if t.id != FAST:
            assert hidden.judge(SUITE, t, t.solution, RUNNER) == hidden.PASSED, t.id
    check = mutation.check_task(SUITE.task(FAST), per_task=2)
    assert check.golden == hidden.PASSED and len(check.killed) == 2 and not check.survived
    assert all(m.startswith("seeded:") for m in check.tried)


def test_a_fake_model_run_of_a_feature_task_fills_its_rows_and_keeps_transcripts(tmp_path: Path) -> None:
    t = SUITE.task(FAST)
    answers = {0: fenced(t.solution), 1: fenced(feature_tasks.seeded_mutants("sparsity")[0][1]), 2: fenced(RAISES)}

    def make(config: Any, sample: int) -> ScriptedChatModel:
        def respond(request: Request) -> str:
            assert "FeatureRun" in request.text and "sparsity" in request.text
            return answers[sample]
        return ScriptedChatModel(respond=respond)

    args = ["tasks", "--model", "fake", "--base-url", "http://127.0.0.1:9/v1", "--samples", "3", "--k", "1,3",
            "--tasks", FAST, "--out", str(tmp_path / "run"), "--jobs", "1"]
    assert cli.main(args, model_factory=make, runner=RUNNER) == 0
    table = json.loads((tmp_path / "run" / "table1.json").read_text())
    assert table["by_module"]["feature"]["pass@1"] == pytest.approx(1 / 3)
    assert table["by_module"]["feature"]["pass@3"] == 1.0
    assert table["by_level_module"]["module/feature"]["samples"] == 3
    assert table["failures"] == {"wrong (oracle)": 1, "crash (run)": 1}
    for sample in passk.current(passk.Store(tmp_path / "run").load()):
        kept = json.loads((tmp_path / "run" / sample.transcript).read_text())
        assert (kept["task"], kept["failure"]) == (FAST, sample.failure) and len(kept["calls"]) == 1
