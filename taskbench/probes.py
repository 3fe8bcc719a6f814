"""Probe tasks on the host: the module a probe task's answer goes into, its probes, and the comparison.

The probed module (``subject.py``) is built by :mod:`taskbench.subject`.

Probe generators (a task's ``probes: {generator: ..., ...}``) turn a few parameters into calls:

* ``calls``: the calls as written (``{"call": f, "args": [...]}`` or ``{"new": C, "args": [...], "then": [...]}``);
  arguments may name the suite's values: ``{"$layer": name}``, ``{"$hardware": "family/i"}``,
  ``{"$mapping": [layer, "family/i"]}``, ``{"$schedule": [layer, "family/i"]}``, ``{"$tuple": [...]}``;
* ``blocks``: ``fn(mapping, operand, row_fold, col_fold)`` on the first, a middle and the last fold;
* ``prefetch``: ``prefetch_order(mapping, operand)`` of both read operands;
* ``demand``: ``fold_demand`` on the first and last fold, or ``layer_demand`` (``fn``);
* ``calls_per_operand``: ``fn(mapping, operand)`` for each operand;
* ``operand``: an operand class built with the fields of every mapping's operand of its kind, its
  ``shape`` and ``addresses`` over the whole matrix;
* ``mapping_object``: ``LayerMapping`` built from a reference mapping's fields, its ``operand()``
  and ``num_folds``;

each over every case of the ``families`` and every layer of the suite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from judge.executors import SHIPPED_CONTRACT, InProcessExecutor
from judge.harness import harness, probe, wire
from reference_sim import contract as reference_contract
from reference_sim import mapping as reference_mapping
from reference_sim import network as reference_network
from reference_sim.compare import values_equal

from .subject import probed_module
from .suite import BenchTask, Suite

RESULTS_LIMIT_BYTES = 16 * 1024 * 1024


class ProbeError(ValueError):
    """A probe task's data cannot be turned into probes (names the task)."""


def subject_module(task: BenchTask, code: str | None = None) -> str:
    """The probed module with the answer ``code`` in place of the task's units (``None``: the reference's)."""
    if code is None:
        return probed_module(task.source, task.host_units, {})
    first, *rest = task.names
    return probed_module(task.source, task.host_units, {first: code, **dict.fromkeys(rest, "")})


# --------------------------------------------------------------------------- probe generation


class _Values:
    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.encoder = wire.Encoder(prefix="in.")
        self._arrays = 0

    def layer(self, name: str) -> reference_contract.Layer:
        for layer in self.suite.layers:
            if layer.name == name:
                return layer
        raise ProbeError(f"no layer {name!r} in architectures.yaml")

    def hardware(self, ref: str) -> reference_contract.Hardware:
        family, _, index = ref.partition("/")
        return self.suite.families[family].hardware[int(index or 0)]

    def mapping(self, layer: reference_contract.Layer, hardware: reference_contract.Hardware) -> Any:
        return reference_mapping.map_layer(layer, hardware)

    def wire(self, type_name: str, value: Any) -> dict[str, Any]:
        return {"$wire": type_name, "value": self.encoder.encode(type_name, value)}

    def array(self, value: np.ndarray) -> dict[str, str]:
        key = f"in.probe{self._arrays}"
        self._arrays += 1
        self.encoder.arrays[key] = np.asarray(value)
        return {"$array": key}

    def resolve(self, raw: Any) -> Any:
        if isinstance(raw, list):
            return [self.resolve(v) for v in raw]
        if not isinstance(raw, dict):
            return raw
        if set(raw) == {"$layer"}:
            return self.wire("Layer", self.layer(raw["$layer"]))
        if set(raw) == {"$hardware"}:
            return self.wire("Hardware", self.hardware(raw["$hardware"]))
        if set(raw) == {"$mapping"}:
            layer, hw = raw["$mapping"]
            return self.wire("LayerMapping", self.mapping(self.layer(layer), self.hardware(hw)))
        if set(raw) == {"$schedule"}:
            layer, hw = raw["$schedule"]
            hardware = self.hardware(hw)
            return self.wire("NetworkSchedule",
                             reference_network.schedule(self.mapping(self.layer(layer), hardware), hardware))
        if set(raw) == {"$tuple"}:
            return {"$tuple": self.resolve(raw["$tuple"])}
        return {k: self.resolve(v) for k, v in raw.items()}


def _cases(values: _Values, families: Sequence[str]) -> Iterator[tuple[str, reference_contract.Layer,
                                                                        reference_contract.Hardware]]:
    for family in families:
        for i, hardware in enumerate(values.suite.families[family].hardware):
            for layer in values.suite.layers:
                yield f"{family}/{i}/{layer.name}", layer, hardware


