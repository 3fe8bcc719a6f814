"""The table of bad inputs: every entry point, every case one line, an exit code, the field named, no traceback,
and no file changed outside the output folder.

One parametrised test per entry point: ``python -m reference_sim`` (simulate, ``convert``, ``sweep``),
``python -m graph.run``, ``python -m graph.bench``, the served workflow's form and the served verifier's.  The
entry points run in this process on real files; the model faults, hanging endpoints, killed containers and
full disks run against real servers, files and containers in ``tests/integration`` (``test_llm_http.py``,
``test_service_hostile.py``, ``test_sandbox_docker.py``) and in ``test_graph_run.py``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.run_config import OperatorSettings
from graph import run as run_cli
from graph.graph import build_graph
from graph.host import Host
from graph.verifier_graph import VerifierHost, build_verifier_graph
from reference_sim.cli import main as reference_main
from reference_sim.errors import InputError, SimCoderError
from taskbench import cli as bench_cli
from tests import fakes
from tests.unit.test_bad_input import GOOD_CFG as CFG
from tests.unit.test_bad_input import GOOD_TOPO as TOPO
from tests.unit.test_bad_input import HEADER

REPO = Path(__file__).resolve().parents[2]
GEMM = "Layer, M, N, K,\ng1, 4, 5, 6,\n"
SPEC = (REPO / "scale_sim.yaml").read_text()


def spec_with(old: str, new: str) -> str:
    assert old in SPEC, old
    return SPEC.replace(old, new, 1)


def snapshot(folder: Path, skip: str) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and skip not in p.relative_to(folder).parts}


def lay_out(tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    made = {"cfg": CFG, "topo": TOPO, "gemm": GEMM, "spec": SPEC, **files}
    names = {"cfg": "a.cfg", "topo": "t.csv", "gemm": "g.csv", "spec": "s.yaml"}
    paths: dict[str, str] = {"d": str(tmp_path), "out": str(tmp_path / "out")}
    for key, text in made.items():
        path = tmp_path / names.get(key, key)
        path.write_text(text)
        paths[key] = str(path)
    return paths


def one_error(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


# (id, argv, extra files, exit code, expected text); {cfg}, {topo}, {gemm}, {spec}, {out}, {d} are paths.
REFERENCE: list[tuple[str, list[str], dict[str, str], int, str]] = [
    ("no cfg", ["-c", "{d}/none.cfg", "-t", "{topo}"], {}, 2, "none.cfg: file not found"),
    ("cfg is a folder", ["-c", "{d}", "-t", "{topo}"], {}, 2, "is a directory"),
    ("no topology", ["-c", "{cfg}", "-t", "{d}/none.csv"], {}, 2, "none.csv: file not found"),
    ("missing key", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("ArrayHeight:    4\n", "")}, 2,
     "[architecture_presets] ArrayHeight: missing"),
    ("not an integer", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("ArrayWidth:     4", "ArrayWidth: w")},
     2, "ArrayWidth: 'w' is not an integer"),
    ("zero sram", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("IfmapSramSzkB:   1", "IfmapSramSzkB: 0")}, 2,
     "IfmapSramSzkB: must be positive"),
    ("huge array", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("ArrayHeight:    4", "ArrayHeight: 10**9")},
     2, "ArrayHeight"),
    ("array 1e9", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("ArrayHeight:    4", "ArrayHeight: 1000000000")},
     2, "ArrayHeight: must be at most 65,536"),
    ("sram 1e30", ["-c", "{cfg}", "-t", "{topo}"],
     {"cfg": CFG.replace("IfmapSramSzkB:   1", "IfmapSramSzkB: 1000000000000000000000000000000")}, 2,
     "IfmapSramSzkB: must be at most"),
    ("bandwidth 0", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("Bandwidth : 2", "Bandwidth : 0")}, 2,
     "Bandwidth: must be positive"),
    ("bandwidth huge", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("Bandwidth : 2", "Bandwidth : 99999999")},
     2, "Bandwidth: must be at most"),
    ("bad dataflow", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("Dataflow : os", "Dataflow : xs")}, 2,
     "Dataflow: unknown dataflow 'xs'"),
    ("bad mode", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("USER\n", "FAST\n")}, 2,
     "InterfaceBandwidth: must be USER or CALC"),
    ("no section", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("[run_presets]\nInterfaceBandwidth: USER\n",
                                                                         "")}, 2, "missing section [run_presets]"),
    ("not ini", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": "general\n"}, 2, "not a valid config file"),
    ("run name path", ["-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("run_name = t", "run_name = ../x")}, 2,
     "[general] run_name"),
    ("filter too wide", ["-c", "{cfg}", "-t", "{topo}"], {"topo": HEADER + "c, 6, 6, 3, 9, 2, 4, 1,\n"}, 2,
     "filter width 9 is larger than ifmap width 6"),
    ("no layers", ["-c", "{cfg}", "-t", "{topo}"], {"topo": HEADER}, 2, "topology has no layers"),
    ("field not a number", ["-c", "{cfg}", "-t", "{topo}"], {"topo": HEADER + "c, 6, x6, 3, 3, 2, 4, 1,\n"}, 2,
     "IFMAP Width: not an integer"),
    ("zero channels", ["-c", "{cfg}", "-t", "{topo}"], {"topo": HEADER + "c, 6, 6, 3, 3, 0, 4, 1,\n"}, 2,
     "Channels: must be positive"),
    ("short row", ["-c", "{cfg}", "-t", "{topo}"], {"topo": HEADER + "c, 6, 6, 3, 3, 2, 4,\n"}, 2,
     "expected 7 integers"),
    ("tabs", ["-c", "{cfg}", "-t", "{topo}"], {"topo": HEADER + "c\t6\t6\t3\t3\t2\t4\t1\n"}, 2,
     "fields are not separated by commas"),
    ("conv read as gemm", ["-c", "{cfg}", "-t", "{topo}", "-i", "gemm"], {}, 2, "a GEMM row has 3 numbers"),
    ("gemm short", ["-c", "{cfg}", "-t", "{gemm}", "-i", "gemm"], {"gemm": "L, M, N, K,\ng, 4, 5,\n"}, 2,
     "expected 3 integers"),
    ("both sources", ["-c", "{cfg}", "-t", "{topo}", "--arch", "{spec}"], {}, 2, "not both"),
    ("spec bool", ["--arch", "{spec}"], {"spec": spec_with("rows: 32", "rows: true")}, 2,
     "architecture.array.rows: Input should be a valid integer"),
    ("spec key twice", ["--arch", "{spec}"], {"spec": SPEC + "\nname: again\n"}, 2, "key 'name' is given twice"),
    ("spec nested", ["--arch", "{spec}"], {"spec": "a: " + "[" * 50_000 + "]" * 50_000}, 2, "nested deeper than"),
    ("spec unknown key", ["--arch", "{spec}"], {"spec": spec_with("  dataflow: os", "  dataflow: os\n  clock: 1")}, 2,
     "architecture.clock: unknown key"),
    ("spec array 1e9", ["--arch", "{spec}"], {"spec": spec_with("rows: 32", "rows: 1000000000")}, 2,
     "less than or equal to 65536"),
    ("spec not yaml", ["--arch", "{spec}"], {"spec": "a: [\n"}, 2, "not valid YAML"),
    ("spec not mapping", ["--arch", "{spec}"], {"spec": "- 1\n"}, 2, "expected a mapping"),
    ("unknown workload", ["--arch", "{spec}", "--workload", "nope"], {}, 2, "no workload named 'nope'"),
    ("empty outdir", ["-c", "{cfg}", "-t", "{topo}", "-p", ""], {}, 2, "-p: is empty"),
    ("max requests", ["-c", "{cfg}", "-t", "{topo}", "--max-requests", "nan"], {}, 2, "--max-requests"),
    ("over work limit", ["-c", "{cfg}", "-t", "{topo}", "--max-requests", "10"], {}, 1, "the limit of 1.0e1"),
    ("bad traces flag", ["-c", "{cfg}", "-t", "{topo}", "--traces", "pdf"], {}, 2, "invalid choice: 'pdf'"),
]

CONVERT: list[tuple[str, list[str], dict[str, str], int, str]] = [
    ("output is the cfg", ["convert", "-c", "{cfg}", "-t", "{topo}", "-o", "{cfg}"], {}, 2,
     "-o: {cfg} is an input of this command"),
    ("output is the topology", ["convert", "-c", "{cfg}", "-t", "{topo}", "-o", "{topo}"], {}, 2,
     "is an input of this command"),
    ("empty output", ["convert", "-c", "{cfg}", "-t", "{topo}", "-o", ""], {}, 2, "-o: is empty"),
    ("no topology", ["convert", "-c", "{cfg}"], {}, 2, "no topology"),
    ("bad cfg", ["convert", "-c", "{cfg}", "-t", "{topo}"], {"cfg": CFG.replace("Dataflow : os", "Dataflow : q")},
     2, "unknown dataflow"),
    ("missing cfg", ["convert", "-c", "{d}/none.cfg", "-t", "{topo}"], {}, 2, "file not found"),
]

SWEEP: list[tuple[str, list[str], dict[str, str], int, str]] = [
    ("output is the topology", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--array", "4", "-o", "{topo}"], {}, 2,
     "-o: {topo} is an input"),
    ("output is the cfg", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--array", "4", "-o", "{cfg}"], {}, 2,
     "is an input"),
    ("pareto is the output", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--array", "4", "-o", "{d}/s.csv", "--pareto",
                              "{d}/s.csv"], {}, 2, "--pareto: {d}/s.csv is an input"),
    ("empty output", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--array", "4", "-o", ""], {}, 2, "-o: is empty"),
    ("bad array", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--array", "ax4"], {}, 2, "--array"),
    ("bad dataflow", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--dataflow", "xs"], {}, 2, "--dataflow"),
    ("bad bandwidth", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--bandwidth", "USER:x"], {}, 2, "--bandwidth"),
    ("bad jobs", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--jobs", "0"], {}, 2, "--jobs: must be positive"),
    ("bad figures", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--figures", "all"], {}, 2, "--figures"),
    ("pareto folder missing", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--pareto", "{d}/no/p.csv"], {}, 2,
     "--pareto: folder"),
    ("both sram forms", ["sweep", "-c", "{cfg}", "-t", "{topo}", "--sram-kib", "1", "--ifmap-sram-kib", "1"], {}, 2,
     "not both"),
]


@pytest.mark.parametrize(("argv", "files", "code", "expected"),
                         [pytest.param(*case[1:], id=case[0]) for case in REFERENCE + CONVERT + SWEEP])
def test_reference_sim(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], files: dict[str, str],
                       code: int, expected: str) -> None:
    paths = lay_out(tmp_path, files)
    before = snapshot(tmp_path, "out")
    try:
        got = reference_main([a.format(**paths) for a in argv])
    except SystemExit as exc:
        got = exc.code
    assert got == code
    line = one_error(capsys.readouterr().err)
    assert expected.format(**paths) in line, line
    assert snapshot(tmp_path, "out") == before


RUN: list[tuple[str, list[str], dict[str, str], str]] = [
    ("no spec", ["--arch", "{d}/none.yaml"], {}, "none.yaml: file not found"),
    ("spec bool", ["--arch", "{spec}"], {"spec": spec_with("rows: 32", "rows: true")}, "array.rows"),
    ("budget bool", ["--arch", "{spec}"], {"spec": spec_with("attempts_per_module: 3", "attempts_per_module: true")},
     "budget.attempts_per_module"),
    ("spec key twice", ["--arch", "{spec}"], {"spec": SPEC + "\nname: again\n"}, "given twice"),
    ("strategy icl+cot", ["--strategy", "icl+cot"], {}, "'icl+cot' is spelled icl_cot"),
    ("strategy zero-shot", ["--strategy", "zero-shot"], {}, "'zero-shot' is spelled zero_shot"),
    ("unknown strategy", ["--strategy", "bogus"], {}, "unknown strategy 'bogus'"),
    ("generate", ["--generate", "mapping,cache"], {}, "--generate takes"),
    ("max tokens 0", ["--max-tokens", "0"], {}, "--max-tokens: must be a positive finite number"),
    ("wall nan", ["--max-wall-s", "nan"], {}, "--max-wall-s: must be a positive finite number"),
    ("wall inf", ["--max-wall-s", "inf"], {}, "--max-wall-s: must be a positive finite number"),
    ("attempts -1", ["--max-attempts", "-1"], {}, "--max-attempts"),
    ("rounds -1", ["--repair-rounds", "-1"], {}, "--repair-rounds: must not be negative"),
    ("base url no model", ["--base-url", "http://127.0.0.1:9/v1"], {}, "no model name"),
    ("base url scheme", ["--base-url", "ftp://x", "--model", "m"], {}, "not an http(s) URL"),
    ("out is a file", ["--out", "{cfg}"], {}, "--out: cannot write the run folder"),
    ("resume unknown", ["--resume", "nope"], {}, "no such run to resume"),
    ("reference missing", ["--reference", "{d}/nope"], {}, "nope"),
    ("beyond the reference", ["--arch", "{spec}"], {"spec": spec_with("memory_banks: 1", "memory_banks: 4")},
     "memory_banks: 4"),
    ("work limit", ["--arch", "{spec}"], {"spec": spec_with("workloads:\n", "workloads:\n  - name: huge\n    layers:\n"
                                                                          "      - {name: g, m: 200000, n: 200000, k: "
                                                                          "50000}\n").replace("final_check: [",
                                                                                              "final_check: [huge, ")},
     "verification workload huge (final check): layer 0"),
    ("no verification", ["--arch", "{spec}"], {"spec": SPEC.split("verification:")[0]}, "verification.workloads"),
]


@pytest.mark.parametrize(("argv", "files", "expected"), [pytest.param(*case[1:], id=case[0]) for case in RUN])
def test_graph_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], files: dict[str, str],
                   expected: str) -> None:
    paths = lay_out(tmp_path, files)
    args = [a.format(**paths) for a in argv]
    if "--out" not in args:
        args += ["--out", paths["out"]]
    before = snapshot(tmp_path, "out")
    assert run_cli.main(args) == run_cli.EXIT_BAD_INPUT
    line = one_error(capsys.readouterr().err)
    assert expected.format(**paths) in line, line
    assert snapshot(tmp_path, "out") == before
    assert not Path(paths["out"]).exists() or not any(Path(paths["out"]).iterdir()), "no run folder for bad input"


BENCH: list[tuple[str, list[str], str]] = [
    ("strategy icl+cot", ["tasks", "--model", "m", "--strategy", "icl+cot"], "'icl+cot' is spelled icl_cot"),
    ("strategy zero-shot", ["tasks", "--model", "m", "--strategy", "zero-shot"], "'zero-shot' is spelled zero_shot"),
    ("unknown tasks", ["tasks", "--model", "m", "--tasks", "no-such-task-anywhere"], "no-such-task-anywhere"),
    ("report of nothing", ["tasks", "--report-only", "--out", "{d}/none"], "none"),
]


@pytest.mark.parametrize(("argv", "expected"), [pytest.param(*case[1:], id=case[0]) for case in BENCH])
def test_graph_bench(tmp_path: Path, caplog: pytest.LogCaptureFixture, argv: list[str], expected: str) -> None:
    paths = lay_out(tmp_path, {})
    before = snapshot(tmp_path, "out")
    args = [a.format(**paths) for a in argv]
    if "--out" not in args:
        args += ["--out", paths["out"]]
    assert bench_cli.main(args) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and expected.format(**paths) in errors[0], errors
    assert snapshot(tmp_path, "out") == before


def _remote(tmp_path: Path) -> OperatorSettings:
    return OperatorSettings(remote=True, sandbox="docker", run_root=str(tmp_path / "out"),
                            path_roots=(str(tmp_path),))


FORM: list[tuple[str, dict[str, Any], dict[str, Any] | None, str]] = [
    ("strategy bogus", {"strategy": "bogus"}, None, "strategy: Input should be"),
    ("attempts lots", {"attempts_per_module": "lots"}, None, "attempts_per_module: Input should be a valid integer"),
    ("wall abc", {"max_wall_s": "abc"}, None, "max_wall_s: Input should be a valid number"),
    ("wall nan", {"max_wall_s": math.nan}, None, "max_wall_s: Input should be a finite number"),
    ("generate cache", {"generate": ["cache"]}, None, "generate.0: Input should be"),
    ("human review yes", {"human_review": "yes"}, None, "human_review: Input should be a valid boolean"),
    ("budget over max", {"repair_rounds": 21}, None, "repair_rounds: 21 is over this server's maximum of 20"),
    ("sandbox", {}, {"sandbox": "process"}, "sandbox: a caller may not set this"),
    ("reference", {}, {"reference_dir": "/tmp"}, "reference_dir: a caller may not set this"),
    ("features folder", {}, {"features_dir": "/tmp"}, "features_dir: a caller may not set this"),
    ("unknown context", {}, {"colour": "red"}, "colour: unknown field"),
    ("context not a mapping", {}, "x", "context: must be a mapping"),  # type: ignore[dict-item]
    ("endpoint", {"base_url": "http://127.0.0.1:1/v1"}, None, "base_url: names an endpoint"),
    ("model", {"model": "other"}, None, "model: names a model"),
    ("run dir outside", {"run_dir": "/tmp/x"}, None, "run_dir: must be a new folder inside"),
    ("run id path", {"run_id": "a/b"}, None, "run_id: "),
    ("spec outside", {"spec_path": "/etc/passwd"}, None, "spec_path: outside the folders"),
    ("spec missing", {"spec_path": "{d}/none.yaml"}, None, "spec_path: file not found"),
    ("both specs", {"spec_path": "{spec}", "spec_yaml": "x"}, None, "spec_yaml: give spec_path or spec_yaml"),
    ("inline too big", {"spec_yaml": "#" * (1024 * 1024 + 1)}, None, "spec_yaml: the inline spec is"),
    ("inline not yaml", {"spec_yaml": "a: ["}, None, "spec_yaml:1: not valid YAML"),
    ("inline bool", {"spec_yaml": spec_with("rows: 32", "rows: true")}, None, "array.rows"),
    ("inline endpoint", {"spec_yaml": spec_with("model:\n", "model:\n  base_url: http://127.0.0.1:1/v1\n")}, None,
     "model.base_url: names an endpoint"),
    ("topology outside", {"spec_yaml": spec_with("workloads:\n", "workloads:\n  - {name: x, topology: /etc/passwd}\n")},
     None, "topology: outside the folders"),
]


@pytest.mark.parametrize(("fields", "context", "expected"), [pytest.param(*case[1:], id=case[0]) for case in FORM])
def test_the_served_workflows_form(tmp_path: Path, fields: dict[str, Any], context: Any, expected: str) -> None:
    paths = lay_out(tmp_path, {})
    before = snapshot(tmp_path, "out")
    payload = {k: v.format(**paths) if isinstance(v, str) and len(v) < 200 else v for k, v in fields.items()}
    payload.setdefault("spec_path", paths["spec"]) if "spec_yaml" not in payload else None
    graph = build_graph(Host(_remote(tmp_path), executor_factory=fakes.in_process))
    with pytest.raises(SimCoderError) as info:
        graph.invoke(payload, context=context)
    message = str(info.value).split("\nDuring task")[0]
    assert expected in message and len(message.splitlines()) == 1, message
    assert snapshot(tmp_path, "out") == before and not (tmp_path / "out").exists()


VERIFY: list[tuple[str, dict[str, Any], dict[str, Any] | None, str]] = [
    ("workloads 5", {"workloads": 5}, None, "workloads: Input should be a valid list"),
    ("unknown workload", {"workloads": ["nope"]}, None, "workloads: 1 unknown workload name(s)"),
    ("no candidate", {"candidate_dir": None}, None, "candidate_dir: give a candidate folder"),
    ("candidate outside", {"candidate_dir": "/etc"}, None, "candidate_dir: outside the folders"),
    ("not a simulator", {"candidate_dir": "{d}"}, None, "candidate_dir: not a simulator folder"),
    ("modules missing", {"candidate_dir": None, "modules": {"mapping": ""}}, None, "modules: give the sources"),
    ("sandbox", {}, {"sandbox": "process"}, "sandbox: a caller may not set this"),
    ("reference outside", {"reference_dir": "/usr"}, None, "reference_dir: outside the folders"),
    ("spec outside", {"spec_path": "/etc/passwd"}, None, "spec_path: outside the folders"),
    ("inline topology relative",
     {"spec_yaml": spec_with("workloads:\n", "workloads:\n  - {name: x, topology: t.csv}\n")}, None,
     "topology: an inline spec's topology must be an absolute path"),
    ("unknown field", {}, {"colour": "red"}, "colour: unknown field"),
]


@pytest.mark.parametrize(("fields", "context", "expected"), [pytest.param(*case[1:], id=case[0]) for case in VERIFY])
def test_the_served_verifier(tmp_path: Path, fields: dict[str, Any], context: Any, expected: str) -> None:
    paths = lay_out(tmp_path, {})
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    for role in ("mapping", "network", "memory"):
        (candidate / f"{role}.py").write_text("")
    before = snapshot(tmp_path, "out")
    payload: dict[str, Any] = {"candidate_dir": str(candidate), "final_check": []}
    payload.update({k: v.format(**paths) if isinstance(v, str) and len(v) < 200 else v for k, v in fields.items()})
    payload = {k: v for k, v in payload.items() if v is not None}
    graph = build_verifier_graph(VerifierHost(_remote(tmp_path), executor_factory=fakes.in_process))
    with pytest.raises(InputError) as info:
        graph.invoke(payload, context=context)
    message = str(info.value).split("\nDuring task")[0]
    assert expected in message and len(message.splitlines()) == 1, message
    assert snapshot(tmp_path, "out") == before


def test_the_table_holds_at_least_80_cases() -> None:
    counts: dict[str, Callable[[], int]] = {
        "reference_sim": lambda: len(REFERENCE) + len(CONVERT) + len(SWEEP), "graph.run": lambda: len(RUN),
        "graph.bench": lambda: len(BENCH), "served workflow": lambda: len(FORM), "served verifier": lambda: len(VERIFY)}
    assert sum(count() for count in counts.values()) >= 80
    assert yaml.safe_load(SPEC)["name"]
