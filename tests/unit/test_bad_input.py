"""Bad input gets one line naming the file, the line or field and what is wrong; exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_sim.cli import main

GOOD_CFG = """[general]
run_name = t

[architecture_presets]
ArrayHeight:    4
ArrayWidth:     4
IfmapSramSzkB:   1
FilterSramSzkB:  1
OfmapSramSzkB:   1
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 2
Dataflow : os
MemoryBanks:   1

[run_presets]
InterfaceBandwidth: USER
"""
HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
GOOD_TOPO = HEADER + "conv1, 6, 6, 3, 3, 2, 4, 1,\n"


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], cfg: str = GOOD_CFG, topo: str = GOOD_TOPO,
         extra: list[str] | None = None) -> tuple[int, str]:
    (tmp_path / "a.cfg").write_text(cfg)
    (tmp_path / "t.csv").write_text(topo)
    code = main(["-c", str(tmp_path / "a.cfg"), "-t", str(tmp_path / "t.csv"), "-p", str(tmp_path / "out"), "-q",
                 *(extra or [])])
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_good_input_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(tmp_path, capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "t" / "COMPUTE_REPORT.csv").is_file()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("ArrayHeight:    4\n", "", "a.cfg: [architecture_presets] ArrayHeight: missing"),
        ("ArrayHeight:    4", "ArrayHeight:    four",
         "a.cfg:5: [architecture_presets] ArrayHeight: 'four' is not an integer"),
        ("Dataflow : os", "Dataflow : xs", "a.cfg:14: [architecture_presets] Dataflow: unknown dataflow 'xs'"),
        ("IfmapSramSzkB:   1", "IfmapSramSzkB:   0",
         "a.cfg:7: [architecture_presets] IfmapSramSzkB: must be positive, got 0"),
        ("ArrayWidth:     4", "ArrayWidth:     -4",
         "a.cfg:6: [architecture_presets] ArrayWidth: must be positive, got -4"),
        ("Bandwidth : 2", "Bandwidth : 0", "a.cfg:13: [architecture_presets] Bandwidth: must be positive"),
        ("ArrayHeight:    4", "ArrayHeight:    1000000000",
         "a.cfg:5: [architecture_presets] ArrayHeight: must be at most 65,536, got 1,000,000,000"),
        ("IfmapSramSzkB:   1", "IfmapSramSzkB:   1000000000000000000000000000000",
         "a.cfg:7: [architecture_presets] IfmapSramSzkB: must be at most 16,777,216"),
        ("Bandwidth : 2", "Bandwidth : 9999999999", "a.cfg:13: [architecture_presets] Bandwidth: must be at most"),
        ("InterfaceBandwidth: USER", "InterfaceBandwidth: FAST", "InterfaceBandwidth: must be USER or CALC"),
        ("[run_presets]\nInterfaceBandwidth: USER\n", "", "a.cfg: missing section [run_presets]"),
        ("[general]", "general", "a.cfg:1: not a valid config file"),
    ],
)
def test_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str) -> None:
    code, err = _run(tmp_path, capsys, cfg=GOOD_CFG.replace(old, new))
    assert code == 2
    line = _one_error_line(err)
    assert expected in line, line


@pytest.mark.parametrize(
    ("topo", "expected"),
    [
        (HEADER + "conv1, 6, 6, 7, 3, 2, 4, 1,\n", "t.csv:2: filter height 7 is larger than ifmap height 6"),
        (HEADER + "conv1, 6, 6, 3, 9, 2, 4, 1,\n", "t.csv:2: filter width 9 is larger than ifmap width 6"),
        (HEADER, "t.csv: topology has no layers"),
        (HEADER + "\n\n", "t.csv: topology has no layers"),
        (HEADER + "conv1, 6, x6, 3, 3, 2, 4, 1,\n", "t.csv:2: IFMAP Width: not an integer"),
        (HEADER + "conv1, 6, 6, 3, 3, 0, 4, 1,\n", "t.csv:2: Channels: must be positive, got 0"),
        (HEADER + "conv1, 6, 6, 3, 3, 2, 4,\n", "t.csv:2: expected 7 integers after the layer name"),
        (HEADER + "conv1\t6\t6\t3\t3\t2\t4\t1\n", "t.csv:2: fields are not separated by commas"),
    ],
)
def test_bad_topology(tmp_path: Path, capsys: pytest.CaptureFixture[str], topo: str, expected: str) -> None:
    code, err = _run(tmp_path, capsys, topo=topo)
    assert code == 2
    line = _one_error_line(err)
    assert expected in line, line


def test_a_conv_topology_read_as_gemm_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(tmp_path, capsys, topo=GOOD_TOPO, extra=["-i", "gemm"])
    assert code == 2
    assert ("t.csv:2: a GEMM row has 3 numbers (M, N, K), this one has 7; is it a conv topology (-i conv)?"
            in _one_error_line(err))


def test_gemm_topology_needs_three_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(tmp_path, capsys, topo="Layer, M, N, K,\ng1, 4, 5,\n", extra=["-i", "gemm"])
    assert code == 2
    assert "t.csv:2: expected 3 integers after the layer name (M, N, K), found 2" in _one_error_line(err)


def test_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(tmp_path / "missing.cfg"), "-t", "x.csv", "-q"]) == 2
    assert "missing.cfg: file not found" in _one_error_line(capsys.readouterr().err)
    (tmp_path / "a.cfg").write_text(GOOD_CFG)
    assert main(["-c", str(tmp_path / "a.cfg"), "-t", str(tmp_path), "-q"]) == 2
    assert "is a directory, not a file" in _one_error_line(capsys.readouterr().err)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert main(["-c", str(tmp_path / "a.cfg"), "-t", str(tmp_path / "bin.csv"), "-q"]) == 2
    assert "bin.csv: cannot read file" in _one_error_line(capsys.readouterr().err)


def test_title_and_blank_lines_are_skipped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topo = HEADER + "\nMy Network (title),\n" + "conv1, 6, 6, 3, 3, 2, 4, 1,\n\n" + "conv2, 5, 5, 1, 1, 2, 3, 1,\n"
    code, err = _run(tmp_path, capsys, topo=topo)
    assert code == 0, err
    assert "t.csv:3: not a layer (a title line: a name with no numbers); skipped" in err and "My Network" not in err
    assert "t.csv:2: blank line skipped" in err
    report = (tmp_path / "out" / "t" / "COMPUTE_REPORT.csv").read_text().splitlines()
    assert len(report) == 3, "two layers expected, the title must not become one"


YAML_OK = """schema_version: 1
name: t
architecture:
  array: {rows: 4, cols: 4}
  dataflow: os
  sram_kib: {ifmap: 1, filter: 1, ofmap: 1}
