"""The planner, the skeletons and the coder's checks, without LangGraph."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents import coder, optimiser, planner, skeleton, unit_checks
from judge import checks, executors, reference_runs, suites, verifier
from judge.harness import rules
from reference_sim.errors import InputError
from sandbox.base import Outcome
from tests import fakes

SPEC = Path(__file__).resolve().parents[2] / "scale_sim.yaml"


def test_plan_writes_all_three_by_default() -> None:
    plan = planner.plan_run(SPEC)
    assert plan["generate"] == ["mapping", "network", "memory"] and plan["keep"] == []
    assert [t["role"] for t in plan["tasks"]] == plan["generate"]
    assert all(t["description"] and "architecture:" in t["architecture"] for t in plan["tasks"])
    assert plan["tasks"][0]["interface"].startswith("def map_layer(layer: Layer, hardware: Hardware)")
    assert len(plan["spec_sha256"]) == 64 and plan["reference"] == "built-in"


def test_generate_keeps_the_rest_and_order_is_the_contracts() -> None:
    plan = planner.plan_run(SPEC, generate=planner.parse_generate("memory, mapping"))
    assert plan["generate"] == ["mapping", "memory"] and plan["keep"] == ["network"]


@pytest.mark.parametrize("value", ["", "cache", "mapping,,bogus"])
def test_bad_generate_is_refused(value: str) -> None:
    with pytest.raises(planner.PlanError, match="comma-separated list of mapping, network, memory"):
        planner.parse_generate(value)


def test_function_granularity_cuts_modules_into_units() -> None:
    plan = planner.plan_run(SPEC, granularity="function")
    mapping = plan["tasks"][0]
    assert [u["name"] for u in mapping["units"]] == ["_tilings", "map_layer"]
    assert mapping["skeleton"] == skeleton.skeleton_file("mapping").read_text()
    with pytest.raises(planner.PlanError, match="granularity must be one of module, function"):
        planner.plan_run(SPEC, granularity="class")


def test_a_module_without_description_is_bad_input(tmp_path: Path) -> None:
    text = SPEC.read_text()
    start = text.index("  network: >-")
    end = text.index("  memory: >-")
    path = tmp_path / "spec.yaml"
    path.write_text(text[:start] + text[end:])
    with pytest.raises(InputError, match="describes no network module") as info:
        planner.plan_run(path)
    assert "modules.network" in str(info.value)
    assert planner.plan_run(path, generate=["mapping"])["generate"] == ["mapping"]


@pytest.mark.parametrize(("edit", "feature"), [
    (("memory_banks: 1", "memory_banks: 2"), "memory_banks: 2"),
    (("    words_per_cycle: 10\n", "    words_per_cycle: [10, 4, 4]\n"), "words_per_cycle: [10, 4, 4]"),
])
def test_features_beyond_the_reference_are_named(tmp_path: Path, edit: tuple[str, str], feature: str) -> None:
    text = SPEC.read_text()
    assert edit[0] in text
    path = tmp_path / "spec.yaml"
    path.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(planner.PlanError, match="cannot model") as info:
        planner.plan_run(path)
    assert feature in str(info.value) and "--reference DIR" in str(info.value)


def test_a_reference_folder_must_hold_the_three_modules(tmp_path: Path) -> None:
    (tmp_path / "mapping.py").write_text(reference_runs.reference_code("mapping"))
    with pytest.raises(planner.PlanError, match=r"missing network\.py, memory\.py") as info:
        planner.check_reference(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "network.py").write_text("def schedule(mapping, hardware):\n    return None\n")
    (tmp_path / "memory.py").write_text("raise RuntimeError('imported on the host')\n")
    with pytest.raises(planner.PlanError, match=r"memory\.py defines no top-level simulate\(\)"):
        planner.check_reference(tmp_path)


def test_a_reference_folder_is_checked_never_imported(tmp_path: Path) -> None:
    for role in ("mapping", "network"):
        (tmp_path / f"{role}.py").write_text(reference_runs.reference_code(role))
    (tmp_path / "memory.py").write_text("raise RuntimeError('imported on the host')\n\n\n"
                                        "def simulate(mapping, network, hardware, *, traces=False):\n"
                                        "    return None\n")
    assert planner.check_reference(tmp_path) == tmp_path.resolve()
    assert planner.plan_run(SPEC, reference_dir=tmp_path)["reference"] == str(tmp_path.resolve())
    (tmp_path / "memory.py").write_text(reference_runs.reference_code("memory") + "\nimport os\n")
    line = len(reference_runs.reference_code("memory").splitlines()) + 2
    with pytest.raises(planner.PlanError, match=rf"^the reference in {tmp_path}.*: memory\.py:{line}: import os "
                                                r"\([^()]+\)$"):
        planner.plan_run(SPEC, reference_dir=tmp_path)


@pytest.mark.parametrize("role", ["mapping", "network", "memory"])
def test_skeleton_files_are_derived_from_the_literal_modules(role: str) -> None:
    sk = skeleton.derive_skeleton(role)
    assert skeleton.skeleton_file(role).read_text() == sk.text, "regenerate: python -m agents.skeleton"
    assert all(u.stub.rstrip().endswith("...") for u in sk.units)
    assert planner.ENTRY_POINTS[role] in sk.names
    assert "from .memory import" not in sk.header


def test_a_skeleton_with_the_literal_units_matches_the_reference() -> None:
    module = skeleton.assemble("memory", {}, fill_from_reference=True)
    suite = suites.default_suite()[:3]
    assert checks.stage_evidence("memory", module, fakes.in_process, suite) is None
    with pytest.raises(skeleton.SkeletonError, match="lacks unit '_sram_words'"):
        skeleton.assemble("memory", {"simulate": "def simulate(): ..."})
    with pytest.raises(skeleton.SkeletonError, match="no unit"):
        skeleton.assemble("memory", {"_cache": ""}, fill_from_reference=True)


def test_unit_answers_keep_helpers_but_not_a_repeated_skeleton() -> None:
    own = "import math\n\n\ndef _helper(x):\n    return x\n\n\ndef _sram_words(kib, word_bytes):\n    return 1\n"
    assert coder.unit_answer("memory", "_sram_words", own) == own
    repeated = skeleton.skeleton("memory").text
    assert coder.unit_answer("memory", "simulate", repeated).startswith("def simulate(")


@pytest.mark.parametrize(("role", "code", "problem"), [
    ("mapping", "def map_layer(layer, hardware:\n", "does not parse"),
    ("mapping", "def layer_map(layer, hardware):\n    return 1\n", "must define a top-level function map_layer()"),
    ("network", "def schedule(hardware, mapping):\n    return 1\n", "positional parameters (mapping, hardware)"),
    ("memory", "def simulate(mapping, network, hardware):\n    return 1\n", "keyword parameter traces"),
    ("memory", "import os\n\n\ndef simulate(mapping, network, hardware, *, traces=False):\n    return 1\n",
     "the verifier refuses this code: memory.py:1: import os"),
])
def test_static_problems(role: str, code: str, problem: str) -> None:
    found = checks.static_problem(role, code)
    assert found is not None and problem in found


def test_the_reference_modules_pass_the_static_check() -> None:
    for role in planner.ROLES:
        assert checks.static_problem(role, reference_runs.reference_code(role)) is None


def test_local_check_reports_a_crash() -> None:
    crash = "def map_layer(layer, hardware):\n    raise ValueError('fold count unknown')\n"
    problem = checks.local_problem("mapping", crash, fakes.in_process, suites.default_suite())
    assert problem is not None and "fold count unknown" in problem and "edge_cases@spec[:3]" in problem
    assert checks.local_problem("mapping", reference_runs.reference_code("mapping"), fakes.in_process,
                                suites.default_suite()) is None


def test_unit_check_compares_with_the_reference() -> None:
    wrong = skeleton.skeleton("mapping").unit("map_layer").reference.replace(
        "col_folds = math.ceil(spatial_cols / cols)", "col_folds = math.ceil(spatial_cols / cols) + 1")
    problem = unit_checks.unit_problem("mapping", "map_layer", wrong, fakes.in_process, suites.default_suite())
    assert problem is not None and "LayerMapping.col_folds" in problem
    assert unit_checks.unit_problem("mapping", "map_layer", skeleton.skeleton("mapping").unit("map_layer").reference,
                                    fakes.in_process, suites.default_suite()) is None


class _CountingSandbox:
    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()


class _SlowExecutor:
    def __init__(self, box: _CountingSandbox) -> None:
        self.box = box

    @property
    def candidate_dir(self) -> Path | None:
        return None

    def run(self, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> executors.Execution:
        with self.box.lock:
            self.box.active += 1
            self.box.peak = max(self.box.peak, self.box.active)
        time.sleep(0.05)
        with self.box.lock:
            self.box.active -= 1
        return executors.Execution(Outcome.PASSED, "ok", 0.05)


def test_sandbox_runs_are_capped() -> None:
    box = _CountingSandbox()
    slots = threading.BoundedSemaphore(2)
    capped = [executors._SlotExecutor(_SlowExecutor(box), slots) for _ in range(6)]  # type: ignore[arg-type]
    threads = [threading.Thread(target=e.run, args=({}, {})) for e in capped]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box.peak == 2


def test_optimiser_decision() -> None:
    passed = verifier.verify(executors.InProcessExecutor(reference_runs.reference_modules()),
                             suites.default_suite()[:1], final_check=())
    assert optimiser.decide(1.0, 0.5, passed) == (True, "accepted: 1.0000 s -> 0.5000 s (median of 3), 2.00x")
    assert optimiser.decide(1.0, 1.2, passed)[0] is False
    assert "does not verify" in optimiser.decide(1.0, 0.1, None)[1]


def test_the_parse_lock_serialises_parsing() -> None:
    source = reference_runs.reference_code("memory")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                rules.parse(source)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_unit_answer_with_its_own_future_import_assembles_and_passes() -> None:
    reference = skeleton.skeleton("mapping").unit("_tilings").reference
    answer = "from __future__ import annotations\n\nimport math\n\n\n" + reference
    module = skeleton.assemble("mapping", {"_tilings": answer}, fill_from_reference=True)
    compile(module, "mapping.py", "exec", dont_inherit=True)
    assert unit_checks.unit_problem("mapping", "_tilings", answer, fakes.in_process, suites.default_suite()) is None


def test_a_module_that_does_not_compile_is_a_static_problem_with_its_line() -> None:
    late = "import math\nfrom __future__ import annotations\n\n\ndef map_layer(layer, hardware):\n    return 1\n"
    problem = checks.static_problem("mapping", late)
    assert problem is not None and "mapping.py line 2" in problem and "__future__" in problem


@pytest.mark.parametrize("name", ["energy", "batch", "cores", "sparsity", "memory_banks"])
def test_each_example_spec_plans_its_catalogue_feature(name: str) -> None:
    plan = planner.plan_run(Path(__file__).resolve().parents[2] / "examples" / f"{name}.yaml")
    assert [f["name"] for f in plan["features"]] == [name]
    assert plan["reference"] == "built-in"
