"""Harness jobs: the tasks a verification asks of the candidate, the job document and input arrays that
carry them (the reference's stage outputs where a task starts past the mapping), and each task's output
decoded with the reference's contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from judge.executors import Execution
from judge.harness import harness, wire
from judge.reference_runs import reference_run
from judge.suites import Workload
from reference_sim import contract as reference_contract
from reference_sim.contract import Layer, LayerMapping, MemoryResult, NetworkSchedule

ROLES: tuple[str, ...] = harness.STAGES


@dataclass(frozen=True)
class Task:
    """One harness task: stages ``start``..``stop`` of the candidate over a workload's layers."""

    id: str
    workload: Workload
    start: str
    stop: str
    traces: bool


def make_job(tasks: Sequence[Task], workers: int = 1) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The harness's job document and its input arrays (the reference's stage outputs where a task needs them)."""
    encoder = wire.Encoder(prefix="in.")
    documents: list[dict[str, Any]] = []
    for task in tasks:
        first = ROLES.index(task.start)
        layers: list[dict[str, Any]] = []
        reference = reference_run(task.workload, False) if first > 0 else ()
        for i, layer in enumerate(task.workload.layers):
            entry: dict[str, Any] = {"layer": encoder.encode("Layer", layer), "mapping": None, "schedule": None}
            if first > 0:
                entry["mapping"] = encoder.encode("LayerMapping", reference[i].mapping)
            if first > 1:
                entry["schedule"] = encoder.encode("NetworkSchedule", reference[i].schedule)
            layers.append(entry)
        documents.append({"id": task.id, "start": task.start, "stop": task.stop, "traces": task.traces,
                          "hardware": encoder.encode("Hardware", task.workload.hardware), "layers": layers})
    return {"format": harness.JOB_FORMAT, "workers": workers, "tasks": documents}, encoder.arrays


@dataclass(frozen=True)
class StageOutputs:
    """One layer's outputs of the stages a task ran."""

    layer: Layer
    mapping: LayerMapping | None = None
    schedule: NetworkSchedule | None = None
    memory: MemoryResult | None = None


@dataclass(frozen=True)
class TaskRun:
    """One task's decoded outputs per layer, its error (a module fault) and what the guard refused."""

    layers: tuple[StageOutputs, ...]
    error: dict[str, Any] | None
    refused: tuple[str, ...]


def read_task(execution: Execution, index: int, task: Task) -> TaskRun:
    """Decode task ``index`` with the reference's contract; a malformed stage output is that module's fault."""
    assert execution.manifest is not None and execution.arrays is not None
    entry = execution.manifest["tasks"][index]
    refused = tuple(str(r)[:300] for r in entry.get("refused") or ())[:20]
    error = entry.get("error") if isinstance(entry.get("error"), dict) else None
    if entry.get("status") != "ok" and error is None:
        error = {"module": "harness", "stage": "call", "message": f"task status {entry.get('status')!r}"}
    arrays = execution.arrays(index)
    decoder = wire.Decoder(reference_contract, arrays)
    layers: list[StageOutputs] = []
    for i, data in enumerate(entry["layers"][:len(task.workload.layers)]):
        values: dict[str, Any] = {}
        for stage in ROLES[ROLES.index(task.start):ROLES.index(task.stop) + 1]:
            key = harness.OUTPUT_KEYS[stage]
            try:
                values[key] = decoder.decode(wire.STAGE_TYPES[stage], data.get(key) if isinstance(data, dict)
                                             else None)
            except wire.WireError as exc:
                return TaskRun(tuple(layers), {"module": stage, "stage": "result", "layer": i,
                                               "message": f"its output does not fit the contract: {exc}"}, refused)
        layers.append(StageOutputs(task.workload.layers[i], **values))
    return TaskRun(tuple(layers), error, refused)
