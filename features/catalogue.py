"""The feature catalogue: one folder per feature holding ``feature.yaml`` and ``description.md``.

``feature.yaml`` names the feature, its typed parameters (units in names, bounds, the neutral value
under which the feature behaves exactly like the reference), the checks of the property library
that judge it, whether an oracle exists, and the report tables it writes.  ``description.md`` is the
plain-language text a coder gets.  A built-in folder is data only.  A user's folder of features
(operator-only) loads the same way, and a user feature may add its own properties in ``properties.py``
(:mod:`features.user_properties`: Python run on the host, so never from a remote caller).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from reference_sim.errors import InputError

from .api import ParamValue
from .properties import PROPERTIES
from .property_base import Property
from .user_properties import PROPERTIES_FILE, load_user_properties

BUILTIN_FOLDER = Path(__file__).resolve().parent / "catalogue"
DEFINITION_FILE = "feature.yaml"
DESCRIPTION_FILE = "description.md"

SnakeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterDef(_Strict):
    """One typed parameter; its name ends with its unit (``ifmap_sram_read_pj_per_word``, ``batch_images``)."""

    name: SnakeName
    type: Literal["int", "float"]
    unit: SnakeName
    min: float
    max: float
    neutral: float
    """The value under which the feature must equal the reference exactly."""
    examples: list[float] = Field(default_factory=list)
    """Values the judge tries besides the neutral one (default: ``min`` and ``max`` where not neutral)."""
    description: str = ""
    multiplies_work: bool = False
    """The feature's run does about this value times the reference's work (images, cores): a remote caller's
    value is held to the operator's work cap."""

    @model_validator(mode="after")
    def _consistent(self) -> ParameterDef:
        if not self.name.endswith("_" + self.unit) and self.name != self.unit:
            raise ValueError(f"parameter {self.name!r} must end with its unit {self.unit!r}")
        if self.min > self.max:
            raise ValueError(f"parameter {self.name!r}: min {self.min} is above max {self.max}")
        if self.multiplies_work and self.min < 1:
            raise ValueError(f"parameter {self.name!r} multiplies the work, so its min must be at least 1")
        for label, value in (("neutral", self.neutral), *(("examples", v) for v in self.examples)):
            if not self.min <= value <= self.max:
                raise ValueError(f"parameter {self.name!r}: {label} {value} is outside [{self.min}, {self.max}]")
            if self.type == "int" and value != int(value):
                raise ValueError(f"parameter {self.name!r}: {label} {value} is not a whole number")
        return self

    def judge_values(self) -> list[ParamValue]:
        """The non-neutral values the judge tries."""
        values = self.examples or [v for v in (self.min, self.max) if v != self.neutral]
        return [self.cast(v) for v in values]

    def cast(self, value: float) -> ParamValue:
        return int(value) if self.type == "int" else float(value)


class ReportDef(_Strict):
    """A report table the feature writes, one row per layer (``CORES_REPORT.csv``: per core of each layer)."""

    file: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*\.csv$")]
    columns: list[SnakeName] = Field(min_length=1)


