"""Names from input files never become paths outside the output folder (``-p OUTDIR``).

Spec names, workload names and SCALE-Sim's ``run_name`` are folders, so each must be one path
component; layer names never reach a path (trace folders are ``layerN``).  Every refusal is one
line naming the file, the line and the field, exit 2, and nothing is written anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference_sim.cli import main
from reference_sim.errors import InputError
from reference_sim.reports import folder_name_problem, output_folder
from reference_sim.scalesim_io import read_config
from reference_sim.spec import Spec, load_spec, parse_spec

TMP = "<tmp>"
"""Stands for the test's ``tmp_path`` in absolute names, so that an escaped write stays in a watched folder."""
HOSTILE = [
    ("../../etc", "it contains '/'"),
    ("..", "it names the folder itself or its parent"),
    (".", "it names the folder itself or its parent"),
    (f"{TMP}/abs-escape", "it is an absolute path"),
    ("a/b", "it contains '/'"),
    ("..\\..\\x", "it contains '\\\\'"),
    ("nul\0byte", "it contains '\\x00'"),
]
ALLOWED = ["t", "scale example run 32x32", "run.v2", "...", "ünïcode-é", "a..b", "-dash"]

SPEC = """schema_version: 1
name: {spec}
architecture:
  array: {{rows: 4, cols: 4}}
  dataflow: os
  sram_kib: {{ifmap: 1, filter: 1, ofmap: 1}}
workloads:
  - name: {workload}
    layers:
      - {{name: {layer}, m: 5, n: 3, k: 7}}
"""
CFG = """[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight: 4
ArrayWidth: 4
IfmapSramSzkB: 1
FilterSramSzkB: 1
OfmapSramSzkB: 1
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 2
Dataflow: os

[run_presets]
InterfaceBandwidth: USER
"""
TOPOLOGY = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def _yaml(text: str) -> str:
    """A double-quoted YAML scalar holding ``text`` exactly."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\0", "\\0") + '"'


def _in(tmp_path: Path, name: str) -> str:
    return name.replace(TMP, str(tmp_path))


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    """``tmp_path/a/b/c`` is the working folder; the whole of ``tmp_path`` is watched for new files."""
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    return work


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _run_spec(work: Path, capsys: pytest.CaptureFixture[str], *, spec: str = "t", workload: str = "w",
              layer: str = "g", traces: str = "none") -> tuple[int, str]:
    (work / "s.yaml").write_text(SPEC.format(spec=_yaml(spec), workload=_yaml(workload), layer=_yaml(layer)))
    code = main(["--arch", str(work / "s.yaml"), "-p", str(work / "out"), "-q", "--traces", traces])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("name", "reason"), HOSTILE)
def test_cli_refuses_a_hostile_spec_name(
    name: str, reason: str, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _in(tmp_path, name)
    code, err = _run_spec(world, capsys, spec=name)
    assert code == 2
    assert _error_line(err) == f"error: {world / 's.yaml'}:2: name: {name!r} is not a single folder name: {reason}"
    assert _files(tmp_path) == {tmp_path / "a", tmp_path / "a" / "b", world, world / "s.yaml"}


@pytest.mark.parametrize(("name", "reason"), HOSTILE)
def test_cli_refuses_a_hostile_workload_name(
    name: str, reason: str, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _in(tmp_path, name)
    code, err = _run_spec(world, capsys, workload=name)
    assert code == 2
    expected = f"error: {world / 's.yaml'}:8: workloads.0.name: {name!r} is not a single folder name: {reason}"
    assert _error_line(err) == expected
    assert _files(tmp_path) == {tmp_path / "a", tmp_path / "a" / "b", world, world / "s.yaml"}


@pytest.mark.parametrize(("name", "reason"), [h for h in HOSTILE if "\0" not in h[0]])
def test_cli_refuses_a_hostile_run_name(
    name: str, reason: str, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _in(tmp_path, name)
    (world / "a.cfg").write_text(CFG.format(run_name=name))
    (world / "t.csv").write_text(TOPOLOGY + "conv1, 6, 6, 3, 3, 2, 4, 1,\n")
    code = main(["-c", str(world / "a.cfg"), "-t", str(world / "t.csv"), "-p", str(world / "out"), "-q"])
    assert code == 2
    expected = f"error: {world / 'a.cfg'}:2: [general] run_name: {name!r} is not a single folder name: {reason}"
    assert _error_line(capsys.readouterr().err) == expected
    assert _files(tmp_path) == {tmp_path / "a", tmp_path / "a" / "b", world, world / "a.cfg", world / "t.csv"}


def test_an_empty_run_name_is_refused(world: Path) -> None:
    (world / "a.cfg").write_text(CFG.format(run_name=""))
    expected = r"a\.cfg:2: \[general\] run_name: '' is not a single folder name: it is empty"
    with pytest.raises(InputError, match=expected):
        read_config(world / "a.cfg")


@pytest.mark.parametrize("name", ALLOWED)
def test_ordinary_names_with_spaces_and_dots_still_work(
    name: str, world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run_spec(world, capsys, spec=name, workload=name)
    assert code == 0, err
    assert (world / "out" / name / name / "COMPUTE_REPORT.csv").is_file()
    (world / "a.cfg").write_text(CFG.format(run_name=name))
    (world / "t.csv").write_text(TOPOLOGY + "conv1, 6, 6, 3, 3, 2, 4, 1,\n")
    assert main(["-c", str(world / "a.cfg"), "-t", str(world / "t.csv"), "-p", str(world / "out2"), "-q"]) == 0
    assert (world / "out2" / name / "COMPUTE_REPORT.csv").is_file()


@pytest.mark.parametrize("layer", ["../../../../escaped", f"{TMP}/layer-abs", "..", "a/../../b"])
def test_hostile_layer_names_in_a_spec_stay_inside_with_traces(
    layer: str, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run_spec(world, capsys, layer=_in(tmp_path, layer), traces="both")
    assert code == 0, err
    new = _files(tmp_path) - {tmp_path / "a", tmp_path / "a" / "b", world, world / "s.yaml"}
    assert new and all(p.is_relative_to(world / "out" / "t" / "w") or p in (world / "out", world / "out" / "t")
                       for p in new), sorted(new)
    assert (world / "out" / "t" / "w" / "layer0" / "traces.npz").is_file()


def test_hostile_layer_names_in_a_topology_stay_inside_with_traces(world: Path, tmp_path: Path) -> None:
    (world / "a.cfg").write_text(CFG.format(run_name="r"))
    names = ("../../../../up", str(tmp_path / "topo-abs"), "..")
    rows = "".join(f"{name}, 6, 6, 3, 3, 2, 4, 1,\n" for name in names)
    (world / "t.csv").write_text(TOPOLOGY + rows)
    assert main(["-c", str(world / "a.cfg"), "-t", str(world / "t.csv"), "-p", str(world / "out"), "-q",
                 "--traces", "csv"]) == 0
    inside = world / "out" / "r"
    new = _files(tmp_path) - {tmp_path / "a", tmp_path / "a" / "b", world, world / "a.cfg", world / "t.csv"}
    assert all(p.is_relative_to(inside) or p == world / "out" for p in new), sorted(new)
    assert sorted(p.name for p in inside.iterdir() if p.is_dir()) == ["layer0", "layer1", "layer2"]


@pytest.mark.parametrize(("name", "reason"), HOSTILE)
def test_api_refuses_hostile_names(name: str, reason: str, world: Path, tmp_path: Path) -> None:
    name = _in(tmp_path, name)
    text = SPEC.format(spec=_yaml(name), workload="w", layer="g")
    with pytest.raises(InputError) as caught:
        parse_spec(text, "remote.yaml")
    assert (caught.value.source, caught.value.line, caught.value.field) == ("remote.yaml", 2, "name")
    assert caught.value.message == f"{name!r} is not a single folder name: {reason}"
    (world / "s.yaml").write_text(SPEC.format(spec="t", workload=_yaml(name), layer="g"))
    with pytest.raises(InputError, match=r"s\.yaml:8: workloads\.0\.name: "):
        load_spec(world / "s.yaml")
    with pytest.raises(ValueError, match="is not a single folder name"):
        Spec.model_validate({"schema_version": 1, "name": name,
                             "architecture": {"array": {"rows": 4, "cols": 4}, "dataflow": "os",
                                              "sram_kib": {"ifmap": 1, "filter": 1, "ofmap": 1}}})
    if "\0" not in name:
        (world / "a.cfg").write_text(CFG.format(run_name=name))
        with pytest.raises(InputError) as cfg_error:
            read_config(world / "a.cfg")
        assert (cfg_error.value.line, cfg_error.value.field) == (2, "[general] run_name")


@pytest.mark.parametrize(("name", "reason"), [*HOSTILE, ("", "it is empty")])
def test_folder_name_rule(name: str, reason: str, tmp_path: Path) -> None:
    name = _in(tmp_path, name)
    assert folder_name_problem(name) == f"{name!r} is not a single folder name: {reason}"


@pytest.mark.parametrize("name", ALLOWED)
def test_folder_name_rule_allows(name: str) -> None:
    assert folder_name_problem(name) is None


@pytest.mark.parametrize("names", [("..",), ("ok", "../../x"), (f"{TMP}/abs",), ("",), ("ok", "a/b")])
def test_output_folder_refuses_names_that_leave_the_root(names: tuple[str, ...], tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(InputError, match=r"output folder: .* is not a single folder name"):
        output_folder(root, *(_in(tmp_path, name) for name in names))
    assert list(root.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_folder_refuses_a_link_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "out"
    outside = tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "spec")
    with pytest.raises(InputError, match=r"output folder: 'spec/w' resolves to .*elsewhere/w', outside"):
        output_folder(root, "spec", "w")
    assert list(outside.iterdir()) == []


def test_cli_refuses_to_follow_a_link_out_of_outdir(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (world / "out").mkdir()
    os.symlink(outside, world / "out" / "t")
    code, err = _run_spec(world, capsys)
    assert code == 2
    assert "output folder: 't/w' resolves to" in _error_line(err)
    assert list(outside.iterdir()) == []


def test_output_folder_creates_nested_folders_inside(tmp_path: Path) -> None:
    folder = output_folder(tmp_path / "out", "spec name", "w", "layer0")
    assert folder == tmp_path / "out" / "spec name" / "w" / "layer0" and folder.is_dir()
