"""The native architecture spec, ``scale_sim.yaml``: validated, typed, units in every name.

Only this module needs pydantic and PyYAML; the simulator core does not import it.  A bad file
raises :class:`~reference_sim.errors.InputError` naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar, overload

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    PositiveInt,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from .contract import Hardware, Layer
from .errors import InputError
from .reports import folder_name_problem
from .scalesim_io import MAX_ARRAY, MAX_SRAM_KIB, MAX_WORDS_PER_CYCLE, read_topology

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _folder_name(value: str) -> str:
    problem = folder_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


FolderName = Annotated[str, AfterValidator(_folder_name)]
"""A name that is also a folder of reports: a single path component (see ``reports.folder_name_problem``)."""


WordsPerCycle = Annotated[int, Field(gt=0, le=MAX_WORDS_PER_CYCLE)]


class ArrayShape(_Strict):
    """The systolic array: ``rows`` processing elements high, ``cols`` wide."""

    rows: Annotated[int, Field(gt=0, le=MAX_ARRAY)]
    cols: Annotated[int, Field(gt=0, le=MAX_ARRAY)]


class SramKiB(_Strict):
    """Capacity of each double-buffered SRAM in KiB (SCALE-Sim's ``*SramSzkB``)."""

    ifmap: Annotated[int, Field(gt=0, le=MAX_SRAM_KIB)]
    filter: Annotated[int, Field(gt=0, le=MAX_SRAM_KIB)]
    ofmap: Annotated[int, Field(gt=0, le=MAX_SRAM_KIB)]


class AddressOffsets(_Strict):
    """First word address of each operand in the shared address space."""

    ifmap: NonNegativeInt = 0
    filter: NonNegativeInt = 10_000_000
    ofmap: NonNegativeInt = 20_000_000


class Dram(_Strict):
    """The SRAM<->DRAM interface."""

    bandwidth_mode: Literal["CALC", "USER"] = "CALC"
    """``USER``: ``words_per_cycle`` on every interface; ``CALC``: SCALE-Sim's bandwidth estimate."""
    words_per_cycle: WordsPerCycle | list[WordsPerCycle] = 10
    """DRAM words per cycle (a list as in SCALE-Sim's ``Bandwidth``; only the first value is used)."""

    @property
    def first_words_per_cycle(self) -> int:
        value = self.words_per_cycle
        return value[0] if isinstance(value, list) else value

    @field_validator("words_per_cycle")
    @classmethod
    def _non_empty(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one value")
        return value


class Architecture(_Strict):
    """The accelerator: array, dataflow, SRAMs, address map and DRAM interface."""

    array: ArrayShape
    dataflow: Literal["os", "ws", "is"]
    sram_kib: SramKiB
    address_offsets: AddressOffsets = AddressOffsets()
    dram: Dram = Dram()
    memory_banks: PositiveInt | None = None
    """Kept from SCALE-Sim configs for lossless conversion; SCALE-Sim v2 does not use it."""


class ConvLayer(_Strict):
    """A convolution layer, as a row of SCALE-Sim's conv topology CSV."""

    name: str
    ifmap_h: PositiveInt
    ifmap_w: PositiveInt
    filter_h: PositiveInt
    filter_w: PositiveInt
    channels: PositiveInt
    num_filters: PositiveInt
    stride_h: PositiveInt = 1
    stride_w: PositiveInt | None = None
    """Defaults to ``stride_h``."""

    @model_validator(mode="after")
    def _filter_fits(self) -> ConvLayer:
        if self.filter_h > self.ifmap_h:
            raise ValueError(f"filter_h {self.filter_h} is larger than ifmap_h {self.ifmap_h}")
        if self.filter_w > self.ifmap_w:
            raise ValueError(f"filter_w {self.filter_w} is larger than ifmap_w {self.ifmap_w}")
        return self

    def to_layer(self) -> Layer:
        return Layer(self.name, self.ifmap_h, self.ifmap_w, self.filter_h, self.filter_w, self.channels,
                     self.num_filters, self.stride_h, self.stride_w or self.stride_h)


class GemmLayer(_Strict):
    """A matrix multiply ``(M x K) . (K x N)``, as a row of SCALE-Sim's GEMM topology CSV."""

    name: str
    m: PositiveInt
    n: PositiveInt
    k: PositiveInt

    def to_layer(self) -> Layer:
        return Layer(self.name, self.m, self.k, 1, self.k, 1, self.n, 1, 1)


def _layer_kind(value: Any) -> str:
    return "gemm" if isinstance(value, dict) and "m" in value else "conv"


LayerSpec = Annotated[
    Annotated[ConvLayer, Tag("conv")] | Annotated[GemmLayer, Tag("gemm")], Discriminator(_layer_kind)
]


class Workload(_Strict):
    """A named list of layers: inline, or a SCALE-Sim topology CSV (path relative to the spec file)."""

    name: FolderName
    """Also the folder of its reports (``OUTDIR/<spec name>/<workload name>/``): one path component."""
    layers: list[LayerSpec] | None = None
    topology: str | None = None
    format: Literal["conv", "gemm"] = "conv"
    """Form of ``topology``: conv rows or ``M, N, K`` rows."""

    @model_validator(mode="after")
    def _one_source(self) -> Workload:
        if (self.layers is None) == (self.topology is None):
            raise ValueError("give exactly one of 'layers' or 'topology'")
        if self.layers is not None and not self.layers:
            raise ValueError("'layers' is empty")
        return self


class ArchitectureVariant(_Strict):
    """An architecture the verifier also checks: the spec's own with these fields replaced."""

    name: str
    dataflow: Literal["os", "ws", "is"] | None = None
    bandwidth_mode: Literal["CALC", "USER"] | None = None
    words_per_cycle: WordsPerCycle | None = None
    sram_kib: SramKiB | None = None
    array: ArrayShape | None = None


class Verification(_Strict):
    """What the verifier runs a candidate on."""

    workloads: list[str]
    """Names of workloads (small edge-case layers) checked trace by trace."""
    variants: list[ArchitectureVariant] = Field(default_factory=lambda: [ArchitectureVariant(name="spec")])
    final_check: list[str] = Field(default_factory=list)
    """Workloads (whole networks) checked by cycle totals once the traces match."""


OTHER_TOOLS_SECTIONS = ("modules", "model", "budget", "generate", "features")
"""Top-level sections that tools built on the simulator read (SimulatorCoder's agents: ``agents.spec``).

The simulator accepts them without looking inside, so one file serves both; the tool that reads a section
validates it."""


class Spec(_Strict):
    """A whole ``scale_sim.yaml``."""

    schema_version: int
    name: FolderName
    """Also the folder of its reports (``OUTDIR/<spec name>/``): one path component."""
    architecture: Architecture
    workloads: list[Workload] = Field(default_factory=list)
    verification: Verification | None = None
    modules: Any = None
    model: Any = None
    budget: Any = None
    generate: Any = None
    features: Any = None
    """:data:`OTHER_TOOLS_SECTIONS`: not the simulator's (see ``agents.spec.AgentSpec``)."""

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {value} (this release reads {SCHEMA_VERSION})")
        return value

    @model_validator(mode="after")
    def _names(self) -> Spec:
        names = [w.name for w in self.workloads]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"workload names repeat: {', '.join(duplicates)}")
        if self.verification is not None:
            unknown = [n for n in [*self.verification.workloads, *self.verification.final_check] if n not in names]
            if unknown:
                raise ValueError(f"verification names unknown workloads: {', '.join(unknown)}")
        return self

    def hardware(self, variant: ArchitectureVariant | None = None) -> Hardware:
        """The simulator's view of the architecture, optionally with a verification variant applied."""
        arch = self.architecture
        v = variant or ArchitectureVariant(name="spec")
        array = v.array or arch.array
        sram = v.sram_kib or arch.sram_kib
        return Hardware(
            array_rows=array.rows,
            array_cols=array.cols,
            dataflow=v.dataflow or arch.dataflow,
            ifmap_sram_kib=sram.ifmap,
            filter_sram_kib=sram.filter,
            ofmap_sram_kib=sram.ofmap,
            ifmap_offset=arch.address_offsets.ifmap,
            filter_offset=arch.address_offsets.filter,
            ofmap_offset=arch.address_offsets.ofmap,
            bandwidth_mode=v.bandwidth_mode or arch.dram.bandwidth_mode,
            dram_words_per_cycle=v.words_per_cycle or arch.dram.first_words_per_cycle,
        )


SpecT = TypeVar("SpecT", bound="Spec")


class LoadedSpec(Generic[SpecT]):
    """A validated spec and the file it came from (topology paths are relative to it)."""

    def __init__(self, spec: SpecT, path: Path):
        self.spec = spec
        self.path = path

    def workload(self, name: str) -> list[Layer]:
        """The layers of one workload."""
        for w in self.spec.workloads:
            if w.name == name:
                if w.layers is not None:
                    return [layer.to_layer() for layer in w.layers]
                assert w.topology is not None
                return read_topology(self.path.parent / w.topology, w.format)
        known = ", ".join(w.name for w in self.spec.workloads) or "none"
        raise InputError(self.path, f"no workload named {name!r} (known: {known})", field="workloads")


MAX_NESTING = 64
"""The deepest nesting of mappings and lists a spec may have."""


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice and nesting deeper than :data:`MAX_NESTING`."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.YAMLError(f"nested deeper than {MAX_NESTING} levels (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the field at ``loc``: the line of its key (or of the deepest part that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key]
            if not match:
                return line
            key_node, node = match[0]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
    return line


def _describe(error: Mapping[str, Any]) -> tuple[list[int | str], str]:
    loc = [part for part in error["loc"] if part not in ("conv", "gemm")]
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return loc, message


@overload
def parse_spec(text: str, source: str | Path) -> Spec: ...
@overload
def parse_spec(text: str, source: str | Path, schema: type[SpecT]) -> SpecT: ...
def parse_spec(text: str, source: str | Path, schema: type[Spec] = Spec) -> Spec:
    """Validate spec text against ``schema``; errors name ``source``, the line and the field.

    Types are strict (``true`` is not a number), a key given twice is an error, and so is nesting deeper than
    :data:`MAX_NESTING` levels.
    """
    try:
        node = yaml.compose(text, Loader=_SpecLoader)
        data = yaml.load(text, Loader=_SpecLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(source, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                         line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise InputError(source, f"nested deeper than {MAX_NESTING} levels") from None
    if not isinstance(data, dict):
        raise InputError(source, "expected a mapping of keys at the top level")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        loc, message = _describe(exc.errors()[0])
        field = ".".join(str(p) for p in loc) or None
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        raise InputError(source, message + suffix, line=_line_of(node, loc), field=field) from None


@overload
def load_spec(path: str | Path) -> LoadedSpec[Spec]: ...
@overload
def load_spec(path: str | Path, schema: type[SpecT]) -> LoadedSpec[SpecT]: ...
def load_spec(path: str | Path, schema: type[Spec] = Spec) -> LoadedSpec[Any]:
    """Read and validate a ``scale_sim.yaml`` against ``schema`` (the simulator's :class:`Spec` by default)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read file ({exc.__class__.__name__})") from None
    return LoadedSpec(parse_spec(text, path, schema), path)


def spec_from_scalesim(
    run_name: str,
    hardware: Hardware,
    bandwidths: Sequence[int],
    memory_banks: int | None,
    workload_name: str,
    layers: Sequence[Layer],
    gemm: bool,
) -> dict[str, Any]:
    """A spec document (plain data, ready for YAML) equivalent to a SCALE-Sim config and topology."""
    dram: dict[str, Any] = {"bandwidth_mode": hardware.bandwidth_mode}
    if bandwidths:
        dram["words_per_cycle"] = bandwidths[0] if len(bandwidths) == 1 else list(bandwidths)
    arch: dict[str, Any] = {
        "array": {"rows": hardware.array_rows, "cols": hardware.array_cols},
        "dataflow": hardware.dataflow,
        "sram_kib": {"ifmap": hardware.ifmap_sram_kib, "filter": hardware.filter_sram_kib,
                     "ofmap": hardware.ofmap_sram_kib},
        "address_offsets": {"ifmap": hardware.ifmap_offset, "filter": hardware.filter_offset,
                            "ofmap": hardware.ofmap_offset},
        "dram": dram,
    }
    if memory_banks is not None:
        arch["memory_banks"] = memory_banks
    rows: list[dict[str, Any]] = []
    for layer in layers:
        if gemm:
            rows.append({"name": layer.name, "m": layer.ifmap_h, "n": layer.num_filters, "k": layer.ifmap_w})
        else:
            row: dict[str, Any] = {
                "name": layer.name, "ifmap_h": layer.ifmap_h, "ifmap_w": layer.ifmap_w,
                "filter_h": layer.filter_h, "filter_w": layer.filter_w, "channels": layer.channels,
                "num_filters": layer.num_filters, "stride_h": layer.stride_h,
            }
            if layer.stride_w != layer.stride_h:
                row["stride_w"] = layer.stride_w
            rows.append(row)
    return {
        "schema_version": SCHEMA_VERSION,
        "name": run_name,
        "architecture": arch,
        "workloads": [{"name": workload_name, "layers": rows}],
    }


def dump_spec(document: dict[str, Any]) -> str:
    """YAML text of a spec document, keys in schema order."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=110)