def _folds(mapping: Any, every: bool = False) -> list[tuple[int, int]]:
    rows, cols = mapping.fold_order
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols)]
    return pairs if every else sorted(set([pairs[0], pairs[len(pairs) // 2], pairs[-1]]), key=pairs.index)


def _field_value(values: _Values, kind: str, value: Any) -> Any:
    if kind in ("int", "float", "str", "bool"):
        return value
    if kind == "operand":
        return values.wire(type(value).__name__, value)
    if kind == "pair:array":
        return {"$tuple": [values.array(v) for v in value]}
    if kind.startswith("dict:"):
        return {k: values.wire(kind[5:], v) for k, v in value.items()}
    return values.wire(kind, value)


def _generate(task: BenchTask, values: _Values) -> list[dict[str, Any]]:
    spec = task.probes
    kind = spec.get("generator")
    families = list(spec.get("families") or [])
    found: list[dict[str, Any]] = []
    if kind == "calls":
        for i, call in enumerate(spec["calls"]):
            found.append({"id": f"{task.id}#{i}", **values.resolve(call)})
        return found
    for where, layer, hardware in _cases(values, families):
        mapping = values.mapping(layer, hardware)
        arg = values.wire("LayerMapping", mapping)
        if kind == "blocks":
            for name in reference_contract.OPERANDS:
                for r, c in _folds(mapping):
                    found.append({"id": f"{where}/{name}/{r},{c}", "call": spec["fn"], "args": [arg, name, r, c]})
        elif kind == "prefetch":
            for name in reference_contract.READ_OPERANDS:
                found.append({"id": f"{where}/{name}", "call": "prefetch_order", "args": [arg, name]})
        elif kind == "demand":
            sched = values.wire("NetworkSchedule", reference_network.schedule(mapping, hardware))
            for name in reference_contract.OPERANDS:
                if spec["fn"] == "layer_demand":
                    found.append({"id": f"{where}/{name}", "call": "layer_demand", "args": [arg, sched, name]})
                    continue
                for r, c in _folds(mapping):
                    found.append({"id": f"{where}/{name}/{r},{c}", "call": "fold_demand",
                                  "args": [arg, sched, name, r, c]})
        elif kind == "calls_per_operand":
            for name in reference_contract.OPERANDS:
                found.append({"id": f"{where}/{name}", "call": spec["fn"], "args": [arg, name]})
        elif kind == "mapping_object":
            fields = {f: _field_value(values, k, getattr(mapping, f)) for f, k in wire.SCHEMA["LayerMapping"].items()}
            found.append({"id": where, "new": "LayerMapping", "kwargs": fields,
                          "then": [*({"call": "operand", "args": [n]} for n in reference_contract.OPERANDS),
                                   {"get": "num_folds"}]})
        elif kind == "operand":
            for name in reference_contract.OPERANDS:
                operand = mapping.operand(name)
                if type(operand).__name__ != spec["cls"]:
                    continue
                fields = {f: getattr(operand, f) for f in wire.SCHEMA[spec["cls"]] if f != "kind"}
                n_rows, n_cols = operand.shape
                rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
                found.append({"id": f"{where}/{name}", "new": spec["cls"], "kwargs": fields,
                              "then": [{"get": "shape"},
                                       {"call": "addresses", "args": [values.array(rows), values.array(cols)]}]})
        else:
            raise ProbeError(f"task {task.id}: unknown probe generator {kind!r}")
    return found


def probe_job(suite: Suite, task: BenchTask, *, visible: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The probe job of a task (``visible``: the repair loop's part, the first probe only) and its arrays."""
    values = _Values(suite)
    probes = _generate(task, values)
    if not probes:
        raise ProbeError(f"task {task.id}: its probes generator makes no probe")
    if visible:
        probes = probes[:1]
    return {"format": probe.PROBE_FORMAT, "module": probe.SUBJECT, "probes": probes}, values.encoder.arrays


# --------------------------------------------------------------------------- running and comparing


@contextmanager
def subject_folder(code: str, workdir: Path | None = None) -> Iterator[Path]:
    """A scratch candidate folder holding ``subject.py``; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="simcoder-probe-", dir=workdir))
    try:
        folder = base / "candidate"
        folder.mkdir()
        (folder / f"{probe.SUBJECT}.py").write_text(code, encoding="utf-8")
        yield folder
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_in_process(folder: Path, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run a probe job in this process (trusted code only: no isolation, no guard)."""
    logging.getLogger(harness.CANDIDATE_PACKAGE).setLevel(logging.ERROR)
    with InProcessExecutor._lock:
        candidate = harness.Candidate(folder, contract=reference_contract, shipped=SHIPPED_CONTRACT[0].parent)
        return probe.run_probes(probe.validate_probe_job(job), arrays, candidate)


def read_results(out: Path) -> dict[str, Any] | str:
    """The probe runner's results document from a sandbox's output folder, or why it is unusable."""
    path = out / probe.PROBE_RESULTS_FILE
    if not path.is_file():
        return f"{probe.PROBE_RESULTS_FILE} is missing"
    if path.stat().st_size > RESULTS_LIMIT_BYTES:
        return f"{probe.PROBE_RESULTS_FILE} is larger than {RESULTS_LIMIT_BYTES} bytes"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return f"{probe.PROBE_RESULTS_FILE} is not valid JSON"
    if not isinstance(document, dict) or document.get("format") != probe.PROBE_RESULTS_FORMAT or not isinstance(
            document.get("results"), list):
        return f"{probe.PROBE_RESULTS_FILE} is not a {probe.PROBE_RESULTS_FORMAT} document"
    return document


def _differs(expected: Any, actual: Any, path: str) -> str | None:
    if isinstance(expected, dict) and "$array" in expected:
        if not isinstance(actual, dict) or "$array" not in actual:
            return f"{path}: expected an array, got {_show(actual)}"
        e, a = expected["$array"], actual["$array"]
        if e["shape"] != a.get("shape"):
            return f"{path}: expected shape {e['shape']}, got {a.get('shape')}"
        for i, (x, y) in enumerate(zip(e["values"], a.get("values") or [])):
            if not values_equal(float(x), float(y)):
                index = list(np.unravel_index(i, e["shape"])) if e["shape"] else []
                return f"{path}{index}: expected {_show(x)}, got {_show(y)}"
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(expected) != set(actual):
            return f"{path}: expected {_show(expected)}, got {_show(actual)}"
        for key in expected:
            found = _differs(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{path}: expected {len(expected)} items, got {_show(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            found = _differs(e, a, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(expected, float) and not isinstance(expected, bool):
        ok = isinstance(actual, int | float) and not isinstance(actual, bool) and values_equal(expected, float(actual))
        return None if ok else f"{path}: expected {_show(expected)}, got {_show(actual)}"
    if type(expected) is not type(actual) or expected != actual:
        return f"{path}: expected {_show(expected)}, got {_show(actual)}"
    return None


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _family(names: Sequence[str]) -> str:
    """The exception class a raising result must share: the reference's first built-in one."""
    import builtins

    return next((n for n in names if isinstance(getattr(builtins, n, None), type) and n not in (
        "BaseException", "Exception", "object")), "Exception")


def compare_results(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first difference as ``(failure class, message)``: ``crash`` (the answer raised where the
    reference returns, or its module failed), ``interface`` (a probed name is missing) or ``wrong``."""
    if actual.get("error"):
        error = actual["error"]
        return "crash", f"the module does not import: {error.get('message', '')}"
    got = {r.get("id"): r for r in actual.get("results") or [] if isinstance(r, dict)}
    for entry in expected["results"]:
        mine = got.get(entry["id"])
        if mine is None:
            return "crash", f"probe {entry['id']}: no result"
        if "missing" in mine:
            return "interface", f"the module defines no callable {mine['missing']!r}"
        want, have = entry["result"], mine.get("result") or {}
        if "raises" in want:
            family = _family(want["raises"])
            if "raises" not in have:
                return "wrong", (f"probe {entry['id']}: expected {family} ({want.get('message', '')[:120]}), "
                                 f"got {_show(have.get('value'))}")
            if family not in have["raises"]:
                return "wrong", f"probe {entry['id']}: expected {family}, got {have['raises'][0]}"
            wrong_place = {k: v for k, v in (want.get("where") or {}).items() if (have.get("where") or {}).get(k) != v}
            if wrong_place:
                name, value = next(iter(wrong_place.items()))
                return "wrong", (f"probe {entry['id']}: the {family} should name {name} {value!r}, "
                                 f"got {(have.get('where') or {}).get(name)!r}")
            continue
        if "raises" in have:
            return "crash", f"probe {entry['id']}: raised {have['raises'][0]}: {have.get('message', '')[:200]}"
        found = _differs(want, have, "result")
        if found:
            call = f" {entry['call']}" if entry.get("call") else ""
            return "wrong", f"probe {entry['id']}{call}: {found}"
    return None


def _call_text(probe: Mapping[str, Any]) -> str:
    """``f('a', 3, ...)``: a probe's call with its plain arguments shown and the others elided."""
    def shown(value: Any) -> str:
        return repr(value) if isinstance(value, str | int | float | bool) or value is None else "..."

    args = [shown(a) for a in probe.get("args") or []]
    args += [f"{k}={shown(v)}" for k, v in (probe.get("kwargs") or {}).items()]
    text = f"{probe.get('call') or probe.get('new')}({', '.join(args)})"
    return text if len(text) <= 160 else text[:157] + "..."


def expected_results(task: BenchTask, job: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The reference solution's results on a probe job of the task (run in this process: the reference is
    trusted), each entry naming its call.  Kept per task and job: every answer to a task is compared with
    the same document."""
    key = (task.digest, hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest())
    if key not in _EXPECTED:
        with subject_folder(subject_module(task)) as folder:
            document = run_in_process(folder, job, arrays)
        calls = {p["id"]: _call_text(p) for p in job["probes"]}
        for entry in document["results"]:
            entry["call"] = calls.get(entry["id"], "")
        _EXPECTED[key] = document
    return _EXPECTED[key]


_EXPECTED: dict[tuple[str, str], dict[str, Any]] = {}
