"""Table 2 and Fig 3 as benchmark logic: cycle error, the paper's figures, runtime, candidate packages."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agents.package import write_package
from judge.mutants import candidate_files
from taskbench import scalesim, table2

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    table2.add_arguments(parser)
    return parser.parse_args(list(argv))


def _ncf(scalesim_data: Path) -> tuple[list[str], list[int]]:
    """NCF's layer rows (from the shared topology) and SCALE-Sim's cycles for them."""
    entry = json.loads((scalesim_data / "table2.json").read_text())["networks"]["NCF"]
    rows = (scalesim_data / entry["topology"]).read_text().splitlines()[1:]
    return rows, list(entry["cycles"])


@pytest.fixture
def fake_dir(tmp_path: Path, scalesim_data: Path) -> Path:
    """A data folder with two tiny networks: ``Tiny`` (two NCF layers, SCALE-Sim's cycles) and ``Off``.

    ``Off`` is NCF's last layer (77 cycles) with SCALE-Sim's figure set to 70, so its error is 10.00%.
    """
    rows, cycles = _ncf(scalesim_data)
    root = tmp_path / "scalesim"
    (root / "configs").mkdir(parents=True)
    (root / "table2").mkdir()
    shutil.copyfile(scalesim_data / "configs" / "scale.cfg", root / "configs" / "scale.cfg")
    (root / "table2" / "Tiny.csv").write_text("\n".join([HEADER, rows[4], rows[5]]) + "\n")
    (root / "table2" / "Off.csv").write_text("\n".join([HEADER, rows[7]]) + "\n")
    assert cycles[7] == 77
    networks = {
        "Tiny": {"topology": "table2/Tiny.csv", "layers": 2, "cycles": cycles[4:6], "total": sum(cycles[4:6]),
                 "paper_scalesim_total": 218, "paper_simulatorcoder_total": 220, "scalesim_seconds": 2.5},
        "Off": {"topology": "table2/Off.csv", "layers": 1, "cycles": [70], "total": 70,
                "paper_scalesim_total": 70, "paper_simulatorcoder_total": 69, "scalesim_seconds": 4.0},
    }
    document = {"simulator": "fake SCALE-Sim", "config": "configs/scale.cfg", "networks": networks,
                "scalesim_total_seconds": 6.5}
    (root / "table2.json").write_text(json.dumps(document))
    return root


def _document(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "table2.json").read_text())
    assert document["format"] == "simcoder-table2/1"
    return document


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _package(parent: Path, mapping_tail: str = "") -> Path:
    """The reference's modules as a standalone package in ``parent/run/tiny_run_sim`` (a run folder)."""
    files = candidate_files(None)
    files["mapping.py"] += mapping_tail
    candidate = parent / "candidate"
    candidate.mkdir(parents=True)
    for name, text in files.items():
        (candidate / name).write_text(text)
    return write_package(candidate, parent / "run", "tiny_run_sim")


# ----------------------------------------------------------------------------------------- formatting


def test_error_text_zero_positive_negative() -> None:
    assert table2.error_text(table2.error_percent(552616, 552616)) == "0.00%"
    assert table2.error_text(table2.error_percent(101, 100)) == "1.00%"
    assert table2.error_text(table2.error_percent(99, 100)) == "-1.00%"
    assert table2.error_text(table2.error_percent(1333481, 1338519)) == "-0.38%"
    assert table2.error_text(None) == "-"


def test_first_difference_names_the_layer() -> None:
    assert table2.first_difference([1, 2, 3], [1, 2, 3]) is None
    assert table2.first_difference([1, 5, 3], [1, 2, 3]) == "layer 1: SCALE-Sim 2 cycles, got 5"
    assert table2.first_difference([1, 2], [1, 2, 3]) == "3 layers expected, got 2"


def test_table_shows_the_papers_figures(scalesim_data: Path) -> None:
    dataset = table2.load_dataset(scalesim_data)
    assert len(dataset.networks) == 8
    rows = [table2.Row(n, table2.Run(n.cycles, 0.5)) for n in dataset.networks]
    document = table2.build_document(dataset, rows, None)
    text = table2.format_markdown(document)
    paper = json.loads((scalesim_data / "table2.json").read_text())["networks"]
    for name, entry in paper.items():
        cells = _cells(next(line for line in text.splitlines() if line.startswith(f"| {name} ")))
        error = (entry["paper_simulatorcoder_total"] - entry["paper_scalesim_total"]) / entry["paper_scalesim_total"]
        assert cells[1:8] == [str(entry["layers"]), str(entry["total"]), str(entry["total"]), "0.00%",
                              str(entry["paper_scalesim_total"]), str(entry["paper_simulatorcoder_total"]),
                              f"{error * 100:.2f}%"], name
    assert "| MobileNet " in text and "-0.38%" in text
    assert document["ok"] is True


def test_a_differing_or_failed_run_is_not_ok(scalesim_data: Path) -> None:
    dataset = table2.load_dataset(scalesim_data)
    ncf = dataset.networks[0]
    shifted = (ncf.cycles[0] + 1, *ncf.cycles[1:])
    rows = [table2.Row(ncf, table2.Run(ncf.cycles, 0.1), table2.Run(shifted, 0.2)),
            table2.Row(dataset.networks[1], table2.Run(None, None, "boom"))]
    document = table2.build_document(dataset, rows, Path("/x/pkg_sim"))
    assert document["ok"] is False
    candidate = document["networks"][0]["candidate"]
    assert (candidate["status"], candidate["cycles"], candidate["problem"]) == (
        "differs", ncf.total + 1, f"layer 0: SCALE-Sim {ncf.cycles[0]} cycles, got {ncf.cycles[0] + 1}")
    assert document["networks"][1]["reference"]["status"] == "failed"
    text = table2.format_markdown(document)
    assert "boom" in text and "NOT all runs match" in text


# --------------------------------------------------------------------------------------- a fake data set


def test_run_over_a_fake_data_folder(fake_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert table2.main(_args("--scalesim-dir", str(fake_dir), "--out", str(out))) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["runtime.png", "table2.json", "table2.md"]
    assert (out / "runtime.png").read_bytes().startswith(PNG_SIGNATURE)
    assert captured.out == (out / "table2.md").read_text()
    assert [line.split(":")[0] for line in captured.err.splitlines() if "layers;" in line] == ["Tiny", "Off"]

    document = _document(out)
    tiny, off = document["networks"]
    assert (tiny["network"], tiny["layers"], tiny["reference"]["cycles"], tiny["scalesim"]["cycles"]) == (
        "Tiny", 2, 218, 218)
    assert tiny["reference"]["error_percent"] == 0.0 and tiny["reference"]["exact"] is True
    assert tiny["paper"]["error_percent"] == pytest.approx(2 / 218 * 100)
    assert tiny["reference"]["speedup"] == pytest.approx(2.5 / tiny["reference"]["seconds"])
    assert (off["reference"]["cycles"], off["scalesim"]["cycles"], off["reference"]["status"]) == (77, 70, "differs")
    assert off["reference"]["error_percent"] == pytest.approx(10.0)
    assert off["reference"]["problem"] == "layer 0: SCALE-Sim 70 cycles, got 77"
    assert document["totals"]["scalesim_recorded_seconds"] == 6.5
    assert document["ok"] is False

    text = captured.out
    assert "| Tiny " in text and "0.00%" in text and "10.00%" in text and "0.92%" in text and "-1.43%" in text
    assert "Off: reference differs: layer 0: SCALE-Sim 70 cycles, got 77" in text


def test_networks_option_selects_and_matches_loosely(fake_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert table2.main(_args("--scalesim-dir", str(fake_dir), "--out", str(out), "--networks", "ti-ny")) == 0
    assert [n["network"] for n in _document(out)["networks"]] == ["Tiny"]


def test_scalesim_side_by_side_with_a_fake_runner(fake_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_side_by_side(name: str, data: Path, work: Path) -> dict[str, Any]:
        calls.append(name)
        assert data == fake_dir
        return {"network": name, "scalesim_seconds": 30.0, "ours_seconds": 0.3, "cycles_equal": True,
                "problems": []}

    monkeypatch.setattr(table2, "prepare_scalesim", lambda: Path("/fake/python"))
    monkeypatch.setattr(table2, "side_by_side_run", fake_side_by_side)
    out = tmp_path / "out"
    assert table2.main(_args("--scalesim-dir", str(fake_dir), "--out", str(out), "--networks", "Tiny",
                             "--scalesim")) == 0
    assert calls == ["Tiny"]
    document = _document(out)
    side = document["networks"][0]["scalesim_run"]
    assert (side["seconds"], side["reference_process_seconds"], side["speedup"], side["ok"]) == (30.0, 0.3, 100, True)
    assert list(table2.runtime_series(document)) == ["ours (reference_sim)", "SCALE-Sim recorded", "SCALE-Sim run"]
    assert "## SCALE-Sim run side by side" in (out / "table2.md").read_text()


def test_scalesim_that_cannot_be_installed_is_one_line(fake_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    def no_network(venv: Path) -> Path:
        raise subprocess.CalledProcessError(1, ["pip", "install", "scalesim==2.0.2"])

    monkeypatch.setattr(scalesim, "ensure_scalesim", no_network)
    monkeypatch.setattr(scalesim, "scalesim_venv", lambda: tmp_path / "venv")
    assert table2.main(_args("--scalesim-dir", str(fake_dir), "--out", str(tmp_path / "out"), "--scalesim")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --scalesim: SCALE-Sim 2.0.2 could not be installed")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- bad input


def test_missing_data_folder_is_exit_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-scalesim"
    assert table2.main(_args("--scalesim-dir", str(missing), "--out", str(tmp_path / "out"))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(missing) in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert table2.main(_args("--scalesim-dir", str(empty))) == 2
    assert str(empty / "table2.json") in capsys.readouterr().err


def test_unknown_network_and_missing_package_are_exit_2(fake_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert table2.main(_args("--scalesim-dir", str(fake_dir), "--networks", "LeNet")) == 2
    assert "'LeNet' (one of Tiny, Off)" in capsys.readouterr().err
    assert table2.main(_args("--scalesim-dir", str(fake_dir), "--candidate", str(tmp_path))) == 2
    assert f"no package in {tmp_path}" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- the real data


def test_real_ncf_and_transformer_match_scalesim(scalesim_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = _args("--scalesim-dir", str(scalesim_data), "--out", str(out), "--networks", "NCF,Transformer")
    assert table2.main(args) == 0
    expected = json.loads((scalesim_data / "table2.json").read_text())["networks"]
    document = _document(out)
    assert [n["network"] for n in document["networks"]] == ["NCF", "Transformer"]
    for item in document["networks"]:
        entry = expected[item["network"]]
        assert item["reference"]["cycles"] == item["scalesim"]["cycles"] == entry["total"]
        assert (item["layers"], item["reference"]["exact"]) == (entry["layers"], True)
        assert item["scalesim"]["recorded_seconds"] == entry["scalesim_seconds"]
        assert table2.error_text(item["reference"]["error_percent"]) == "0.00%"
    assert document["totals"]["scalesim_recorded_seconds"] == pytest.approx(
        expected["NCF"]["scalesim_seconds"] + expected["Transformer"]["scalesim_seconds"])


def test_candidate_package_reads_zero_error(scalesim_data: Path, tmp_path: Path) -> None:
    package = _package(tmp_path)
    assert table2.find_package(package.parent) == table2.find_package(package) == package.resolve()
    out = tmp_path / "out"
    args = _args("--scalesim-dir", str(scalesim_data), "--out", str(out), "--networks", "NCF",
                 "--candidate", str(package.parent))
    assert table2.main(args) == 0
    document = _document(out)
    candidate = document["networks"][0]["candidate"]
    assert (candidate["cycles"], candidate["status"], candidate["exact"]) == (552616, "exact", True)
    assert table2.error_text(candidate["error_percent"]) == "0.00%"
    assert document["candidate"]["name"] == "tiny_run_sim"
    text = (out / "table2.md").read_text()
    assert "## Candidate" in text
    rows = [_cells(line) for line in text.splitlines() if line.startswith("| NCF ")]
    assert rows[1] == ["NCF", "552616", "552616", "0.00%", rows[1][4], "42.7", rows[1][6], "exact"]
    assert "candidate package" in table2.runtime_series(document)


def test_broken_candidate_is_a_failed_row_and_exit_1(fake_dir: Path, tmp_path: Path) -> None:
    tail = "\n\ndef map_layer(layer, hardware):\n    raise RuntimeError('seeded breakage')\n"
    package = _package(tmp_path, tail)
    out = tmp_path / "out"
    args = _args("--scalesim-dir", str(fake_dir), "--out", str(out), "--networks", "Tiny",
                 "--candidate", str(package))
    assert table2.main(args) == 1
    document = _document(out)
    candidate = document["networks"][0]["candidate"]
    assert (candidate["status"], candidate["cycles"], candidate["error_percent"]) == ("failed", None, None)
    assert candidate["problem"].startswith("exit code 1:") and "seeded breakage" in candidate["problem"]
    assert document["networks"][0]["reference"]["exact"] is True
    rows = [_cells(line) for line in (out / "table2.md").read_text().splitlines() if line.startswith("| Tiny ")]
    assert rows[1][1:4] == ["-", "218", "-"] and rows[1][-1] == "failed"
    assert (out / "runtime.png").read_bytes().startswith(PNG_SIGNATURE)