workloads:
  - name: w
    layers:
      - {name: g, m: 5, n: 3, k: 7}
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  dataflow: os\n", "  dataflow: os\n  clock_mhz: 700\n", "s.yaml:6: architecture.clock_mhz: unknown key"),
        ("schema_version: 1", "schema_version: 2", "s.yaml:1: schema_version: unsupported schema_version 2"),
        ("dataflow: os", "dataflow: rs", "s.yaml:5: architecture.dataflow: Input should be 'os', 'ws' or 'is'"),
        ("ifmap: 1,", "ifmap: 0,", "s.yaml:6: architecture.sram_kib.ifmap: Input should be greater than 0"),
        ("m: 5", "m: five", "s.yaml:10: workloads.0.layers.0.m: Input should be a valid integer"),
        ("  array: {rows: 4, cols: 4}\n", "", "s.yaml:3: architecture.array: Field required"),
        ("name: g, m: 5, n: 3, k: 7", "name: c, ifmap_h: 3, ifmap_w: 3, filter_h: 4, filter_w: 1, channels: 1, "
         "num_filters: 1", "workloads.0.layers.0: filter_h 4 is larger than ifmap_h 3"),
        ("architecture:", "architecture: [", "s.yaml:5: not valid YAML"),
    ],
)
def test_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str) -> None:
    assert old in YAML_OK
    (tmp_path / "s.yaml").write_text(YAML_OK.replace(old, new))
    assert main(["--arch", str(tmp_path / "s.yaml"), "-p", str(tmp_path / "out"), "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert expected in line, line


def test_good_spec_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.yaml").write_text(YAML_OK)
    assert main(["--arch", str(tmp_path / "s.yaml"), "-p", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out" / "t" / "w" / "COMPUTE_REPORT.csv").is_file()


def test_python_api_rejects_bad_values() -> None:
    from reference_sim import Hardware, Layer

    with pytest.raises(ValueError, match="layer: channels must be a positive integer, got 0"):
        Layer("c", 4, 4, 3, 3, 0, 2, 1, 1)
    with pytest.raises(ValueError, match="filter 5x3 is larger than ifmap 4x4"):
        Layer("c", 4, 4, 5, 3, 1, 2, 1, 1)
    with pytest.raises(ValueError, match="hardware: dataflow must be 'os', 'ws' or 'is', got 'rs'"):
        Hardware(4, 4, "rs", 1, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hardware: ofmap_sram_kib must be a positive integer, got -1"):
        Hardware(4, 4, "os", 1, 1, -1)


@pytest.mark.parametrize(("argv", "expected"), [
    (["convert", "-c", "{cfg}", "-t", "{topo}", "-o", "{cfg}"], "error: -o: {cfg} is an input of this command"),
    (["convert", "-c", "{cfg}", "-t", "{topo}", "-o", "{topo}"], "error: -o: {topo} is an input of this command"),
    (["sweep", "-c", "{cfg}", "-t", "{topo}", "--array", "4", "-o", "{topo}"],
     "error: -o: {topo} is an input of this command"),
    (["sweep", "-c", "{cfg}", "-t", "{topo}", "--array", "4", "-o", "{d}/s.csv", "--pareto", "{d}/s.csv"],
     "error: --pareto: {d}/s.csv is an input of this command"),
    (["sweep", "-c", "{cfg}", "-t", "{topo}", "--array", "4", "-o", ""], "error: -o: is empty"),
    (["-c", "{cfg}", "-t", "{topo}", "-p", ""], "error: -p: is empty"),
])
def test_outputs_never_overwrite_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                        expected: str) -> None:
    names = {"cfg": str(tmp_path / "a.cfg"), "topo": str(tmp_path / "t.csv"), "d": str(tmp_path)}
    (tmp_path / "a.cfg").write_text(GOOD_CFG)
    (tmp_path / "t.csv").write_text(GOOD_TOPO)
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())
    assert main([a.format(**names) for a in argv]) == 2
    assert _one_error_line(capsys.readouterr().err).startswith(expected.format(**names))
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == before


def test_a_full_disk_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full on this machine")
    report = tmp_path / "out" / "t" / "COMPUTE_REPORT.csv"
    report.parent.mkdir(parents=True)
    report.symlink_to(full)
    code, err = _run(tmp_path, capsys)
    assert code == 1
    line = _one_error_line(err)
    assert line.startswith(f"error: cannot write {report}: No space left on device"), line
