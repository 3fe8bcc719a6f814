"""The wire format: field for field the contract, lossless for the reference's outputs, strict on bad input."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from judge import compare, reference_runs, suites
from judge.harness import wire
from reference_sim import contract, engine


def test_schema_is_the_contract_field_for_field() -> None:
    for name, fields in wire.SCHEMA.items():
        cls = engine.LayerResult if name == "LayerResult" else getattr(contract, name)
        assert [f.name for f in dataclasses.fields(cls)] == list(fields), name


def _round_trip(type_name: str, value: Any) -> Any:
    encoder = wire.Encoder("k")
    data = encoder.encode(type_name, value)
    return wire.Decoder(contract, encoder.arrays).decode(type_name, data)


def test_reference_outputs_round_trip_on_the_whole_suite() -> None:
    checked = 0
    for workload in suites.default_suite():
        for ref in reference_runs.reference_run(workload, True):
            for type_name, value in (("Layer", ref.layer), ("LayerMapping", ref.mapping),
                                     ("NetworkSchedule", ref.schedule), ("MemoryResult", ref.memory),
                                     ("MemoryResult", ref.memory_untraced)):
                back = _round_trip(type_name, value)
                assert type(back) is type(value)
                assert compare.first_field_difference(value, back, type_name) is None
                checked += 1
        assert _round_trip("Hardware", workload.hardware) == workload.hardware
    assert checked >= 400


def _mapping_data() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    ref = reference_runs.reference_run(suites.default_suite()[0], False)[0]
    encoder = wire.Encoder()
    return encoder.encode("LayerMapping", ref.mapping), encoder.arrays


@pytest.mark.parametrize(("spoil", "path"), [
    (lambda d: d.pop("temporal"), "LayerMapping"),
    (lambda d: d.update(extra=1), "LayerMapping"),
    (lambda d: d.update(temporal="12"), "LayerMapping.temporal"),
    (lambda d: d.update(temporal=True), "LayerMapping.temporal"),
    (lambda d: d.update(mapping_efficiency="x"), "LayerMapping.mapping_efficiency"),
    (lambda d: d["tilings"]["ifmap"].update(prefetch_rollout=1), "LayerMapping.tilings.ifmap.prefetch_rollout"),
    (lambda d: d["ifmap"].update(kind="pickle"), "LayerMapping.ifmap"),
    (lambda d: d.update(fold_order=[{"$array": "nope"}, {"$array": "nope"}]), "LayerMapping.fold_order[0]"),
    (lambda d: d.update(fold_order=[1]), "LayerMapping.fold_order"),
    (lambda d: d["layer"].update(ifmap_h=-3), "LayerMapping.layer"),
    (lambda d: d.update(tilings={str(i): None for i in range(100)}), "LayerMapping.tilings"),
])
def test_bad_documents_fail_naming_the_field(spoil: Any, path: str) -> None:
    data, arrays = _mapping_data()
    spoil(data)
    with pytest.raises(wire.WireError) as caught:
        wire.Decoder(contract, arrays).decode("LayerMapping", data)
    assert caught.value.path == path


def test_object_arrays_are_refused() -> None:
    data, arrays = _mapping_data()
    arrays = {key: np.array([object()] * 3) for key in arrays}
    with pytest.raises(wire.WireError, match="dtype"):
        wire.Decoder(contract, arrays).decode("LayerMapping", data)


@pytest.mark.parametrize(("value", "message"), [
    (12.5, "expected an integer"), ("12", "expected an integer"), (True, "expected an integer"),
    (float("nan"), "expected an integer"),
])
def test_encoding_checks_what_a_module_returned(value: Any, message: str) -> None:
    ref = reference_runs.reference_run(suites.default_suite()[0], False)[0]
    bad = dataclasses.replace(ref.schedule, fold_cycles=value)
    with pytest.raises(wire.WireError, match=message) as caught:
        wire.Encoder().encode("NetworkSchedule", bad)
    assert caught.value.path == "NetworkSchedule.fold_cycles"


def test_encoding_accepts_look_alikes_with_the_contract_fields() -> None:
    ref = reference_runs.reference_run(suites.default_suite()[0], False)[0]

    class LookAlike:
        def __init__(self) -> None:
            for f in dataclasses.fields(ref.schedule):
                setattr(self, f.name, getattr(ref.schedule, f.name))

    encoder = wire.Encoder()
    data = encoder.encode("NetworkSchedule", LookAlike())
    assert wire.Decoder(contract, encoder.arrays).decode("NetworkSchedule", data) == ref.schedule
    with pytest.raises(wire.WireError, match="missing"):
        wire.Encoder().encode("NetworkSchedule", object())


@pytest.mark.parametrize(("array", "dtype"), [
    (np.array([[1, -1, 20_000_000]], dtype=np.int64), np.int32),
    (np.array([[1.0, -1.0, 3.0]]), np.int32),
    (np.array([[1.5, -1.0]]), np.float64),
    (np.array([[1, 2**40]], dtype=np.int64), np.int64),
    (np.array([[1, 2]], dtype=np.int8), np.int8),
    (np.array([[np.nan, 1.0]]), np.float64),
])
def test_arrays_are_stored_compactly_without_loss(array: np.ndarray, dtype: type) -> None:
    encoder = wire.Encoder()
    data = encoder.encode("TraceSet", contract.TraceSet(*([array] * 6)))
    stored = encoder.arrays[data["ifmap_sram"]["$array"]]
    assert stored.dtype == dtype
    np.testing.assert_array_equal(stored.astype(np.float64), array.astype(np.float64))
