"""The benchmark's task suite: tasks read from the data files under ``taskbench/tasks/``.

A task asks a model for one unit (``function`` or ``class`` level) or one whole module
(``module`` level) of a simulator and judges the answer with *hidden tests* the model never sees:

* **stage** tasks (mapping, network, memory) are the planner's own tasks: a unit of a module's
  skeleton, or the module.  The answer is spliced into the literal reference module (the other
  units as given) and that module's stage runs on the reference's inputs over every hardware case
  of the task's architecture family; its outputs are compared field by field with the reference's
  (:func:`judge.checks.stage_evidence`).
* **probe** tasks (spec and topology handling, contract helpers) are judged by calls with given
  arguments (:mod:`taskbench.probes`), their results compared with the reference solution's.
* **feature** tasks (one per catalogue feature, ``feature.<name>``) ask for a whole feature module with the
  feature coder's prompt and are judged by the whole feature judge (:mod:`taskbench.feature_tasks`); they
  come from the catalogue, not from a data file.

The data files say, per group of tasks, the unit, level, description and families (stage) or the
source module, host units and probe generator (probe); one task per family.  A task's reference
solution is the reference's own source of the unit, never a copy (a feature task's: the catalogue's
built-in, made portable).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import inspect
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agents import skeleton
from agents.planner import FEATURE_ENTRY_POINT, FEATURE_INTERFACE, INTERFACES
from agents.spec import load_agent_spec
from judge.harness.rules import parse
from judge.suites import Workload
from reference_sim.contract import Hardware, Layer
from reference_sim.errors import InputError, SimCoderError

from . import feature_tasks
from .subject import stubbed_host

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
ARCHITECTURES_FILE = TASKS_DIR / "architectures.yaml"
MODULE_FILES: tuple[str, ...] = ("mapping", "network", "memory", "spec")
LEVELS: tuple[str, ...] = ("function", "class", "module")
MIN_TASKS = 138
MIN_PER_GROUP = 15
PROMPT_EXAMPLES = (Path(__file__).resolve().parents[1] / "prompts" / "examples",
                   Path(__file__).resolve().parents[1] / "prompts" / "bench")
"""Where in-context examples live (no task's solution may appear in one)."""
PRODUCT_SPEC = Path(__file__).resolve().parents[1] / "scale_sim.yaml"

Level = Literal["function", "class", "module"]
Kind = Literal["stage", "probe", "feature"]


class SuiteError(SimCoderError):
    """The task data is inconsistent (names the file and the task)."""


@dataclass(frozen=True)
class Family:
    """An architecture family: hardware cases a stage task is judged on, and how its description names them."""

    name: str
    text: str
    hardware: tuple[Hardware, ...]


@dataclass(frozen=True)
class BenchTask:
    """One benchmark task."""

    id: str
    level: Level
    module: str
    """``mapping``, ``network``, ``memory``, ``spec`` or ``feature``."""
    kind: Kind
    unit: str | None
    """The unit to write (``None``: the whole module)."""
    description: str
    """What the model is told to write (the family's architecture included)."""
    signature: str
    context: str
    """What else the model may see: the skeleton (stage) or the host module with the unit stubbed (probe)."""
    solution: str
    """The reference solution: the reference's source of the unit or module."""
    role: str = ""
    """Stage tasks: the module (``mapping``, ``network`` or ``memory``) the answer belongs to."""
    family: str = ""
    source: str = ""
    """Probe tasks: the reference module the unit comes from (``reference_sim.scalesim_io``)."""
    host_units: tuple[str, ...] = ()
    """Probe tasks: the units of ``source`` the probed module holds (empty: all of it)."""
    probes: dict[str, Any] = field(default_factory=dict)
    """Probe tasks: the generator and its parameters (:mod:`taskbench.probes`)."""
    names: tuple[str, ...] = ()
    """The top-level names the answer must define."""
    feature: str = ""
    """Feature tasks: the catalogue feature the answer implements."""

    @property
    def digest(self) -> str:
        """A short hash of what defines the task (its results are kept only while it is unchanged)."""
        text = "\n".join((self.id, self.description, self.signature, self.solution, repr(sorted(self.probes.items())),
                          self.feature))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Suite:
    tasks: tuple[BenchTask, ...]
    families: dict[str, Family]
    layers: tuple[Layer, ...]

    def task(self, task_id: str) -> BenchTask:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise SuiteError(f"no task {task_id!r} in the suite")

    def select(self, patterns: str | None) -> tuple[BenchTask, ...]:
        """Tasks whose id contains one of the comma-separated ``patterns`` (all when ``None``)."""
        if not patterns:
            return self.tasks
        wanted = [p.strip() for p in patterns.split(",") if p.strip()]
        chosen = tuple(t for t in self.tasks if any(p in t.id for p in wanted))
        if not chosen:
            raise SuiteError(f"no task id contains any of {', '.join(wanted)}")
        return chosen

    def workloads(self, task: BenchTask, *, visible: bool = False) -> tuple[Workload, ...]:
        """A stage task's hidden tests (every case of its family over every layer), or the repair loop's
        visible part (the first layer on the first case)."""
        family = self.families[task.family]
        if visible:
            return (Workload(f"{task.family}/visible", family.hardware[0], self.layers[:1]),)
        return tuple(Workload(f"{task.family}/{i}", hw, self.layers) for i, hw in enumerate(family.hardware))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(path, f"cannot read task data: {exc}") from None


def _hardware(path: Path, name: str, case: dict[str, Any]) -> Hardware:
    rows, cols = case["array"]
    sram = case.get("sram_kib", [64, 64, 64])
    try:
        return Hardware(array_rows=rows, array_cols=cols, dataflow=case["dataflow"], ifmap_sram_kib=sram[0],
                        filter_sram_kib=sram[1], ofmap_sram_kib=sram[2],
                        bandwidth_mode=case.get("bandwidth_mode", "CALC"),
                        dram_words_per_cycle=case.get("words_per_cycle", 10), word_bytes=case.get("word_bytes", 1))
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(path, f"family {name!r}: bad hardware case {case}: {exc}", field=f"families.{name}") from None


def _architecture_text(family: Family) -> str:
    hw = family.hardware[0]
    data = {"architecture": {
        "array": {"rows": hw.array_rows, "cols": hw.array_cols}, "dataflow": hw.dataflow,
        "sram_kib": {"ifmap": hw.ifmap_sram_kib, "filter": hw.filter_sram_kib, "ofmap": hw.ofmap_sram_kib},
        "address_offsets": {"ifmap": hw.ifmap_offset, "filter": hw.filter_offset, "ofmap": hw.ofmap_offset},
        "dram": {"bandwidth_mode": hw.bandwidth_mode, "words_per_cycle": hw.dram_words_per_cycle}}}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None).strip()


