"""The standalone package with a run's features: each built-in, made portable, writes exactly the host's reports."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from agents.package import MANIFEST_FILE, PackageError, import_problems, write_package
from agents.package_features import (
    FEATURES_FILE,
    FEATURES_FORMAT,
    PackagedFeature,
    agent_feature,
    builtin_feature,
)
from agents.package_portable import FEATURES_DIR, api_names, portable_builtin, portable_source
from features.api import ParamValue
from features.builtin import BUILTINS
from features.catalogue import load_catalogue, resolve_params
from features.reports import write_tables
from judge.mutants import candidate_files
from reference_sim.reports import REPORT_FILES, write_reports
from reference_sim.scalesim_io import read_config, read_topology
from tests.unit.test_package import TOPOLOGY, _candidate, _config, _isolated

NAME = "featured_sim"
SETTINGS: dict[str, dict[str, ParamValue]] = {
    "energy": {"pj_per_mac": 0.56, "idle_pj_per_pe_cycle": 0.013, "ifmap_sram_read_pj_per_word": 1.7,
               "dram_read_pj_per_word": 64.0, "dram_write_pj_per_word": 71.0},
    "batch": {"batch_images": 3},
    "cores": {"cores": 3, "split_axis": 1},
    "sparsity": {"kept_weights": 2, "group_weights": 8},
    "memory_banks": {"sram_banks": 2, "sram_bank_ports": 1, "ifmap_dram_words_per_cycle": 2},
}
CONFIGS = {"user_ws": {"mode": "USER", "sram_kib": 2, "dataflow": "ws"}, "calc_os": {}}
FEATURE_NAMES = list(SETTINGS)


@pytest.fixture(scope="module")
def catalogue() -> dict[str, object]:
    return dict(load_catalogue())


def _features(catalogue: Mapping[str, object]) -> list[PackagedFeature]:
    return [builtin_feature(name, params, catalogue) for name, params in SETTINGS.items()]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def featured(tmp_path_factory: pytest.TempPathFactory, feature_api: Path, catalogue: Mapping[str, object]) -> Path:
    """The reference's modules with all five built-in features: ``<tmp>/pkgs/featured_sim``."""
    base = tmp_path_factory.mktemp("featured")
    candidate = _candidate(base / "candidate", candidate_files(None))
    return write_package(candidate, base / "pkgs", NAME, _features(catalogue))


