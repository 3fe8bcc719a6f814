"""The wire format: the contract's data as JSON plus numpy arrays, the one format host and harness share.

``simcoder-wire/1``.  A value of a contract type is written as a JSON object of its fields, following
:data:`SCHEMA` (the field kinds below); numpy arrays are taken out of the JSON and stored under a key
in a separate ``.npz`` (no pickle), the JSON holding ``{"$array": key}``; arrays whose values are
whole numbers in 32-bit range are stored as 32-bit integers (lossless: traces hold cycles and
addresses).  Encoding reads attributes by name, so any object with the contract's fields encodes
(a candidate's own copy of the contract, or a look-alike); decoding checks every field's kind and
builds the classes of the contract module it is given, so a hostile document fails with a
:class:`WireError` naming the field, never builds anything else.

Field kinds: ``int``, ``float``, ``str``, ``bool``, ``array`` (numeric), a type name of the schema,
``operand`` (a ``WindowOperand`` or ``AffineOperand`` by its ``kind``), ``dict:K`` (string keys),
``pair:K`` (a sequence of two), ``opt:K`` (or null).

This file is shipped into the sandbox with the harness: numpy and the standard library only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

WIRE_FORMAT = "simcoder-wire/1"

_TRACES = ("ifmap_sram", "filter_sram", "ofmap_sram", "ifmap_dram", "filter_dram", "ofmap_dram")

SCHEMA: dict[str, dict[str, str]] = {
    "Layer": {"name": "str", "ifmap_h": "int", "ifmap_w": "int", "filter_h": "int", "filter_w": "int",
              "channels": "int", "num_filters": "int", "stride_h": "int", "stride_w": "int"},
    "Hardware": {"array_rows": "int", "array_cols": "int", "dataflow": "str", "ifmap_sram_kib": "int",
                 "filter_sram_kib": "int", "ofmap_sram_kib": "int", "ifmap_offset": "int", "filter_offset": "int",
                 "ofmap_offset": "int", "bandwidth_mode": "str", "dram_words_per_cycle": "int", "word_bytes": "int"},
    "WindowOperand": {"offset": "int", "ifmap_h": "int", "ifmap_w": "int", "channels": "int", "filter_h": "int",
                      "filter_w": "int", "stride_h": "int", "stride_w": "int", "ofmap_h": "int", "ofmap_w": "int",
                      "kind": "str"},
    "AffineOperand": {"offset": "int", "n_rows": "int", "n_cols": "int", "row_stride": "int", "col_stride": "int",
                      "kind": "str"},
    "OperandTiling": {"lane_axis": "str", "lane_fold": "str", "step_fold": "str", "lanes": "int",
                      "prefetch_rollout": "bool"},
    "LayerMapping": {"layer": "Layer", "dataflow": "str", "array_rows": "int", "array_cols": "int",
                     "spatial_rows": "int", "spatial_cols": "int", "temporal": "int", "row_folds": "int",
                     "col_folds": "int", "fold_order": "pair:array", "ifmap": "operand", "filter": "operand",
                     "ofmap": "operand", "tilings": "dict:OperandTiling", "mapping_efficiency": "float",
                     "compute_utilisation": "float", "sram_reads_ifmap": "int", "sram_reads_filter": "int",
                     "sram_writes_ofmap": "int"},
    "OperandTiming": {"start_step": "int", "flip_steps": "int", "skew": "bool"},
    "DramPort": {"words_per_cycle": "int", "latency_cycles": "int"},
    "NetworkSchedule": {"fold_cycles": "int", "timing": "dict:OperandTiming", "ports": "dict:DramPort",
                        "bandwidth_mode": "str"},
    "TraceSet": dict.fromkeys(_TRACES, "array"),
    "MemoryResult": {"total_cycles": "int", "stall_cycles": "int", "sram_start_stop": "dict:pair:float",
                     "dram_start_stop": "dict:pair:float", "dram_accesses": "dict:int", "traces": "opt:TraceSet"},
    "LayerResult": {"index": "int", "name": "str", "total_cycles": "int", "stall_cycles": "int",
                    "overall_util_pct": "float", "mapping_efficiency_pct": "float", "compute_util_pct": "float",
                    "sram_accesses": "dict:int", "sram_start_stop": "dict:pair:float",
                    "dram_start_stop": "dict:pair:float", "dram_accesses": "dict:int", "traces": "opt:TraceSet"},
}
"""Every wire type and its fields (the contract's dataclasses and the engine's ``LayerResult``, field for field)."""

STAGE_TYPES = {"mapping": "LayerMapping", "network": "NetworkSchedule", "memory": "MemoryResult"}
"""The type each stage's function returns."""

