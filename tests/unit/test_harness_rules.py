"""The candidate rules: an import allowlist; the reference copied as a candidate passes; every way of borrowing
it, and every module off the allowlist, is refused with its file and line."""

from __future__ import annotations

import importlib
import inspect
import re
import types
from pathlib import Path

import pytest

from agents import skeleton, unit_checks
from agents.planner import ROLES
from judge import checks
from judge.feature_jobs import feature_static_problem
from judge.harness import probe, rules
from judge.mutants import MUTANTS, Mutant, candidate_files
from reference_sim import contract, mapping, memory, memory_literal, network
from taskbench import hidden
from taskbench.suite import load_suite

REPO = Path(__file__).resolve().parents[2]


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_reference_copied_as_a_candidate_passes(tmp_path: Path) -> None:
    assert rules.check_folder(_folder(tmp_path, candidate_files())) == []


def test_the_built_in_reference_modules_pass(tmp_path: Path) -> None:
    files = {f"{m.__name__.rpartition('.')[2]}.py": inspect.getsource(m)
             for m in (mapping, network, memory, memory_literal, contract)}
    assert rules.check_folder(_folder(tmp_path, files)) == []


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_every_mutant_passes(tmp_path: Path, mutant: Mutant) -> None:
    assert rules.check_folder(_folder(tmp_path, candidate_files(mutant))) == []


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("granularity", ["module", "function"])
def test_template_answers_and_skeletons_pass(role: str, granularity: str) -> None:
    own = frozenset({*ROLES, *rules.CONTRACT_MODULES})
    for unit, code in unit_checks.template_code(role, granularity).items():
        module = code if granularity == "module" else skeleton.assemble(role, {unit: code}, fill_from_reference=True)
        assert rules.check_source(module, f"{role}.py", own) == [], unit
    skeleton_file = REPO / "prompts" / "skeletons" / f"{role}.py"
    assert rules.check_source(skeleton_file.read_text(), skeleton_file.name, own) == []


def test_the_prompts_examples_pass() -> None:
    toy = REPO / "prompts" / "examples" / "toy"
    own = frozenset(p.stem for p in toy.glob("*.py"))
    for path in sorted(toy.glob("*.py")):
        assert rules.check_source(path.read_text(), path.name, own) == [], path.name
    for path in sorted((REPO / "prompts").rglob("*.md")):
        for block in re.findall(r"```python\n(.*?)```", path.read_text(), re.S):
            try:
                refusals = rules.check_source(block, path.name, frozenset({*ROLES, *rules.CONTRACT_MODULES}))
            except SyntaxError:
                continue
            assert refusals == [], path


def test_the_benchmark_golden_solutions_pass() -> None:
    suite = load_suite()
    probe_own = frozenset({probe.SUBJECT, *rules.CONTRACT_MODULES})
    for task in suite.tasks:
        if task.kind == "feature":
            assert feature_static_problem(task.solution) is None, task.id
            continue
        module = hidden.candidate_module(task, task.solution)
        if task.kind == "stage":
            assert checks.static_problem(task.role, module) is None, task.id
        else:
            assert rules.check_source(module, "subject.py", probe_own, rules.PROBE_STDLIB) == [], task.id


ALLOWED = [
    "import numpy as np\nx = np.zeros(3)\n",
    "import numpy as np\nx = np.select([np.ones(2) > 0], [np.ones(2)])\n",
    "import math, bisect, dataclasses, functools, itertools\n",
    "from collections.abc import Callable\n",
    "from .contract import Layer\n",
    "from . import helpers\n",
    "import helpers\n",
    "from __future__ import annotations\n",
    "def f(obj, name):\n    return getattr(obj, name)\n",
    "import re\np = re.compile('a')\n",
    "import operator\nkey = operator.attrgetter('rows', 'layer.name')\n",
    "import operator\ncall = operator.methodcaller('replace', '__', '_')\n",
]


@pytest.mark.parametrize("source", ALLOWED)
def test_allowed_sources(tmp_path: Path, source: str) -> None:
    files = {"mapping.py": source, "helpers.py": "X = 1\n"}
    assert rules.check_folder(_folder(tmp_path, files)) == []


A_NAME = {"__future__": "annotations", "abc": "ABC", "array": "array", "bisect": "bisect_left", "cmath": "sqrt",
          "collections": "deque", "contextlib": "suppress", "copy": "deepcopy", "dataclasses": "dataclass",
          "decimal": "Decimal", "enum": "Enum", "fractions": "Fraction", "functools": "lru_cache",
          "graphlib": "TopologicalSorter", "heapq": "heappush", "itertools": "product", "math": "ceil",
          "numbers": "Integral", "operator": "itemgetter", "random": "Random", "re": "sub",
          "statistics": "mean", "string": "ascii_letters", "struct": "pack", "textwrap": "dedent", "typing": "Any"}


