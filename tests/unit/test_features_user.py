"""A user's feature folder (the operator's): its own properties in properties.py, judged like the library's."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from agents import run_features
from features.api import FeatureRun, Params
from features.catalogue import load_catalogue, load_feature
from features.judge import judge
from reference_sim.contract import Hardware, Layer
from reference_sim.engine import simulate
from reference_sim.errors import InputError

USER_FEATURES = Path(__file__).resolve().parents[1] / "data" / "user_features"
REPORT = "TIME_REPORT.csv"


def wall_time(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False) -> FeatureRun:
    """A right implementation: the reference's run, and each layer's cycles over the clock."""
    results = simulate(layers, hardware, traces=traces)
    rows = [{"layer_id": float(i), "total_cycles": float(r.total_cycles),
             "time_us": r.total_cycles / params["clock_mhz"]} for i, r in enumerate(results)]
    return FeatureRun(results, {REPORT: rows})


def wall_time_in_ns(layers: Sequence[Layer], hardware: Hardware, params: Params, *, traces: bool = False
                    ) -> FeatureRun:
    """A wrong one: nanoseconds in the microseconds column (the reference's figures, so exact passes)."""
    run = wall_time(layers, hardware, params, traces=traces)
    return FeatureRun(run.results, {REPORT: [{**row, "time_us": row["time_us"] * 1000} for row in run.tables[REPORT]]})


def copy_feature(tmp_path: Path) -> Path:
    folder = tmp_path / "features"
    shutil.copytree(USER_FEATURES, folder)
    return folder


def test_a_user_property_passes_the_right_implementation_and_fires_on_a_wrong_one() -> None:
    feature = load_catalogue(USER_FEATURES)["wall_time"]
    assert [p.name for p in feature.properties] == ["time_is_cycles_over_clock"]
    right = judge(feature, wall_time)
    assert right.passed and right.evidence == "exact, properties 2/2", right.summary()
    wrong = judge(feature, wall_time_in_ns)
    assert not wrong.passed and wrong.levels == ("exact",)
    assert wrong.failure is not None and wrong.failure.check == "time_is_cycles_over_clock"
    assert wrong.failure.blamed_module == "wall_time"


def test_a_user_property_is_known_to_its_own_feature_only(tmp_path: Path) -> None:
    folder = copy_feature(tmp_path)
    other = folder / "other_time"
    shutil.copytree(folder / "wall_time", other)
    (other / "properties.py").unlink()
    data = yaml.safe_load((other / "feature.yaml").read_text())
    (other / "feature.yaml").write_text(yaml.safe_dump({**data, "name": "other_time"}))
    with pytest.raises(InputError) as raised:
        load_catalogue(folder)
    assert raised.value.source == str(other / "feature.yaml") and raised.value.field == "checks[1]"
    assert "unknown check 'time_is_cycles_over_clock' (not in the property library or properties.py)" in str(
        raised.value)
    with pytest.raises(ValueError, match="checks not in the property library: time_is_cycles_over_clock"):
        judge(load_catalogue(USER_FEATURES)["wall_time"].definition, wall_time)


SECOND = 'Property("time_is_cycles_over_clock", "conservation", "s", single=time_is_cycles_over_clock)'


@pytest.mark.parametrize(("edit", "line", "field", "words"), [
    (("REPORT = ", "REPORT == = "), 10, None, "not valid Python"),
    (("import math\n", "import math\nraise RuntimeError('secret text')\n"), 6, None, "raised RuntimeError when loaded"),
    (("PROPERTIES = [", "PROPERTIES = ["), None, None, ""),
    (("PROPERTIES = [", "PROPERTY = ["), None, "PROPERTIES", "must define PROPERTIES"),
    (("PROPERTIES = [", "PROPERTIES = [print,"), None, "PROPERTIES[0]", "not a features.property_base.Property"),
    (('Property("time_is_cycles_over_clock"', 'Property("macs_done_once"'), None, "PROPERTIES[0]",
     "already in the property library"),
    (("single=time_is_cycles_over_clock)", "single=time_is_cycles_over_clock, vary=print)"), None, "PROPERTIES[0]",
     "give either single, or pair and vary"),
    (("single=time_is_cycles_over_clock)", "single=time_is_cycles_over_clock),\n" + SECOND), None,
     "PROPERTIES[1]", "defined twice"),
])
def test_a_bad_properties_file_is_refused_naming_the_file(tmp_path: Path, edit: tuple[str, str], line: int | None,
                                                          field: str | None, words: str) -> None:
    folder = copy_feature(tmp_path)
    path = folder / "wall_time" / "properties.py"
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    if not words:
        assert load_feature(folder / "wall_time").properties
        return
    with pytest.raises(InputError) as raised:
        load_catalogue(folder)
    assert raised.value.source == str(path) and raised.value.field == field and words in raised.value.message
    assert raised.value.line == line and "secret" not in str(raised.value) and len(str(raised.value).splitlines()) == 1


def test_a_crashing_user_property_is_the_files_fault_not_the_implementations(tmp_path: Path) -> None:
    folder = copy_feature(tmp_path)
    path = folder / "wall_time" / "properties.py"
    path.write_text(path.read_text().replace('rows = run.tables.get(REPORT, [])', 'rows = run.tables["nothing"]'))
    with pytest.raises(InputError, match=r"properties.py:15: property 'time_is_cycles_over_clock' raised KeyError"):
        judge(load_catalogue(folder)["wall_time"], wall_time)


def test_a_run_judges_a_user_feature_with_its_own_properties(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(run_features.BUILTINS, "wall_time", wall_time_in_ns)
    tasks = run_features.plan_features({"wall_time": {"clock_mhz": 500}}, "spec.yaml", user_folder=USER_FEATURES)
    assert tasks == [{"name": "wall_time", "params": {"clock_mhz": 500.0}}]
    layers = [Layer("g", 8, 8, 1, 8, 1, 8, 1, 1)]
    hardware = Hardware(4, 4, "os", 1, 1, 1)
    found = run_features.judge_features(tasks, [("w", layers, hardware)], tmp_path, user_folder=USER_FEATURES)
    assert not found[0]["passed"] and "time_is_cycles_over_clock" in found[0]["summary"]
    monkeypatch.setitem(run_features.BUILTINS, "wall_time", wall_time)
    found = run_features.judge_features(tasks, [("w", layers, hardware)], tmp_path, user_folder=USER_FEATURES)
    assert found[0]["passed"] and found[0]["tables"] == ["features/wall_time/w/TIME_REPORT.csv"]
    with pytest.raises(InputError, match=r"features.wall_time: not a feature of the catalogue"):
        run_features.plan_features({"wall_time": {}}, "spec.yaml")


def test_a_user_feature_is_written_by_the_agent_so_template_mode_refuses_it() -> None:
    with pytest.raises(InputError, match=r"spec.yaml: features.wall_time: has no built-in implementation, and a "
                                         r"run in template mode writes no code"):
        run_features.plan_features({"wall_time": {}}, "spec.yaml", user_folder=USER_FEATURES, template=True)
    planned = run_features.plan_features({"wall_time": {}}, "spec.yaml", user_folder=USER_FEATURES)
    assert planned == [{"name": "wall_time", "params": {"clock_mhz": 1000.0}}]