def _host(cfg: Path, topo: Path, name: str, params: Mapping[str, ParamValue], folder: Path) -> dict[str, bytes]:
    """The host's reports of built-in ``name``: SCALE-Sim's three of its results and its tables."""
    config = read_config(cfg)
    definition = load_catalogue()[name].definition
    run = BUILTINS[name](read_topology(topo), config.hardware, resolve_params(definition, params, "test"))
    columns = {r.file: r.columns for r in definition.reports}
    write_reports(run.results, folder)
    write_tables(run.tables, columns, folder)
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _written(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, featured: Path) -> dict[str, Path]:
    """Per configuration, the folder holding its inputs and ``out/<run_name>/`` from one CLI run of the package."""
    found = {}
    for label, kwargs in CONFIGS.items():
        folder = tmp_path_factory.mktemp(label)
        (folder / "arch.cfg").write_text(_config(label, **kwargs))  # type: ignore[arg-type]
        (folder / "net.csv").write_text(TOPOLOGY)
        result = _isolated(folder, featured.parent, ["-m", NAME, "-c", "arch.cfg", "-t", "net.csv", "-p", "out"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-5:] == [
            f"feature reports written to out/{label}/features/{name}" for name in FEATURE_NAMES]
        found[label] = folder
    return found


@pytest.mark.parametrize("label", list(CONFIGS))
@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_each_builtin_writes_the_hosts_reports(runs: dict[str, Path], tmp_path: Path, name: str, label: str) -> None:
    folder = runs[label]
    ours = _written(folder / "out" / label / "features" / name)
    theirs = _host(folder / "arch.cfg", folder / "net.csv", name, SETTINGS[name], tmp_path / "host")
    assert sorted(ours) == sorted(theirs)
    tables = {r.file for r in load_catalogue()[name].definition.reports}
    assert set(ours) == {*REPORT_FILES, *tables}
    for file in ours:
        assert ours[file] == theirs[file], (name, label, file)
    plain = _written(folder / "out" / label)
    if name == "energy":
        assert ours["COMPUTE_REPORT.csv"] == plain["COMPUTE_REPORT.csv"]
    else:
        assert ours["COMPUTE_REPORT.csv"] != plain["COMPUTE_REPORT.csv"], "the setting changed nothing"


def test_features_json_and_manifest(featured: Path) -> None:
    document = json.loads((featured / FEATURES_FILE).read_text())
    assert document["format"] == FEATURES_FORMAT
    assert [f["name"] for f in document["features"]] == FEATURE_NAMES
    energy = document["features"][0]
    assert energy["params"]["pj_per_mac"] == 0.56 and energy["params"]["ofmap_sram_read_pj_per_word"] == 0
    assert energy["bounds"]["pj_per_mac"] == {"type": "float", "min": 0, "max": 1000}
    assert energy["reports"][0]["file"] == "ENERGY_REPORT.csv"
    assert energy["reports"][0]["columns"][:3] == ["layer_id", "macs", "idle_pe_cycles"]
    manifest = json.loads((featured / MANIFEST_FILE).read_text())
    names = {p.name for p in featured.iterdir() if p.is_file()}
    assert set(manifest["files"]) == names - {MANIFEST_FILE}
    assert manifest["features"] == FEATURE_NAMES
    assert {"feature_api.py", "feature_runner.py", "feature_semantics.py", FEATURES_FILE,
            *(f"feature_{n}.py" for n in FEATURE_NAMES)} <= set(manifest["feature_files"])
    assert import_problems(featured) == []
    for path in featured.glob("feature_*.py"):
        assert not re.search(r"^\s*(from|import) (reference_sim|features)\b", path.read_text(), re.M), path
    readme = (featured / "README.txt").read_text()
    assert "--features FILE.json" in readme and "--no-features" in readme and "features/<feature>/" in readme


def test_overrides_change_the_parameters(featured: Path, tmp_path: Path) -> None:
    (tmp_path / "arch.cfg").write_text(_config("over"))
    (tmp_path / "net.csv").write_text(TOPOLOGY)
    overrides = {"energy": {"pj_per_mac": 2.5, "dram_write_pj_per_word": 9}, "cores": {"cores": 2}}
    (tmp_path / "over.json").write_text(json.dumps(overrides))
    result = _isolated(tmp_path, featured.parent, ["-m", NAME, "-c", "arch.cfg", "-t", "net.csv", "-p", "out",
                                                   "--features", "over.json", "-q"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    for name in ("energy", "cores", "batch"):
        params = {**SETTINGS[name], **overrides.get(name, {})}
        theirs = _host(tmp_path / "arch.cfg", tmp_path / "net.csv", name, params, tmp_path / "host" / name)
        assert _written(tmp_path / "out" / "over" / "features" / name) == theirs, name


@pytest.mark.parametrize(("overrides", "message"), [
    ({"energy": {"pj_per_mac": 5000}}, "over.json: features.energy.pj_per_mac: 5000 is outside [0, 1000]"),
    ({"cores": {"cores": 2.5}}, "over.json: features.cores.cores: 2.5 is not a whole number"),
    ({"batch": {"batch_images": "4"}}, "over.json: features.batch.batch_images: must be a number, got str"),
    ({"batch": {"batch_images": True}}, "features.batch.batch_images: must be a number, got bool"),
    ({"sparsity": {"kept": 2}}, "over.json: features.sparsity.kept: unknown parameter"),
    ({"toy": {"x": 1}}, "over.json: features.toy: not a packaged feature"),
    ({"energy": 3}, "over.json: features.energy: expected an object"),
    ([1, 2], "over.json: expected an object"),
    ("{not json", "over.json:1: not valid JSON"),
])
def test_a_bad_override_is_one_line_and_exit_code_2(featured: Path, tmp_path: Path, overrides: object,
                                                    message: str) -> None:
    (tmp_path / "arch.cfg").write_text(_config("bad"))
    (tmp_path / "net.csv").write_text(TOPOLOGY)
    (tmp_path / "over.json").write_text(overrides if isinstance(overrides, str) else json.dumps(overrides))
    result = _isolated(tmp_path, featured.parent, ["-m", NAME, "-c", "arch.cfg", "-t", "net.csv", "-p", "out",
                                                   "--features", "over.json"])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "out").exists(), "a bad override still ran the simulator"


def test_no_features_writes_scale_sims_reports_only(featured: Path, tmp_path: Path) -> None:
    (tmp_path / "arch.cfg").write_text(_config("plain"))
    (tmp_path / "net.csv").write_text(TOPOLOGY)
    args = ["-m", NAME, "-c", "arch.cfg", "-t", "net.csv", "-p", "out"]
    result = _isolated(tmp_path, featured.parent, [*args, "--no-features"])
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "plain").iterdir()) == [
        "BANDWIDTH_REPORT.csv", "COMPUTE_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"]
    assert "feature reports" not in result.stdout
    both = _isolated(tmp_path, featured.parent, [*args, "--no-features", "--features", "x.json"])
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_a_package_without_features_has_no_feature_options(feature_api: Path, tmp_path: Path) -> None:
    package = write_package(_candidate(tmp_path / "c", candidate_files(None)), tmp_path / "pkgs", NAME)
    assert not list(package.glob("feature_*")) and not (package / FEATURES_FILE).exists()
    assert "--no-features" not in (package / "cli.py").read_text()
    assert json.loads((package / MANIFEST_FILE).read_text())["features"] == []