def test_every_allowlisted_module_has_a_sample_name() -> None:
    assert set(A_NAME) == rules.ALLOWED_STDLIB


@pytest.mark.parametrize("module", sorted(rules.ALLOWED_STDLIB))
def test_each_allowlisted_module_is_accepted(tmp_path: Path, module: str) -> None:
    source = f"from {module} import {A_NAME[module]}\n" + ("" if module == "__future__" else f"import {module}\n")
    assert rules.check_folder(_folder(tmp_path, {"memory.py": source})) == []
    assert rules.import_refusal(module, 0, frozenset()) is None


def test_no_allowlisted_module_hands_out_a_module_off_the_allowlist() -> None:
    """A module reached through an allowed one's attribute (``random._os``) is refused by its attribute name."""
    pure_helpers = {"_random", "_string", "keyword"}
    for name in sorted(rules.ALLOWED_STDLIB):
        for attribute, value in vars(importlib.import_module(name)).items():
            if not isinstance(value, types.ModuleType):
                continue
            reached = value.__name__.partition(".")[0]
            assert reached in rules.ALLOWED_STDLIB or reached in pure_helpers or attribute in rules.DENIED_ATTRIBUTES, (
                f"{name}.{attribute} is {value.__name__}")


REFUSED = [
    ("from reference_sim.memory import simulate\n", "from reference_sim.memory import ...", "not on the allowlist"),
    ("import reference_sim\n", "import reference_sim", "not on the allowlist"),
    ("import importlib\nm = importlib.import_module('reference_sim.memory')\n", "import importlib",
     "import machinery"),
    ("m = __import__('reference_sim.memory')\n", "use of __import__", "import machinery"),
    ("import sys\nm = sys.modules['reference_sim.memory']\n", "import sys", "interpreter internals"),
    ("import numpy as np\ns = np.sys\n", "attribute .sys", "interpreter internals"),
    ("from sys import modules\n", "from sys import ...", "interpreter internals"),
    ("import os\nfor r, d, f in os.walk('/'):\n    pass\n", "import os", "file-system access"),
    ("from pathlib import Path\nfiles = list(Path('/').rglob('memory.py'))\n", "from pathlib import ...",
     "file-system access"),
    ("text = open('/sandbox/inputs/job.json').read()\n", "use of open", "file-system access"),
    ("exec('x = 1')\n", "use of exec", "running strings as code"),
    ("y = eval('1 + 1')\n", "use of eval", "running strings as code"),
    ("import gc\nobjs = gc.get_objects()\n", "import gc", "interpreter internals"),
    ("def f(g):\n    return g.__globals__\n", "attribute .__globals__", "interpreter internals"),
    ("def f(g):\n    return getattr(g, '__globals__')\n", "getattr(..., '__globals__')", "interpreter internals"),
    ("def f(e):\n    return e.__traceback__.tb_frame.f_back\n", "attribute .f_back", "frame access"),
    ("import numpy as np\nx = np.load('/sandbox/inputs/inputs.npz')\n", "attribute .load of numpy",
     "file-system access"),
    ("from numpy import fromfile\n", "from numpy import fromfile", "file-system access"),
    ("import inspect\n", "import inspect", "interpreter internals"),
    ("import subprocess\n", "import subprocess", "processes"),
    ("import socket\n", "import socket", "network access"),
    ("from .. import reference_sim\n", "from .. import ...", "beyond the candidate's folder"),
    ("from .secret import x\n", "from .secret import ...", "no file secret.py"),
    ("x = ().__class__.__base__.__subclasses__()\n", "attribute .__subclasses__", "interpreter internals"),
    ("import random\nos = random._os\n", "attribute ._os", "file-system access"),
    ("import contextlib\nos = contextlib.os\n", "attribute .os", "file-system access"),
    ("from contextlib import chdir\n", "from contextlib import chdir", "file-system access"),
    ("import collections\nsys = collections._sys\n", "attribute ._sys", "interpreter internals"),
    ("import enum\nb = enum.bltns\n", "attribute .bltns", "interpreter internals"),
    ("import dataclasses\nt = dataclasses.types\n", "attribute .types", "interpreter internals"),
    ("import typing\nh = typing.get_type_hints(len)\n", "attribute .get_type_hints", "running strings as code"),
    ("import operator\ng = operator.attrgetter('__globals__')\n", "attrgetter(..., '__globals__')",
     "interpreter internals"),
    ("import operator\ng = operator.attrgetter('x.__globals__.y')\n", "attrgetter(..., '__globals__')",
     "interpreter internals"),
    ("from operator import methodcaller\nr = methodcaller('__reduce__')\n", "methodcaller(..., '__reduce__')",
     "interpreter internals"),
]