def architecture_text(suite: Suite, task: BenchTask) -> str:
    """The architecture YAML a stage task's prompt shows (its family's first case)."""
    return _architecture_text(suite.families[task.family])


@functools.cache
def _product_descriptions() -> dict[str, str]:
    modules = load_agent_spec(PRODUCT_SPEC).spec.modules
    assert modules is not None
    return {role: " ".join(getattr(modules, role).split()) for role in ("mapping", "network", "memory")}


def module_description(task: BenchTask) -> str:
    """A stage task's module description as the coder sees it: the product's own, then the task's."""
    return f"{_product_descriptions()[task.role]}\n\n{task.description}"


def _signature(stub: str) -> str:
    lines: list[str] = []
    for line in stub.splitlines():
        if line.lstrip().startswith("@"):
            continue
        lines.append(line)
        if line.rstrip().endswith(":"):
            break
    return "\n".join(lines)


def literal_module(role: str) -> str:
    """The literal reference module of ``role`` standing alone: a module-level task's solution."""
    return skeleton.assemble(role, {}, fill_from_reference=True)


def _stage_tasks(path: Path, module: str, group: dict[str, Any], families: dict[str, Family]) -> list[BenchTask]:
    unit = group.get("unit")
    level = group["level"]
    sk = skeleton.skeleton(module)
    names: tuple[str, ...] = ()
    if unit is not None:
        found = sk.unit(unit)
        signature, solution, names = _signature(found.stub), found.reference, (unit,)
    else:
        signature, solution = INTERFACES[module], literal_module(module)
    tasks = []
    for name in group["families"]:
        if name not in families:
            raise InputError(path, f"unknown family {name!r}", field=f"{unit or 'module'}.families")
        family = families[name]
        what = f"the unit `{unit}` of the {module} module" if unit else f"the whole {module} module"
        description = (f"{' '.join(str(group['description']).split())}\n\nWrite {what} for {family.text}; it is "
                       f"judged on every case of that family.")
        tasks.append(BenchTask(
            id=f"{module}.{unit or 'module'}.{name}", level=level, module=module, kind="stage", unit=unit,
            description=description, signature=signature, context=sk.text, solution=solution, role=module,
            family=name, names=names))
    return tasks


def _host_source(source: str) -> str:
    return inspect.getsource(importlib.import_module(source))