AGENT_ENERGY = '''"""An agent's energy: the run's MACs times pj_per_mac."""

from .engine import simulate
from .feature_api import FeatureRun


def run(layers, hardware, params, *, traces=False):
    results = simulate(layers, hardware, traces=traces)
    rows = [{"layer_id": float(r.index), "macs": float(layer.macs), "mac_pj": layer.macs * params["pj_per_mac"]}
            for r, layer in zip(results, layers)]
    return FeatureRun(results, {"ENERGY_REPORT.csv": [{**row, **SCALE} for row in rows]})
'''


def _agent(source: str, catalogue: Mapping[str, object]) -> PackagedFeature:
    columns = load_catalogue()["energy"].definition.reports[0].columns
    others = {c: 0.0 for c in columns if c not in ("layer_id", "macs", "mac_pj")}
    helper = f"SCALE = {others!r}\n"
    source = source.replace("from .engine", "from .energy_helper import SCALE\nfrom .engine")
    return agent_feature("energy", {"pj_per_mac": 2.0}, source, catalogue,  # type: ignore[arg-type]
                         helpers={"energy_helper.py": helper})


def test_an_agent_written_feature_is_packaged(feature_api: Path, tmp_path: Path,
                                              catalogue: Mapping[str, object]) -> None:
    package = write_package(_candidate(tmp_path / "c", candidate_files(None)), tmp_path / "pkgs", NAME,
                            [_agent(AGENT_ENERGY, catalogue)])
    (tmp_path / "arch.cfg").write_text(_config("agent"))
    (tmp_path / "net.csv").write_text(TOPOLOGY)
    result = _isolated(tmp_path, package.parent, ["-m", NAME, "-c", "arch.cfg", "-t", "net.csv", "-p", "out", "-q"])
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "out" / "agent" / "features" / "energy" / "ENERGY_REPORT.csv").read_text().splitlines()
    assert table[0].startswith("layer_id, macs, idle_pe_cycles,")
    assert [line.split(", ")[:2] for line in table[1:]] == [["0", "72000"], ["1", "28800"], ["2", "18000"]]
    assert table[1].split(", ")[11] == "144000"
    assert json.loads((package / FEATURES_FILE).read_text())["features"][0]["implementation"] == "agent"


def test_an_agent_feature_that_crashes_is_one_line_and_exit_code_1(feature_api: Path, tmp_path: Path,
                                                                   catalogue: Mapping[str, object]) -> None:
    broken = AGENT_ENERGY.replace("results = simulate(", "results = 1 / 0 or simulate(")
    package = write_package(_candidate(tmp_path / "c", candidate_files(None)), tmp_path / "pkgs", NAME,
                            [_agent(broken, catalogue)])
    (tmp_path / "arch.cfg").write_text(_config("crash"))
    (tmp_path / "net.csv").write_text(TOPOLOGY)
    result = _isolated(tmp_path, package.parent, ["-m", NAME, "-c", "arch.cfg", "-t", "net.csv", "-p", "out", "-q"])
    assert result.returncode == 1
    assert result.stderr.strip() == "error: the feature energy failed: ZeroDivisionError: division by zero"


