"""The feature catalogue: built-ins load, bad feature folders are refused naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features.catalogue import BUILTIN_FOLDER, load_catalogue, load_feature, resolve_params
from features.properties import PROPERTIES
from features.semantics import ENERGY_COLUMNS, ENERGY_REPORT
from reference_sim.errors import InputError

GOOD = {
    "name": "toy",
    "summary": "a toy feature",
    "parameters": [{"name": "extra_cycles", "type": "int", "unit": "cycles", "min": 0, "max": 10, "neutral": 0}],
    "checks": ["stalls_within_cycles"],
    "oracle": False,
}


def write_feature(root: Path, data: object, name: str = "toy", description: str = "Adds cycles.") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "feature.yaml").write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    if description is not None:
        (folder / "description.md").write_text(description)
    return folder


def test_builtins_load_with_their_checks_and_neutral_values() -> None:
    catalogue = load_catalogue()
    assert {"energy", "batch"} <= set(catalogue)
    assert catalogue["batch"].definition.neutral() == {"batch_images": 1}
    assert set(catalogue["energy"].definition.neutral().values()) == {0.0}
    for feature in catalogue.values():
        assert feature.builtin and feature.description.strip()
        assert all(check in PROPERTIES for check in feature.definition.checks)


def test_energy_report_columns_are_the_semantics_columns() -> None:
    report = load_catalogue()["energy"].definition.reports[0]
    assert report.file == ENERGY_REPORT
    assert tuple(report.columns) == ENERGY_COLUMNS


def test_user_folder_loads_the_same_way(tmp_path: Path) -> None:
    write_feature(tmp_path, GOOD)
    catalogue = load_catalogue(tmp_path)
    assert catalogue["toy"].definition.parameters[0].judge_values() == [10]
    assert not catalogue["toy"].builtin


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"checks": ["stalls_within_cycles", "no_such_check"]}, "checks[1]", "unknown check 'no_such_check'"),
    ({"parameters": [{**GOOD["parameters"][0], "multiplies_work": True}]}, "parameters.0", "at least 1"),  # type: ignore[index]
    ({"parameters": [{**GOOD["parameters"][0], "neutral": 11}]}, "parameters.0", "outside"),  # type: ignore[index]
    ({"parameters": [{**GOOD["parameters"][0], "name": "extra"}]}, "parameters.0", "must end with its unit"),  # type: ignore[index]
    ({"parameters": [{**GOOD["parameters"][0], "type": "str"}]}, "parameters.0.type", "Input should be"),  # type: ignore[index]
    ({"parameters": [{**GOOD["parameters"][0], "neutral": 0.5}]}, "parameters.0", "whole number"),  # type: ignore[index]
    ({"colour": "red"}, "colour", "unknown key"),
    ({"oracle": None}, "oracle", "Input should be"),
    ({"parameters": []}, "parameters", "at least 1"),
])
def test_bad_feature_yaml_names_file_and_field(tmp_path: Path, change: dict[str, object], field: str | None,
                                              words: str) -> None:
    folder = write_feature(tmp_path, {**GOOD, **change})
    with pytest.raises(InputError) as raised:
        load_feature(folder)
    assert raised.value.source == str(folder / "feature.yaml")
    assert raised.value.field == field
    assert words in raised.value.message


def test_name_must_match_folder_and_description_must_exist(tmp_path: Path) -> None:
    folder = write_feature(tmp_path, {**GOOD, "name": "other"})
    with pytest.raises(InputError, match="differs from its folder"):
        load_feature(folder)
    folder = write_feature(tmp_path / "b", GOOD, description="  \n")
    with pytest.raises(InputError, match="is empty") as raised:
        load_feature(folder)
    assert raised.value.source.endswith("description.md")


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid YAML"):
        load_feature(write_feature(tmp_path / "a", "name: [unclosed"))
    with pytest.raises(InputError, match="mapping"):
        load_feature(write_feature(tmp_path / "b", "- a list"))


def test_user_feature_may_not_reuse_a_builtin_name(tmp_path: Path) -> None:
    batch = yaml.safe_load((BUILTIN_FOLDER / "batch" / "feature.yaml").read_text())
    write_feature(tmp_path, batch, name="batch")
    with pytest.raises(InputError, match="already defined") as raised:
        load_catalogue(tmp_path)
    assert raised.value.field == "name"


def test_resolve_params_fills_neutral_and_checks_bounds() -> None:
    batch = load_catalogue()["batch"].definition
    assert resolve_params(batch, {}, "spec.yaml") == {"batch_images": 1}
    assert resolve_params(batch, {"batch_images": 4}, "spec.yaml") == {"batch_images": 4}
    for given, words in (({"batch_images": 0}, "outside"), ({"batch_images": 1.5}, "whole number"),
                         ({"batch_images": True}, "must be a number"), ({"images": 2}, "unknown parameter")):
        with pytest.raises(InputError, match=words) as raised:
            resolve_params(batch, given, "spec.yaml")
        assert raised.value.field is not None and raised.value.field.startswith("features.batch.")


def test_every_property_is_stated_in_the_docs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text()
    for name, prop in PROPERTIES.items():
        assert f"| `{name}` | {prop.family} |" in docs
        assert prop.statement in docs
