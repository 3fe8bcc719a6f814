"""Readers for SCALE-Sim's own inputs: the ``.cfg`` architecture file and topology CSVs.

They accept what SCALE-Sim v2 accepts and reject what it would crash on or silently misread, with
an :class:`~reference_sim.errors.InputError` naming the file, line and field.  Blank lines and
title lines (a name with no numbers) in a topology are skipped with a warning.
"""

from __future__ import annotations

import configparser
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .contract import Dataflow, Hardware, Layer
from .errors import InputError
from .reports import folder_name_problem

log = logging.getLogger(__name__)

TopologyKind = Literal["conv", "gemm"]
CONV_FIELDS = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels", "Num Filter", "Strides")
GEMM_FIELDS = ("M", "N", "K")
DATAFLOWS: tuple[Dataflow, ...] = ("os", "ws", "is")


@dataclass(frozen=True)
class ScaleSimConfig:
    """Everything a SCALE-Sim ``.cfg`` says, with SCALE-Sim's names mapped to ours."""

    run_name: str
    """Also the folder of the reports (``OUTDIR/<run_name>/``): one path component, spaces allowed."""
    hardware: Hardware
    bandwidths: tuple[int, ...]
    """The ``Bandwidth`` list as written (SCALE-Sim uses only the first value); empty if absent."""
    memory_banks: int | None
    topology_path: str | None



MAX_ARRAY = 65_536
"""The most rows or columns of processing elements an array may have."""
MAX_SRAM_KIB = 16 * 1024 * 1024
"""The largest SRAM, KiB (16 GiB)."""
MAX_WORDS_PER_CYCLE = 1 << 20
"""The highest DRAM bandwidth, words per cycle."""
MAX_ADDRESS = 1 << 40
"""The highest address offset."""

def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read file ({exc.__class__.__name__}: {exc})") from None


def _key_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*[:=]", re.IGNORECASE)
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def read_config(path: str | Path) -> ScaleSimConfig:
    """Parse a SCALE-Sim v2 ``.cfg`` file."""
    path = Path(path)
    text = _read_text(path)
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(path, f"not a valid config file: {exc.message.splitlines()[0]}", line=line) from None

    def get(section: str, key: str) -> str:
        if not parser.has_section(section):
            raise InputError(path, f"missing section [{section}]")
        if not parser.has_option(section, key):
            raise InputError(path, "missing", field=f"[{section}] {key}")
        return parser.get(section, key).strip()

    def get_int(section: str, key: str, *, minimum: int, maximum: int = MAX_ADDRESS) -> int:
        raw = get(section, key)
        try:
            value = int(raw)
        except ValueError:
            raise InputError(path, f"{raw!r} is not an integer", line=_key_line(text, key),
                             field=f"[{section}] {key}") from None
        if value < minimum:
            bound = "positive" if minimum == 1 else f"at least {minimum}"
            raise InputError(path, f"must be {bound}, got {value}", line=_key_line(text, key),
                             field=f"[{section}] {key}")
        if value > maximum:
            raise InputError(path, f"must be at most {maximum:,}, got {value:,}", line=_key_line(text, key),
                             field=f"[{section}] {key}")
        return value

    arch = "architecture_presets"
    run_name = get("general", "run_name")
    problem = folder_name_problem(run_name)
    if problem is not None:
        raise InputError(path, problem, line=_key_line(text, "run_name"), field="[general] run_name")
    mode = get("run_presets", "InterfaceBandwidth")
    if mode not in ("USER", "CALC"):
        raise InputError(path, f"must be USER or CALC, got {mode!r}", line=_key_line(text, "InterfaceBandwidth"),
                         field="[run_presets] InterfaceBandwidth")
    dataflow = get(arch, "Dataflow").lower()
    if dataflow not in DATAFLOWS:
        raise InputError(path, f"unknown dataflow {get(arch, 'Dataflow')!r} (expected os, ws or is)",
                         line=_key_line(text, "Dataflow"), field=f"[{arch}] Dataflow")
    bandwidths: tuple[int, ...] = ()
    if parser.has_option(arch, "Bandwidth"):
        raw = get(arch, "Bandwidth")
        try:
            bandwidths = tuple(int(x.strip()) for x in raw.split(","))
        except ValueError:
            raise InputError(path, f"{raw!r} is not an integer (or comma-separated integers)",
                             line=_key_line(text, "Bandwidth"), field=f"[{arch}] Bandwidth") from None
        if any(b > MAX_WORDS_PER_CYCLE for b in bandwidths):
            raise InputError(path, f"must be at most {MAX_WORDS_PER_CYCLE:,} words per cycle",
                             line=_key_line(text, "Bandwidth"), field=f"[{arch}] Bandwidth")
        if any(b < 1 for b in bandwidths):
            raise InputError(path, f"must be positive, got {raw!r}", line=_key_line(text, "Bandwidth"),
                             field=f"[{arch}] Bandwidth")
    if mode == "USER" and not bandwidths:
        raise InputError(path, "missing (required with InterfaceBandwidth: USER)", field=f"[{arch}] Bandwidth")
    memory_banks = get_int(arch, "MemoryBanks", minimum=1) if parser.has_option(arch, "MemoryBanks") else None
    topology = None
    if parser.has_section("network_presets") and parser.has_option("network_presets", "TopologyCsvLoc"):
        topology = parser.get("network_presets", "TopologyCsvLoc").strip().strip('"')
    hardware = Hardware(
        array_rows=get_int(arch, "ArrayHeight", minimum=1, maximum=MAX_ARRAY),
        array_cols=get_int(arch, "ArrayWidth", minimum=1, maximum=MAX_ARRAY),
        dataflow=dataflow,
        ifmap_sram_kib=get_int(arch, "IfmapSramSzkB", minimum=1, maximum=MAX_SRAM_KIB),
        filter_sram_kib=get_int(arch, "FilterSramSzkB", minimum=1, maximum=MAX_SRAM_KIB),
        ofmap_sram_kib=get_int(arch, "OfmapSramSzkB", minimum=1, maximum=MAX_SRAM_KIB),
        ifmap_offset=get_int(arch, "IfmapOffset", minimum=0),
        filter_offset=get_int(arch, "FilterOffset", minimum=0),
        ofmap_offset=get_int(arch, "OfmapOffset", minimum=0),
        bandwidth_mode=mode,  # type: ignore[arg-type]
        dram_words_per_cycle=bandwidths[0] if bandwidths else 10,
    )
    return ScaleSimConfig(run_name, hardware, bandwidths, memory_banks, topology)


