"""The probe runner: calls functions and classes of one candidate module and writes what they return.

A benchmark task below the pipeline's stages (a topology parser, a contract helper) is judged by
*probes*: calls with given arguments.  This program runs them inside the sandbox, next to the
candidate's module (``subject.py``), with the harness's guard on; the host runs the same probes on
the reference solution and compares.  Like the harness it computes nothing itself and holds no
expected result.

Job (``probe.json``, format :data:`PROBE_FORMAT`, arrays in ``inputs.npz``)::

    {"format": ..., "module": "subject", "probes": [
      {"id": "...", "call": "parse_topology", "args": [...], "kwargs": {...}},
      {"id": "...", "new": "Layer", "args": [...], "then": [{"get": "ofmap_h"}, {"call": "addresses", "args": [...]}]}]}

An argument is JSON, ``{"$array": key}`` (an input array) or ``{"$wire": type, "value": ...}`` (a
contract value in the wire format, built from the subject's own contract classes when it defines
them, else from the contract the candidate sees).  Results (``probe-results.json``, format
:data:`PROBE_RESULTS_FORMAT`): per probe the encoded values (:func:`encode`) of the call and of each
``then`` step, or ``{"raises": [class names of the exception's MRO]}``; the module's import fault;
the guard's refusals.

Standard library, numpy, :mod:`wire`, :mod:`rules` and :mod:`harness` only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import harness, rules, wire

logger = logging.getLogger(__name__)

PROBE_FORMAT = "simcoder-probe/1"
PROBE_RESULTS_FORMAT = "simcoder-probe-results/1"
PROBE_FILE = "probe.json"
PROBE_RESULTS_FILE = "probe-results.json"
SUBJECT = "subject"
MAX_ENCODED_ITEMS = 200_000
MAX_DEPTH = 6


class ProbeJobError(ValueError):
    """The probe job is malformed."""


def encode(value: Any, depth: int = 0) -> Any:
    """A returned value as plain JSON: numbers, strings, lists, string-keyed dicts, ``{"$array"}`` and ``{"$object"}``.

    numpy arrays keep their shape and values (``{"$array": {"shape": [...], "values": [...]}}``);
    dataclasses become ``{"$object": class name, "fields": {...}}``; anything else ``{"$other": type name}``.
    """
    if depth > MAX_DEPTH:
        return {"$other": "too deep"}
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else {"$float": repr(number)}
    if isinstance(value, np.ndarray):
        if value.size > MAX_ENCODED_ITEMS:
            return {"$other": f"array of {value.size} items"}
        if value.dtype.kind not in "biuf":
            return {"$other": f"array of dtype {value.dtype}"}
        return {"$array": {"shape": list(value.shape), "values": value.astype(np.float64).reshape(-1).tolist()}}
    if isinstance(value, list | tuple):
        return [encode(v, depth + 1) for v in value[:MAX_ENCODED_ITEMS]]
    if isinstance(value, dict):
        return {str(k): encode(v, depth + 1) for k, v in list(value.items())[:1000]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"$object": type(value).__name__,
                "fields": {f.name: encode(getattr(value, f.name, None), depth + 1) for f in dataclasses.fields(value)}}
    return {"$other": type(value).__name__}


WHERE_ATTRIBUTES = ("source", "line", "field")
"""Attributes of an input error that say where the input is wrong (compared when the reference's error has them)."""


def _raises(exc: BaseException) -> dict[str, Any]:
    where = {name: getattr(exc, name) for name in WHERE_ATTRIBUTES
             if isinstance(getattr(exc, name, None), str | int) or (hasattr(exc, name) and getattr(exc, name) is None)}
    return {"raises": [cls.__name__ for cls in type(exc).__mro__], "message": str(exc)[:300], "where": where}


class _Arguments:
    def __init__(self, arrays: Mapping[str, np.ndarray], contract: Any) -> None:
        self.arrays = arrays
        self.contract = contract

    def value(self, raw: Any) -> Any:
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if isinstance(raw, dict):
            if set(raw) == {"$array"}:
                key = str(raw["$array"])
                if key not in self.arrays:
                    raise ProbeJobError(f"no input array {key!r}")
                return self.arrays[key]
            if set(raw) == {"$wire", "value"}:
                return wire.Decoder(self.contract, self.arrays).decode(str(raw["$wire"]), raw["value"])
            if set(raw) == {"$tuple"}:
                return tuple(self.value(v) for v in raw["$tuple"])
            return {str(k): self.value(v) for k, v in raw.items()}
        return raw


def run_probe(probe: Mapping[str, Any], module: Any, arguments: _Arguments) -> dict[str, Any]:
    """One probe's result entry (the candidate's exceptions are results, not faults)."""
    entry: dict[str, Any] = {"id": probe["id"]}
    name = str(probe.get("call") or probe.get("new") or "")
    target = getattr(module, name, None)
    if not callable(target):
        entry["missing"] = name
        return entry
    args = arguments.value(list(probe.get("args") or []))
    kwargs = arguments.value(dict(probe.get("kwargs") or {}))
    try:
        result = target(*args, **kwargs)
    except Exception as exc:
        entry["result"] = _raises(exc)
        return entry
    if "new" not in probe:
        entry["result"] = {"value": encode(result)}
        return entry
    steps: list[dict[str, Any]] = []
    for step in probe.get("then") or []:
        try:
            if "get" in step:
                steps.append({"value": encode(getattr(result, str(step["get"])))})
            else:
                method = getattr(result, str(step["call"]))
                steps.append({"value": encode(method(*arguments.value(list(step.get("args") or [])),
                                                      **arguments.value(dict(step.get("kwargs") or {}))))})
        except Exception as exc:
            steps.append(_raises(exc))
    entry["result"] = {"value": encode(result), "steps": steps}
    return entry


def validate_probe_job(job: Any) -> dict[str, Any]:
    """Check the job's shape; raises :class:`ProbeJobError`."""
    if not isinstance(job, dict) or job.get("format") != PROBE_FORMAT:
        raise ProbeJobError(f"the job is not a {PROBE_FORMAT} document")
    probes = job.get("probes")
    if not isinstance(probes, list) or not probes or not all(
            isinstance(p, dict) and isinstance(p.get("id"), str) and (p.get("call") or p.get("new")) for p in probes):
        raise ProbeJobError("job.probes must be a non-empty list of {id, call|new, args}")
    return job


def run_probes(job: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
               candidate: harness.Candidate) -> dict[str, Any]:
    """Every probe of the job over the candidate's subject module: the results document."""
    start = time.perf_counter()
    name = str(job.get("module") or SUBJECT)
    document: dict[str, Any] = {"format": PROBE_RESULTS_FORMAT, "results": [], "error": None, "refused": []}
    try:
        module = candidate.module(name)
        contract = module if hasattr(module, "LayerMapping") else candidate.contract()
    except harness.ModuleFault as fault:
        document["error"] = fault.as_dict()
        document["refused"] = candidate.guard.take()
        return document
    arguments = _Arguments(arrays, contract)
    for probe in job["probes"]:
        with candidate.guard.on():
            document["results"].append(run_probe(probe, module, arguments))
    document["refused"] = candidate.guard.take()
    document["seconds"] = round(time.perf_counter() - start, 4)
    return document


@harness.ends_process
def main(argv: list[str] | None = None) -> int:
    """Entry point in the sandbox: 0 when the job ran (the candidate's faults are in the results), 2 on a bad job."""
    logging.basicConfig(level=logging.WARNING, format="probe: %(message)s")
    sys.dont_write_bytecode = True
    paths = harness.SandboxPaths.from_environment()
    try:
        job, arrays = paths.read_job(PROBE_FILE, validate_probe_job)
    except (OSError, ValueError) as exc:
        logger.error("bad probe job in %s: %s", paths.inputs, exc)
        return 2
    try:
        document = run_probes(job, arrays, paths.guarded_candidate(rules.PROBE_STDLIB))
    except ProbeJobError as exc:
        logger.error("bad probe job: %s", exc)
        return 2
    paths.write_result(PROBE_RESULTS_FILE, document)
    return 0