@pytest.mark.parametrize(("edit", "match"), [
    (lambda s: "import reference_sim\n" + s, r"the package would import outside .*feature_energy\.py:1: import "
                                             r"reference_sim"),
    (lambda s: s.replace("def run(", "def run_it("), r"features\.energy: feature_energy\.py defines no run\(\)"),
])
def test_agent_feature_refusals(feature_api: Path, tmp_path: Path, catalogue: Mapping[str, object], edit: object,
                                match: str) -> None:
    feature = _agent(edit(AGENT_ENERGY), catalogue)  # type: ignore[operator]
    with pytest.raises(PackageError, match=match):
        write_package(_candidate(tmp_path / "c", candidate_files(None)), tmp_path / "pkgs", NAME, [feature])
    assert not (tmp_path / "pkgs").exists() or list((tmp_path / "pkgs").iterdir()) == []


def test_a_feature_module_may_not_replace_a_candidate_file(feature_api: Path, tmp_path: Path,
                                                           catalogue: Mapping[str, object]) -> None:
    files = candidate_files(None)
    files["feature_semantics.py"] = "X = 1\n"
    with pytest.raises(PackageError, match=r"features\.energy: feature_semantics\.py would replace another file"):
        write_package(_candidate(tmp_path / "c", files), tmp_path / "pkgs", NAME,
                      [builtin_feature("energy", {}, catalogue)])  # type: ignore[arg-type]


ENERGY_FILE = "features/builtin/energy.py"


@pytest.mark.parametrize(("line", "match"), [
    ("from ..catalogue import load_catalogue", r"^features/builtin/energy\.py:13: from \.\.catalogue import "
                                               r"load_catalogue has no portable form"),
    ("import yaml", r"energy\.py:13: import yaml has no portable form"),
    ("from reference_sim.spec import load_spec", r"energy\.py:13: from reference_sim\.spec import load_spec"),
    ("from reference_sim import scalesim_io", r"energy\.py:13: from reference_sim import scalesim_io"),
    ("from . import batch", r"energy\.py:13: from \. import batch"),
    ("from ..api import FeatureImpl", r"energy\.py:13: from \.\.api import FeatureImpl: feature_api\.py has no "
                                      r"FeatureImpl"),
    ("import reference_sim.engine", r"energy\.py:13: import reference_sim\.engine"),
])
def test_an_unmapped_import_in_a_builtin_names_the_line(feature_api: Path, line: str, match: str) -> None:
    lines = (FEATURES_DIR / "builtin" / "energy.py").read_text().splitlines(keepends=True)
    assert lines[12].startswith("from ..semantics")
    text = "".join([*lines[:12], line + "\n", *lines[12:]])
    with pytest.raises(PackageError, match=match):
        portable_source(text, ENERGY_FILE, "features.builtin", api_names(feature_api.read_text()))


def test_only_import_statements_change(feature_api: Path) -> None:
    text = ('"""from reference_sim.engine import simulate stays in a docstring."""\n'
            "import numpy as np\n"
            "from reference_sim.contract import (\n    Hardware,\n    Layer,  # the layer\n)\n"
            "NOTE = 'from ..api import Params'\n"
            "def f():\n    from ..api import FeatureRun, TableRow as Row\n    return FeatureRun, Row\n"
            "x = 1; from reference_sim import mapping as m, network\n")
    converted = portable_source(text, "toy.py", "features.builtin", api_names(feature_api.read_text()))
    assert converted == (
        '"""from reference_sim.engine import simulate stays in a docstring."""\n'
        "import numpy as np\n"
        "from .contract import Hardware, Layer\n"
        "NOTE = 'from ..api import Params'\n"
        "def f():\n    from .feature_api import FeatureRun\n    from .feature_types import TableRow as Row\n"
        "    return FeatureRun, Row\n"
        "x = 1; from . import mapping as m; from . import network\n")


def test_every_builtin_is_portable(feature_api: Path) -> None:
    api = api_names(feature_api.read_text())
    for name in BUILTINS:
        sources = portable_builtin(name, api)
        assert set(sources) == {f"feature_{name}.py", "feature_semantics.py"}
        original = (FEATURES_DIR / "builtin" / f"{name}.py").read_text()
        assert sources[f"feature_{name}.py"].count("\ndef ") == original.count("\ndef ")