def _fields(line: str) -> list[str]:
    """Comma-separated fields, without trailing empty ones; a field starting with ``#`` starts a comment."""
    fields = [f.strip() for f in line.split(",")]
    comment = next((i for i, f in enumerate(fields) if f.startswith("#")), None)
    if comment is not None:
        fields = fields[:comment]
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def _parse_int(path: Path, number: int, column: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InputError(path, "not an integer", line=number, field=column) from None
    if value < 1:
        raise InputError(path, f"must be positive, got {value}", line=number, field=column)
    return value


def parse_topology(path: str | Path, text: str, kind: TopologyKind = "conv") -> list[Layer]:
    """Parse topology CSV text (first line is the header) into layers."""
    path = Path(path)
    columns = CONV_FIELDS if kind == "conv" else GEMM_FIELDS
    layers: list[Layer] = []
    extra_warned = False
    for number, line in enumerate(text.splitlines(), start=1):
        if number == 1:
            continue
        fields = _fields(line)
        if not fields:
            if line.strip():
                log.warning("%s:%d: line of empty fields skipped", path, number)
            else:
                log.warning("%s:%d: blank line skipped", path, number)
            continue
        name, values = fields[0], fields[1:]
        if not any(v for v in values):
            if re.search(r"\d", name) and ("\t" in name or " " in name.strip()):
                raise InputError(path, "fields are not separated by commas", line=number)
            log.warning("%s:%d: not a layer (a title line: a name with no numbers); skipped", path, number)
            continue
        if len(values) < len(columns):
            raise InputError(
                path,
                f"expected {len(columns)} integers after the layer name ({', '.join(columns)}), found {len(values)}",
                line=number,
            )
        empty = next((col for col, v in zip(columns, values) if v == ""), None)
        if empty is not None:
            raise InputError(path, "missing value", line=number, field=empty)
        numbers = [_parse_int(path, number, col, raw) for col, raw in zip(columns, values)]
        rest = values[len(columns) :]
        if kind == "gemm":
            if any(rest):
                raise InputError(path, f"a GEMM row has 3 numbers (M, N, K), this one has {len(columns) + len(rest)}; "
                                       "is it a conv topology (-i conv)?", line=number)
            m, n, k = numbers
            layers.append(Layer(name, m, k, 1, k, 1, n, 1, 1))
            continue
        ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride_h = numbers
        stride_w = _parse_int(path, number, "Stride width", rest[0]) if rest and rest[0] != "" else stride_h
        if any(rest[1:]) and not extra_warned:
            log.warning("%s:%d: columns after the strides are ignored", path, number)
            extra_warned = True
        if filter_h > ifmap_h:
            raise InputError(path, f"filter height {filter_h} is larger than ifmap height {ifmap_h}", line=number)
        if filter_w > ifmap_w:
            raise InputError(path, f"filter width {filter_w} is larger than ifmap width {ifmap_w}", line=number)
        if "DP" in name:
            layers.extend(
                Layer(f"{name}Channel_{c}", ifmap_h, ifmap_w, filter_h, filter_w, 1, num_filters, stride_h, stride_w)
                for c in range(channels)
            )
        else:
            layers.append(
                Layer(name, ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride_h, stride_w)
            )
    if not layers:
        raise InputError(path, "topology has no layers")
    return layers


def read_topology(path: str | Path, kind: TopologyKind = "conv") -> list[Layer]:
    """Read a SCALE-Sim topology CSV: conv form, or ``M, N, K`` form with ``kind="gemm"``."""
    path = Path(path)
    return parse_topology(path, _read_text(path), kind)
