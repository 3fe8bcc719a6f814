"""The run report: JSON round trip, the Markdown summary, the charts and the schema check."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from agents.report import (
    SCHEMA,
    AttemptRecord,
    LayerCycles,
    ModuleRecord,
    OptimiserRecord,
    ReportError,
    Reproducibility,
    RunReport,
    RuntimeRecord,
    StageRecord,
    TokenRecord,
    VerificationRecord,
    WorkloadRecord,
    file_sha256,
    first_line,
    package_versions,
    read_report,
    url_host,
    write_report,
)
from reference_sim.errors import SimCoderError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report(mode: str = "model", *, runtime: bool = True) -> RunReport:
    model = mode == "model"
    return RunReport(
        run_id="run-42",
        status="verified",
        mode="model" if model else "template",
        started_at="2025-01-01T12:00:00+00:00",
        seconds=12.5,
        spec="scale_sim.yaml",
        package="runs/run-42/scale_example_run_32x32_os_sim",
        modules=[ModuleRecord(module=m, source="generated" if model else "template", attempts=2 if model else 0,
                              status="passed") for m in ("mapping", "network", "memory")],
        attempts=[
            AttemptRecord(module="mapping", attempt=1, kind="write", unit=None, status="failed",
                          message="row folds | wrong\nsecond line", input_tokens=1200, output_tokens=800, seconds=3.5),
            AttemptRecord(module="mapping", attempt=2, kind="repair", unit="map_layer", status="passed",
                          message="fixed", input_tokens=1500, output_tokens=600, seconds=2.0),
        ] if model else [],
        verification=VerificationRecord(
            outcome="passed", message="all workloads match", diagnosis="", blamed=[],
            workloads=[WorkloadRecord(workload="edge_cases", path="traced", passed=True),
                       WorkloadRecord(workload="edge_cases", path="untraced", passed=True),
                       WorkloadRecord(workload="resnet18", path="final_check", passed=False)],
            stages=[StageRecord(stage="mapping", workload="edge_cases", field="LayerMapping.row_folds",
                                expected="3", actual="2")],
            total_cycle_error=0.0125),
        layers=[LayerCycles(workload="edge_cases", layer=0, name="conv1", expected=1949, actual=1949),
                LayerCycles(workload="edge_cases", layer=1, name="conv2", expected=507, actual=530),
                LayerCycles(workload="edge_cases", layer=2, name="gemm", expected=250000, actual=None)],
        runtime=RuntimeRecord(candidate_s=1.8, reference_s=1.2, workload="edge_cases") if runtime else None,
        optimiser=OptimiserRecord(module="memory", accepted=True, before_s=1.8, after_s=1.3,
                                  message="vectorised the fold loop"),
        tokens=[TokenRecord(node="coder", calls=2, input_tokens=2700, output_tokens=1400),
                TokenRecord(node="repairer", calls=1, input_tokens=900, output_tokens=300)] if model else [],
        reproducibility=Reproducibility(
            model="qwen2.5-coder" if model else None, base_url_host="127.0.0.1" if model else None,
            temperature=0.2 if model else None, seed=7 if model else None, strategy="icl_cot", granularity="module",
            budgets={"attempts_per_module": 3, "repair_rounds": 4, "timeout_s": 60.5}, spec_path="scale_sim.yaml",
            spec_sha256="ab" * 32, packages=package_versions(), python="3.11.7",
            reference="SCALE-Sim v2 (commit 22f88b1)"),
        notes=["a note", "another | note"],
    )


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_round_trip_through_the_files(tmp_path: Path) -> None:
    report = _report()
    written = write_report(tmp_path, report)
    assert [p.name for p in written] == ["report.json", "report.md", "cycles.png", "runtime.png"]
    assert all(p.is_file() for p in written)
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["schema"] == SCHEMA and "schema_" not in document
    again = read_report(tmp_path / "report.json")
    assert again == report
    assert read_report(tmp_path) == report
    assert again.runtime is not None and again.runtime.ratio == pytest.approx(1.5)
    assert again.layers[1].relative_error == pytest.approx(23 / 507)
    assert again.layers[2].relative_error is None


def test_template_mode_first_line(tmp_path: Path) -> None:
    write_report(tmp_path, _report("template"))
    first = (tmp_path / "report.md").read_text().splitlines()[0]
    assert "template mode" in first and "no model was asked" in first
    assert "built-in verified modules" in first and "verified" in first


def test_model_mode_first_line(tmp_path: Path) -> None:
    write_report(tmp_path, _report("model"))
    first = (tmp_path / "report.md").read_text().splitlines()[0]
    assert "template mode" not in first and "no model was asked" not in first
    assert "model mode" in first and "qwen2.5-coder" in first
    assert first == first_line(_report("model"))


def test_markdown_holds_every_section(tmp_path: Path) -> None:
    write_report(tmp_path, _report())
    text = (tmp_path / "report.md").read_text()
    for heading in ("## Modules", "## Attempts", "## Verification", "### Stage evidence",
                    "## Cycles per layer against the reference", "## Runtime against the reference", "## Optimiser",
                    "## Tokens per node", "## Reproducibility", "## Notes"):
        assert heading in text, heading
    assert "| resnet18 | final_check | FAIL |" in text
    assert "LayerMapping.row_folds" in text
    assert "+4.536 %" in text  # conv2: 530 against 507
    assert "1.50x the reference" in text
    assert "1.38x" in text  # optimiser 1.8 s -> 1.3 s
    assert "| **total** | 3 | 3600 | 1700 |" in text
    assert "row folds \\| wrong second line" in text  # pipes escaped, newlines folded: the table stays whole
    assert "![per-layer cycles](cycles.png)" in text and "![runtime](runtime.png)" in text
    assert "ab" * 32 in text and "attempts_per_module=3" in text


def test_charts_are_real_pngs(tmp_path: Path) -> None:
    write_report(tmp_path, _report())
    for name in ("cycles.png", "runtime.png"):
        path = tmp_path / name
        width, height = _png_size(path)
        assert width >= 300 and height >= 100, (name, width, height)
        assert path.stat().st_size > 5000, name


def test_missing_runtime_skips_its_chart(tmp_path: Path) -> None:
    write_report(tmp_path, _report())
    assert (tmp_path / "runtime.png").is_file()
    written = write_report(tmp_path, _report(runtime=False))
    assert not (tmp_path / "runtime.png").exists(), "a stale runtime chart was left behind"
    assert [p.name for p in written] == ["report.json", "report.md", "cycles.png"]
    text = (tmp_path / "report.md").read_text()
    assert "Chart `runtime.png` not drawn: no runtime was measured." in text
    assert "No runtime measured." in text
    assert read_report(tmp_path).runtime is None


def test_missing_layers_skip_the_cycles_chart(tmp_path: Path) -> None:
    report = _report().model_copy(update={"layers": []})
    write_report(tmp_path, report)
    assert not (tmp_path / "cycles.png").exists()
    assert "Chart `cycles.png` not drawn: no per-layer cycles were recorded." in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(("schema", "match"), [
    ("simcoder-report/2", r"unknown report schema 'simcoder-report/2'"),
    (None, r"no 'schema' field"),
])
def test_a_wrong_schema_is_refused(tmp_path: Path, schema: str | None, match: str) -> None:
    write_report(tmp_path, _report())
    document = json.loads((tmp_path / "report.json").read_text())
    if schema is None:
        del document["schema"]
    else:
        document["schema"] = schema
    (tmp_path / "report.json").write_text(json.dumps(document))
    with pytest.raises(ReportError, match=match) as caught:
        read_report(tmp_path / "report.json")
    assert isinstance(caught.value, SimCoderError) and isinstance(caught.value, ValueError)


def test_the_model_refuses_a_wrong_schema() -> None:
    document = json.loads(_report().model_dump_json(by_alias=True))
    document["schema"] = "other/1"
    with pytest.raises(ValueError, match="simcoder-report/1"):
        RunReport.model_validate(document)


def test_bad_fields_and_bad_files_are_report_errors(tmp_path: Path) -> None:
    write_report(tmp_path, _report())
    document = json.loads((tmp_path / "report.json").read_text())
    document["status"] = "great"
    (tmp_path / "report.json").write_text(json.dumps(document))
    with pytest.raises(ReportError, match=r"status: "):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(ReportError, match="not a JSON report"):
        read_report(tmp_path)
    with pytest.raises(ReportError, match="file not found"):
        read_report(tmp_path / "nothing.json")


def test_package_versions() -> None:
    versions = package_versions()
    assert {"python", "numpy", "pydantic"} <= set(versions)
    assert "not-a-package" not in versions


def test_reproducibility_helpers(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"abc")
    assert file_sha256(spec) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert url_host("http://user:secret@127.0.0.1:8000/v1?key=x") == "127.0.0.1:8000"
    assert url_host("https://api.example.com/v1") == "api.example.com"
    assert url_host("localhost:11434") == "localhost:11434"
    assert url_host(None) is None and url_host("") is None