MAX_DICT_ENTRIES = 16
MAX_DEPTH = 8


class WireError(ValueError):
    """A value does not fit the wire format; ``path`` names the field (``LayerMapping.tilings.ifmap.lanes``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Encoder:
    """Encodes values into JSON-ready data, collecting arrays under keys that start with ``prefix``."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, type_name: str, value: Any, path: str | None = None) -> dict[str, Any]:
        """``value`` (any object with the fields of ``type_name``) as JSON-ready data; errors name fields from
        ``path`` (default: the type name)."""
        data = self._value(path or type_name, type_name, value, 0)
        assert isinstance(data, dict)
        return data

    def _value(self, path: str, kind: str, value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(path, "nested too deep")
        if kind.startswith("opt:"):
            return None if value is None else self._value(path, kind[4:], value, depth + 1)
        if kind.startswith("dict:"):
            if not isinstance(value, Mapping):
                raise WireError(path, f"expected a dict, got {type(value).__name__}")
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise WireError(path, f"dict key {_show(key)} is not a string")
                out[key] = self._value(f"{path}.{key}", kind[5:], item, depth + 1)
            return out
        if kind.startswith("pair:"):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
                raise WireError(path, f"expected a pair, got {_show(value)}")
            return [self._value(f"{path}[{i}]", kind[5:], value[i], depth + 1) for i in range(2)]
        if kind == "operand":
            operand_kind = getattr(value, "kind", None)
            type_name = {"window": "WindowOperand", "affine": "AffineOperand"}.get(str(operand_kind))
            if type_name is None:
                raise WireError(path, f"operand kind {_show(operand_kind)} is neither 'window' nor 'affine'")
            return self._value(path, type_name, value, depth + 1)
        if kind in SCHEMA:
            fields: dict[str, Any] = {}
            for name, field_kind in SCHEMA[kind].items():
                try:
                    item = getattr(value, name)
                except Exception:
                    raise WireError(f"{path}.{name}", f"missing (the {type(value).__name__} has no {name})") from None
                fields[name] = self._value(f"{path}.{name}", field_kind, item, depth + 1)
            return fields
        return _scalar(path, kind, value, self)


def _scalar(path: str, kind: str, value: Any, encoder: Encoder) -> Any:
    if kind == "int":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise WireError(path, f"expected an integer, got {_show(value)}")
        if isinstance(value, numbers.Integral):
            return int(value)
        number = float(value)
        if not math.isfinite(number) or not number.is_integer():
            raise WireError(path, f"expected an integer, got {_show(value)}")
        return int(number)
    if kind == "float":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise WireError(path, f"expected a number, got {_show(value)}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise WireError(path, f"expected a string, got {_show(value)}")
        return value
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise WireError(path, f"expected True or False, got {_show(value)}")
        return bool(value)
    if kind == "array":
        try:
            array = np.asarray(value)
        except Exception as exc:
            raise WireError(path, f"not an array ({type(exc).__name__})") from None
        if array.dtype.kind not in "biuf" or array.ndim == 0:
            raise WireError(path, f"expected a numeric array, got dtype {array.dtype} with {array.ndim} dimensions")
        key = f"{encoder.prefix}{len(encoder.arrays)}"
        encoder.arrays[key] = _compact(array)
        return {"$array": key}
    raise WireError(path, f"unknown field kind {kind!r}")


_INT32 = np.iinfo(np.int32)


def _compact(array: np.ndarray) -> np.ndarray:
    """The array as 32-bit integers when that loses nothing (traces hold cycles and addresses), else as is."""
    if array.size == 0 or array.dtype.itemsize <= 4:
        return array
    if array.dtype.kind in "iub":
        low, high = int(array.min()), int(array.max())
        return array.astype(np.int32) if _INT32.min <= low and high <= _INT32.max else array
    if array.dtype.kind == "f" and bool(np.isfinite(array).all()):
        low_f, high_f = float(array.min()), float(array.max())
        if _INT32.min <= low_f and high_f <= _INT32.max and bool((array == np.trunc(array)).all()):
            return array.astype(np.int32)
    return array


class Decoder:
    """Builds contract objects from JSON data and arrays, with the classes of ``contract`` (a module, or any
    object with the classes as attributes)."""

    def __init__(self, contract: Any, arrays: Mapping[str, np.ndarray]) -> None:
        self.contract = contract
        self.arrays = arrays

    def decode(self, type_name: str, data: Any, path: str | None = None) -> Any:
        """A ``type_name`` built from ``data``; errors name fields from ``path`` (default: the type name)."""
        return self._value(path or type_name, type_name, data, 0)

    def _value(self, path: str, kind: str, data: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(path, "nested too deep")
        if kind.startswith("opt:"):
            return None if data is None else self._value(path, kind[4:], data, depth + 1)
        if kind.startswith("dict:"):
            if not isinstance(data, dict) or len(data) > MAX_DICT_ENTRIES:
                raise WireError(path, f"expected a dict of at most {MAX_DICT_ENTRIES} entries")
            return {str(k): self._value(f"{path}.{k}", kind[5:], v, depth + 1) for k, v in data.items()}
        if kind.startswith("pair:"):
            if not isinstance(data, list) or len(data) != 2:
                raise WireError(path, "expected a pair")
            return tuple(self._value(f"{path}[{i}]", kind[5:], data[i], depth + 1) for i in range(2))
        if kind == "operand":
            kind = {"window": "WindowOperand", "affine": "AffineOperand"}.get(
                str(data.get("kind")) if isinstance(data, dict) else "", "")
            if not kind:
                raise WireError(path, "operand kind is neither 'window' nor 'affine'")
        if kind in SCHEMA:
            fields = SCHEMA[kind]
            if not isinstance(data, dict) or set(data) != set(fields):
                got = sorted(data) if isinstance(data, dict) else type(data).__name__
                raise WireError(path, f"expected the fields {sorted(fields)}, got {got}")
            kwargs = {name: self._value(f"{path}.{name}", field_kind, data[name], depth + 1)
                      for name, field_kind in fields.items()}
            cls = getattr(self.contract, kind, None)
            if cls is None:
                raise WireError(path, f"the contract defines no {kind}")
            try:
                return cls(**kwargs)
            except (TypeError, ValueError) as exc:
                raise WireError(path, f"not a valid {kind}: {exc}") from None
        return self._scalar(path, kind, data)

    def _scalar(self, path: str, kind: str, data: Any) -> Any:
        if kind == "int":
            if isinstance(data, bool) or not isinstance(data, int):
                raise WireError(path, f"expected an integer, got {_show(data)}")
            return data
        if kind == "float":
            if isinstance(data, bool) or not isinstance(data, (int, float)):
                raise WireError(path, f"expected a number, got {_show(data)}")
            return float(data)
        if kind == "str":
            if not isinstance(data, str):
                raise WireError(path, f"expected a string, got {_show(data)}")
            return data
        if kind == "bool":
            if not isinstance(data, bool):
                raise WireError(path, f"expected True or False, got {_show(data)}")
            return data
        if kind == "array":
            key = data.get("$array") if isinstance(data, dict) and len(data) == 1 else None
            if not isinstance(key, str) or key not in self.arrays:
                raise WireError(path, "expected an array reference")
            array = self.arrays[key]
            if array.dtype.kind not in "biuf":
                raise WireError(path, f"array of dtype {array.dtype}")
            return array
        raise WireError(path, f"unknown field kind {kind!r}")