@pytest.mark.parametrize(("source", "what", "why"), REFUSED)
def test_refused_sources_name_file_line_and_reason(tmp_path: Path, source: str, what: str, why: str) -> None:
    refusals = rules.check_folder(_folder(tmp_path, {"network.py": "X = 1\n", "memory.py": source}))
    assert refusals, source
    first = refusals[0]
    assert first.file == "memory.py"
    assert first.line >= 1
    assert what in first.what, (first.what, what)
    assert why in first.why, (first.why, why)
    assert first.describe().startswith(f"memory.py:{first.line}: ")


DANGEROUS = ["atexit", "pathlib", "shutil", "tempfile", "io", "signal", "threading", "_thread", "subprocess", "socket",
             "ctypes", "multiprocessing", "builtins", "types", "sys", "os", "importlib", "gc", "time", "weakref",
             "pickle", "codecs", "warnings"]


@pytest.mark.parametrize("form", ["import {m}\n", "import {m} as alias\n", "from {m} import name\n",
                                  "from {m}.sub import name\n"])
@pytest.mark.parametrize("module", DANGEROUS)
def test_dangerous_modules_are_refused_with_file_line_and_reason(tmp_path: Path, module: str, form: str) -> None:
    source = "import math\n\n" + form.format(m=module)
    refusals = rules.check_folder(_folder(tmp_path, {"mapping.py": "X = 1\n", "memory.py": source}))
    assert [(r.file, r.line, r.why) for r in refusals] == [("memory.py", 3, rules.DENIED_MODULES[module])]
    assert module in refusals[0].what


@pytest.mark.parametrize("form", ["import {m}\n", "from {m} import name\n"])
@pytest.mark.parametrize("module", ["wave", "zoneinfo", "json", "logging", "configparser", "datetime", "queue",
                                   "typing_extensions", "yaml", "scipy"])
def test_a_module_off_the_allowlist_is_refused(tmp_path: Path, module: str, form: str) -> None:
    source = "X = 1\n" + form.format(m=module)
    refusals = rules.check_folder(_folder(tmp_path, {"memory.py": source}))
    assert [(r.file, r.line, r.why) for r in refusals] == [("memory.py", 2, rules.NOT_ALLOWED)]
    assert "pure standard-library modules" in rules.NOT_ALLOWED and "itertools" in rules.NOT_ALLOWED


def test_the_atexit_attack_is_refused_at_its_line(tmp_path: Path) -> None:
    files = candidate_files()
    line = len(files["mapping.py"].splitlines()) + 2
    files["mapping.py"] += ("\nimport atexit, pathlib\n\n\ndef _mark():\n"
                            "    pathlib.Path('/sandbox/out/manifest.json').write_text('{}')\n\n\n"
                            "atexit.register(_mark)\n")
    refusals = rules.check_folder(_folder(tmp_path, files))
    found = [(r.file, r.line, r.what, r.why) for r in refusals]
    assert found == [("mapping.py", line, "import atexit", "exit hooks"),
                     ("mapping.py", line, "import pathlib", "file-system access")]


@pytest.mark.parametrize("name", ["atexit", "os", "random", "numpy"])
def test_a_file_may_not_hide_a_module_of_its_name(tmp_path: Path, name: str) -> None:
    refusals = rules.check_folder(_folder(tmp_path, {f"{name}.py": "X = 1\n", "memory.py": f"import {name}\n"}))
    assert rules.Refusal(f"{name}.py", 1, f"file {name}.py",
                         f"named like the module {name}, which it would hide") in refusals
    assert rules.import_refusal(name, 0, frozenset({name})) == rules.DENIED_MODULES.get(name)


def test_syntax_errors_raise(tmp_path: Path) -> None:
    with pytest.raises(SyntaxError):
        rules.check_folder(_folder(tmp_path, {"memory.py": "def f(:\n"}))


@pytest.mark.parametrize(("name", "level", "allowed"), [
    ("numpy", 0, True), ("numpy.linalg", 0, True), ("math", 0, True), ("collections.abc", 0, True),
    ("contract", 1, True), ("helpers", 1, True), ("helpers", 0, True), ("reference_sim", 0, False),
    ("importlib", 0, False), ("os.path", 0, False), ("_thread", 0, False), ("x", 2, False), ("agents", 0, False),
    ("simcoder_harness", 0, False), ("sys", 0, False), ("atexit", 0, False), ("pathlib", 0, False),
    ("wave", 0, False),
])
def test_import_rule(name: str, level: int, allowed: bool) -> None:
    assert (rules.import_refusal(name, level, frozenset({"helpers"})) is None) is allowed


def test_probe_modules_may_also_use_what_the_reference_readers_use(tmp_path: Path) -> None:
    source = "import configparser\nimport logging\nfrom pathlib import Path\n"
    assert len(rules.check_folder(_folder(tmp_path, {"subject.py": source}))) == 3
    assert rules.check_folder(tmp_path, rules.PROBE_STDLIB) == []
    assert rules.import_refusal("atexit", 0, frozenset(), rules.PROBE_STDLIB) == "exit hooks"