def _unit_nodes(code: str) -> dict[str, ast.stmt]:
    return {n.name: n for n in parse(code).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def _probe_tasks(path: Path, module: str, group: dict[str, Any], families: dict[str, Family]) -> list[BenchTask]:
    source = str(group["source"])
    host = tuple(group.get("host_units") or ())
    targets = list(group.get("targets") or [group["unit"]])
    level = group["level"]
    text = _host_source(source)
    nodes = _unit_nodes(text)
    for name in (*host, *targets):
        if name not in nodes:
            raise InputError(path, f"{source} defines no {name!r}", field=f"{group.get('id', targets[0])}")
    solution = "\n\n\n".join(skeleton.unit_source(text, n) for n in targets)
    stubs = stubbed_host(source, host, targets)
    if "from .errors import" in stubs:
        stubs += ("\n\n# The module's `.errors`, as given:\n"
                  + "\n".join("# " + line for line in _host_source("reference_sim.errors").splitlines()))
    signature = "\n".join(_signature(skeleton.unit_source(stubs, n)) for n in targets)
    unit = targets[0] if level != "module" else None
    task_id = f"{module}.{group.get('id') or targets[0]}"
    description = " ".join(str(group["description"]).split())
    per_family = list(group.get("families") or [])
    unknown = [f for f in per_family if f not in families]
    if unknown:
        raise InputError(path, f"unknown family {unknown[0]!r}", field=f"{task_id}.families")
    variants = [(f".{f}", f" It is judged on {families[f].text}.", {"families": [f]}) for f in per_family] or [
        ("", "", {})]
    return [BenchTask(
        id=task_id + suffix, level=level, module=module, kind="probe", unit=unit, description=description + text,
        signature=signature, context=stubs, solution=solution, source=source, host_units=host,
        probes={**group["probes"], **extra}, names=tuple(targets), family=extra.get("families", [""])[0])
        for suffix, text, extra in variants]


def _feature_tasks() -> list[BenchTask]:
    """One task per built-in catalogue feature (a feature without a built-in has no golden solution: no task)."""
    tasks = []
    for name, feature in sorted(feature_tasks.catalogue().items()):
        if not feature.builtin:
            continue
        definition = feature.definition
        description = f"{' '.join(definition.summary.split())}\n\n{feature.description.strip()}"
        tasks.append(BenchTask(
            id=f"{feature_tasks.MODULE}.{name}", level="module", module=feature_tasks.MODULE, kind="feature",
            unit=None, description=description, signature=FEATURE_INTERFACE, context="",
            solution=feature_tasks.golden_source(name), names=(FEATURE_ENTRY_POINT,), feature=name))
    return tasks


@functools.cache
def load_suite(directory: Path = TASKS_DIR) -> Suite:
    """Every task of the data files in ``directory`` (``architectures.yaml`` and one file per module)."""
    arch_path = directory / ARCHITECTURES_FILE.name
    arch = _read_yaml(arch_path)
    try:
        layers = tuple(Layer(**entry) for entry in arch["layers"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(arch_path, f"bad layer: {exc}", field="layers") from None
    families = {name: Family(name, str(entry["text"]), tuple(_hardware(arch_path, name, c) for c in entry["cases"]))
                for name, entry in arch["families"].items()}
    tasks: list[BenchTask] = []
    for module in MODULE_FILES:
        path = directory / f"{module}.yaml"
        data = _read_yaml(path) or {}
        for group in data.get("stage") or []:
            tasks.extend(_stage_tasks(path, module, group, families))
        for group in data.get("probe") or []:
            tasks.extend(_probe_tasks(path, module, group, families))
    tasks.extend(_feature_tasks())
    ids = Counter(t.id for t in tasks)
    twice = sorted(i for i, n in ids.items() if n > 1)
    if twice:
        raise SuiteError(f"{directory}: task ids used twice: {', '.join(twice)}")
    for task in tasks:
        if task.level not in LEVELS:
            raise SuiteError(f"{directory}: task {task.id}: level must be one of {', '.join(LEVELS)}")
    return Suite(tuple(tasks), families, layers)


def _example_defs() -> set[str]:
    """The AST dump of every function and class in the in-context examples: Python files whole, the
    fenced blocks of the others."""
    found: set[str] = set()
    for path in sorted(p for d in PROMPT_EXAMPLES for p in d.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        blocks = [text] if path.suffix == ".py" else [b.partition("\n")[2] for b in text.split("```")[1::2]]
        for block in blocks:
            try:
                tree = ast.parse(block)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.ClassDef):
                    found.add(ast.dump(node, include_attributes=False))
    return found


def suite_problems(suite: Suite) -> list[str]:
    """What makes the suite unfit for measuring: too few tasks, duplicates, a solution shown in an ICL example, a
    catalogue feature without a task."""
    problems: list[str] = []
    tasked = {t.feature for t in suite.tasks if t.kind == "feature"}
    problems += [f"feature {name} has no built-in implementation, so no benchmark task (no golden solution)"
                 for name in sorted(set(feature_tasks.catalogue()) - tasked)]
    if len(suite.tasks) < MIN_TASKS:
        problems.append(f"{len(suite.tasks)} tasks; the suite needs at least {MIN_TASKS}")
    by_module: Counter[str] = Counter(t.module for t in suite.tasks)
    by_level: Counter[str] = Counter(t.level for t in suite.tasks)
    for what, counts in (("module", by_module), ("level", by_level)):
        names = MODULE_FILES if what == "module" else LEVELS
        problems += [f"{counts[n]} tasks of {what} {n}; at least {MIN_PER_GROUP} needed" for n in names
                     if counts[n] < MIN_PER_GROUP]
    pairs = Counter((t.signature, t.description) for t in suite.tasks)
    problems += [f"{n} tasks share a signature and description ({sig.splitlines()[0]!r})"
                 for (sig, _), n in pairs.items() if n > 1]
    examples = _example_defs()
    for task in suite.tasks:
        defs = [n for n in ast.walk(parse(task.solution)) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        problems += [f"task {task.id}: an ICL example under prompts/ contains its solution's {node.name}"
                     for node in defs if ast.dump(node, include_attributes=False) in examples]
    return problems
