"""The candidate rules: the reference copied as a candidate passes; every way of borrowing it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.harness import rules
from agents.mutants import candidate_files


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_reference_copied_as_a_candidate_passes(tmp_path: Path) -> None:
    assert rules.check_folder(_folder(tmp_path, candidate_files())) == []


ALLOWED = [
    "import numpy as np\nx = np.zeros(3)\n",
    "import math, bisect, dataclasses, functools, itertools\n",
    "from collections.abc import Callable\n",
    "from .contract import Layer\n",
    "from . import helpers\n",
    "import helpers\n",
    "from __future__ import annotations\n",
    "import sys\nbig = sys.maxsize\n",
    "def f(obj, name):\n    return getattr(obj, name)\n",
    "import re\np = re.compile('a')\n",
]


@pytest.mark.parametrize("source", ALLOWED)
def test_allowed_sources(tmp_path: Path, source: str) -> None:
    files = {"mapping.py": source, "helpers.py": "X = 1\n"}
    assert rules.check_folder(_folder(tmp_path, files)) == []


REFUSED = [
    ("from reference_sim.memory import simulate\n", "from reference_sim.memory import ...", "not numpy"),
    ("import reference_sim\n", "import reference_sim", "not numpy"),
    ("import importlib\nm = importlib.import_module('reference_sim.memory')\n", "import importlib",
     "import machinery"),
    ("m = __import__('reference_sim.memory')\n", "use of __import__", "import machinery"),
    ("import sys\nm = sys.modules['reference_sim.memory']\n", "attribute .modules", "sys"),
    ("from sys import modules\n", "from sys import modules", "sys"),
    ("import os\nfor r, d, f in os.walk('/'):\n    pass\n", "import os", "file-system access"),
    ("from pathlib import Path\nfiles = list(Path('/').rglob('memory.py'))\n", "attribute .rglob",
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


def test_syntax_errors_raise(tmp_path: Path) -> None:
    with pytest.raises(SyntaxError):
        rules.check_folder(_folder(tmp_path, {"memory.py": "def f(:\n"}))


@pytest.mark.parametrize(("name", "level", "allowed"), [
    ("numpy", 0, True), ("numpy.linalg", 0, True), ("math", 0, True), ("contract", 1, True),
    ("helpers", 1, True), ("helpers", 0, True), ("reference_sim", 0, False), ("importlib", 0, False),
    ("os.path", 0, False), ("_thread", 0, False), ("x", 2, False), ("agents", 0, False),
    ("simcoder_harness", 0, False),
])
def test_import_rule(name: str, level: int, allowed: bool) -> None:
    assert (rules.import_refusal(name, level, frozenset({"helpers"})) is None) is allowed