class FeatureDef(_Strict):
    """A whole ``feature.yaml``."""

    name: SnakeName
    summary: str = Field(min_length=1)
    parameters: list[ParameterDef] = Field(min_length=1)
    checks: list[str] = Field(min_length=1)
    """Names of properties from :data:`features.properties.PROPERTIES` or the feature's own ``properties.py``."""
    oracle: bool
    """Whether an exact expected result can be computed from the reference (:mod:`features.oracles`)."""
    reports: list[ReportDef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> FeatureDef:
        names = [p.name for p in self.parameters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"parameter names repeat: {', '.join(repeated)}")
        return self

    def parameter(self, name: str) -> ParameterDef:
        return next(p for p in self.parameters if p.name == name)

    def neutral(self) -> dict[str, ParamValue]:
        return {p.name: p.cast(p.neutral) for p in self.parameters}

    def work_factor(self, params: Mapping[str, ParamValue]) -> float:
        """How many times the reference's work a run with ``params`` does: the product of the parameters that
        multiply the work (1 when none does)."""
        return math.prod(float(params.get(p.name, p.neutral)) for p in self.parameters if p.multiplies_work)


@dataclass(frozen=True)
class Feature:
    """A loaded feature: its validated definition, the coder's description and where it came from."""

    definition: FeatureDef
    description: str
    folder: Path
    builtin: bool
    properties: tuple[Property, ...] = ()
    """The feature's own properties (its folder's ``properties.py``; user features only)."""

    @property
    def name(self) -> str:
        return self.definition.name

    def registry(self) -> dict[str, Property]:
        """The properties this feature's checks may name: the library's and its own."""
        return {**PROPERTIES, **{p.name: p for p in self.properties}}


def _error_field(error: Mapping[str, Any]) -> tuple[str | None, str]:
    field = ".".join(str(part) for part in error["loc"]) or None
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return field, message


def load_feature(folder: Path, *, builtin: bool = False) -> Feature:
    """Read and validate one feature folder; errors name the file and the field."""
    path = folder / DEFINITION_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read file ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(path, "not valid YAML", line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a mapping of keys at the top level")
    try:
        definition = FeatureDef.model_validate(data)
    except ValidationError as exc:
        field, message = _error_field(exc.errors()[0])
        raise InputError(path, message, field=field) from None
    if definition.name != folder.name:
        raise InputError(path, f"name {definition.name!r} differs from its folder {folder.name!r}", field="name")
    own = () if builtin else load_user_properties(folder / PROPERTIES_FILE, definition.name, PROPERTIES)
    known = {*PROPERTIES, *(p.name for p in own)}
    for index, check in enumerate(definition.checks):
        if check not in known:
            where = "the property library" + ("" if builtin else f" or {PROPERTIES_FILE}")
            raise InputError(path, f"unknown check {check!r} (not in {where})", field=f"checks[{index}]")
    description_path = folder / DESCRIPTION_FILE
    try:
        description = description_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(description_path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(description_path, f"cannot read file ({exc.__class__.__name__})") from None
    if not description.strip():
        raise InputError(description_path, "is empty; describe the feature for the coder")
    return Feature(definition, description, folder, builtin, own)


def load_catalogue(user_folder: Path | None = None) -> dict[str, Feature]:
    """The built-in features, plus every feature folder under ``user_folder`` (operator-only: a folder's
    ``properties.py`` runs on the host).  A user feature may not reuse a built-in name."""
    features = {f.name: f for f in (load_feature(d, builtin=True) for d in _feature_folders(BUILTIN_FOLDER))}
    if user_folder is not None:
        if not user_folder.is_dir():
            raise InputError(user_folder, "is not a folder of features")
        for folder in _feature_folders(user_folder):
            feature = load_feature(folder)
            if feature.name in features:
                raise InputError(folder / DEFINITION_FILE, f"feature {feature.name!r} is already defined",
                                 field="name")
            features[feature.name] = feature
    return features


def _feature_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and (d / DEFINITION_FILE).exists())


def resolve_params(feature: FeatureDef, given: Mapping[str, Any], source: str | Path) -> dict[str, ParamValue]:
    """``given`` completed with neutral values, each checked for its type and bounds."""
    params = feature.neutral()
    for name, value in given.items():
        where = f"features.{feature.name}.{name}"
        if name not in params:
            raise InputError(source, "unknown parameter", field=where)
        spec = feature.parameter(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(source, f"must be a number, got {type(value).__name__}", field=where)
        if spec.type == "int" and value != int(value):
            raise InputError(source, "must be a whole number", field=where)
        if not spec.min <= value <= spec.max:
            raise InputError(source, f"{value} is outside [{spec.min:g}, {spec.max:g}]", field=where)
        params[name] = spec.cast(value)
    return params
