"""The run report: what a SimulatorCoder run did, as versioned JSON, a Markdown summary and two charts.

:class:`RunReport` (schema :data:`SCHEMA`) records the modules and every attempt at them, the verdict
per workload and path with the stage evidence, per-layer cycles against the reference, the runtime
against the reference, the optimiser's result, the tokens per graph node and what is needed to
reproduce the run.  :func:`write_report` writes ``report.json``, ``report.md``, ``cycles.png`` and
``runtime.png`` into the run folder; :func:`read_report` reads ``report.json`` back, refusing any other
schema.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reference_sim.errors import SimCoderError
from reference_sim.reports import writing

log = logging.getLogger(__name__)

SCHEMA = "simcoder-report/1"
JSON_FILE = "report.json"
MARKDOWN_FILE = "report.md"
CYCLES_CHART = "cycles.png"
RUNTIME_CHART = "runtime.png"
REFERENCE = "SCALE-Sim v2 (commit 22f88b1), reference_sim"
"""What every run is judged against (``Reproducibility.reference``)."""
VERSIONED_PACKAGES = ("numpy", "langgraph", "langchain-core", "langchain-openai", "pydantic", "docker")


class ReportError(SimCoderError, ValueError):
    """A report file that cannot be read: not JSON, another schema, or fields that do not validate."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AttemptRecord(_Record):
    """One call of the coder on one module: writing it, repairing it or optimising it."""

    module: str
    attempt: int
    kind: Literal["write", "repair", "optimise"]
    unit: str | None
    """The function or class written on its own (function granularity); ``None`` for the whole module."""
    status: str
    message: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    seconds: float = Field(ge=0)


class ModuleRecord(_Record):
    """Where a module of the final simulator came from and how many attempts it took."""

    module: str
    source: Literal["generated", "template", "reference"]
    attempts: int = Field(ge=0)
    status: str


class WorkloadRecord(_Record):
    """The verdict on one workload along one verification path."""

    workload: str
    path: Literal["traced", "untraced", "final_check"]
    passed: bool


class StageRecord(_Record):
    """A piece of stage evidence: the first field of a stage's output that differs from the reference."""

    stage: str
    workload: str
    field: str
    expected: str
    actual: str


class LayerCycles(_Record):
    """One layer's total cycles: the reference's and the candidate's (``None`` when it produced none)."""

    workload: str
    layer: int = Field(ge=0)
    name: str
    expected: float
    actual: float | None

    @property
    def relative_error(self) -> float | None:
        """``(actual - expected) / expected``; ``None`` without a candidate value or with ``expected == 0``."""
        if self.actual is None or self.expected == 0:
            return None
        return (self.actual - self.expected) / self.expected


class RuntimeRecord(_Record):
    """Wall-clock seconds of the candidate and of the reference on the same workload."""

    candidate_s: float = Field(ge=0)
    reference_s: float = Field(ge=0)
    workload: str

    @property
    def ratio(self) -> float | None:
        """``candidate_s / reference_s`` (above 1: the candidate is slower); ``None`` when the reference took 0 s."""
        return self.candidate_s / self.reference_s if self.reference_s > 0 else None


class OptimiserRecord(_Record):
    """The optimiser's outcome: whether its faster module was kept, and the runtimes before and after."""

    module: str | None
    accepted: bool
    before_s: float | None
    after_s: float | None
    message: str


class TokenRecord(_Record):
    """LLM usage of one graph node."""

    node: str
    calls: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class Reproducibility(_Record):
    """What it takes to run this again: model settings, budgets, the spec's digest and the software versions."""

    model: str | None
    base_url_host: str | None
    temperature: float | None
    seed: int | None
    strategy: str
    granularity: str
    budgets: dict[str, int | float]
    spec_path: str
    spec_sha256: str
    packages: dict[str, str]
    python: str
    reference: str


class VerificationRecord(_Record):
    """The verifier's last verdict: outcome, diagnosis, blamed modules and the evidence."""

    outcome: str
    message: str
    diagnosis: str
    blamed: list[str]
    workloads: list[WorkloadRecord]
    stages: list[StageRecord]
    total_cycle_error: float | None


class FeatureRecord(_Record):
    """A catalogue feature the run provides beyond the reference, and the evidence that judged it."""

    name: str
    params: dict[str, float]
    implementation: Literal["built-in", "written by the agent"]
    """The catalogue's built-in implementation (template mode), or code the agent wrote and the judge ran in
    the sandbox."""
    passed: bool
    evidence: str
    """The evidence levels that passed, strongest first: ``exact, oracle, properties k/k``."""
    summary: str
    tables: list[str]


class RunReport(_Record):
    """The whole run (JSON schema :data:`SCHEMA`; the field ``schema_`` is written as ``schema``)."""

    schema_: Literal["simcoder-report/1"] = Field(default="simcoder-report/1", alias="schema")
    run_id: str
    status: Literal["verified", "failed", "budget_exhausted", "cancelled"]
    mode: Literal["template", "model"]
    started_at: str
    seconds: float = Field(ge=0)
    spec: str
    package: str | None
    modules: list[ModuleRecord]
    attempts: list[AttemptRecord]
    verification: VerificationRecord | None
    layers: list[LayerCycles]
    runtime: RuntimeRecord | None
    optimiser: OptimiserRecord | None
    tokens: list[TokenRecord]
    reproducibility: Reproducibility
    features: list[FeatureRecord] = Field(default_factory=list)
    notes: list[str]


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on (those not installed are left out)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex (``Reproducibility.spec_sha256``)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def url_host(url: str | None) -> str | None:
    """The host[:port] of a base URL, without scheme, credentials, path or query (``Reproducibility.base_url_host``)."""
    if not url:
        return None
    parts = urlsplit(url if "//" in url else f"//{url}")
    if parts.hostname is None:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname + (f":{port}" if port is not None else "")


def read_report(path: str | Path) -> RunReport:
    """Read a ``report.json`` (or the run folder holding one).

    Raises :class:`ReportError` when the file is missing or not JSON, when its ``schema`` is absent or
    is not :data:`SCHEMA`, or when a field does not validate.
    """
    path = Path(path)
    if path.is_dir():
        path = path / JSON_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{path}: not a JSON report ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(document, dict) or "schema" not in document:
        raise ReportError(f"{path}: not a SimulatorCoder run report (no 'schema' field)")
    if document["schema"] != SCHEMA:
        raise ReportError(f"{path}: unknown report schema {document['schema']!r} (this version reads {SCHEMA!r})")
    try:
        return RunReport.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ReportError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None


def write_report(run_dir: Path, report: RunReport) -> list[Path]:
    """Write ``report.json``, ``report.md`` and the charts ``cycles.png``, ``runtime.png`` into ``run_dir``.

    A chart whose data is missing is not drawn (and a chart of that name left from an earlier write
    is removed), and ``report.md`` says so.  Returns the paths written.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    json_path = run_dir / JSON_FILE
    with writing(json_path):
        json_path.write_text(report.model_dump_json(indent=2, by_alias=True) + "\n", encoding="utf-8")
    written.append(json_path)
    charts: dict[str, str | None] = {}
    for filename, draw in ((CYCLES_CHART, _cycles_chart), (RUNTIME_CHART, _runtime_chart)):
        path = run_dir / filename
        missing = draw(report, path)
        charts[filename] = missing
        if missing is None:
            written.append(path)
        elif path.exists():
            path.unlink()
    md_path = run_dir / MARKDOWN_FILE
    with writing(md_path):
        md_path.write_text(render_markdown(report, charts), encoding="utf-8")
    written.insert(1, md_path)
    log.info("run report written to %s", run_dir)
    return written


# ---------------------------------------------------------------- Markdown


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{int(value)}" if float(value).is_integer() else f"{value:.6g}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.4g} %"


def first_line(report: RunReport) -> str:
    """The summary's first line: run, status and mode (template mode says no model was asked)."""
    status = report.status.replace("_", " ")
    if report.mode == "template":
        how = "template mode: the built-in verified modules were used and no model was asked"
    else:
        model = report.reproducibility.model or "an unnamed model"
        how = f"model mode: modules written by {model}"
    return f"# SimulatorCoder run {report.run_id}: {status} ({how})"


def render_markdown(report: RunReport, charts: dict[str, str | None] | None = None) -> str:
    """The human summary of ``report``; ``charts`` maps a chart file to ``None`` (drawn) or why it is not."""
    charts = charts if charts is not None else {}
    out = [first_line(report), ""]
    out += [f"- spec: `{report.spec}`", f"- started: {report.started_at}, took {report.seconds:.1f} s",
            f"- package: {f'`{report.package}`' if report.package else 'none written'}", ""]

    out += ["## Modules", ""]
    if report.modules:
        out += _table(("module", "source", "attempts", "status"),
                      [(m.module, m.source, m.attempts, m.status) for m in report.modules])
    else:
        out += ["No modules recorded.", ""]
    out += ["## Attempts", ""]
    if report.attempts:
        out += _table(("module", "#", "kind", "unit", "status", "in tokens", "out tokens", "seconds", "message"),
                      [(a.module, a.attempt, a.kind, a.unit or "(module)", a.status, a.input_tokens, a.output_tokens,
                        f"{a.seconds:.2f}", a.message) for a in report.attempts])
    else:
        out += ["No model calls (no attempts recorded).", ""]

    out += ["## Verification", ""]
    verification = report.verification
    if verification is None:
        out += ["The candidate was not verified.", ""]
    else:
        out += [f"- outcome: **{verification.outcome}** — {_cell(verification.message)}",
                f"- diagnosis: {_cell(verification.diagnosis) or '-'}",
                f"- blamed: {', '.join(verification.blamed) or 'none'}",
                f"- total cycle error: {_percent(verification.total_cycle_error)}", ""]
        if verification.workloads:
            out += _table(("workload", "path", "result"),
                          [(w.workload, w.path, "pass" if w.passed else "FAIL") for w in verification.workloads])
        out += ["### Stage evidence", ""]
        if verification.stages:
            out += _table(("stage", "workload", "field", "expected", "actual"),
                          [(s.stage, s.workload, s.field, s.expected, s.actual) for s in verification.stages])
        else:
            out += ["No stage differs from the reference.", ""]

    out += ["## Cycles per layer against the reference", ""]
    if report.layers:
        out += _table(("workload", "layer", "name", "reference cycles", "candidate cycles", "relative error"),
                      [(c.workload, c.layer, c.name, _number(c.expected), _number(c.actual),
                        _percent(c.relative_error)) for c in report.layers])
    else:
        out += ["No per-layer cycles recorded.", ""]
    out += _chart_line(CYCLES_CHART, "per-layer cycles", charts)

    out += ["## Runtime against the reference", ""]
    if report.runtime is not None:
        rt = report.runtime
        ratio = "-" if rt.ratio is None else f"{rt.ratio:.2f}x the reference"
        out += _table(("workload", "candidate", "reference", "ratio"),
                      [(rt.workload, _seconds(rt.candidate_s), _seconds(rt.reference_s), ratio)])
    else:
        out += ["No runtime measured.", ""]
    out += _chart_line(RUNTIME_CHART, "runtime", charts)

    out += ["## Optimiser", ""]
    if report.optimiser is not None:
        opt = report.optimiser
        speedup = (f"{opt.before_s / opt.after_s:.2f}x" if opt.before_s is not None and opt.after_s
                   else "-")
        out += _table(("module", "accepted", "before", "after", "speed-up", "message"),
                      [(opt.module or "-", "yes" if opt.accepted else "no", _seconds(opt.before_s),
                        _seconds(opt.after_s), speedup, opt.message)])
    else:
        out += ["The optimiser did not run.", ""]

    out += ["## Tokens per node", ""]
    if report.tokens:
        rows: list[tuple[object, ...]] = [(t.node, t.calls, t.input_tokens, t.output_tokens) for t in report.tokens]
        rows.append(("**total**", sum(t.calls for t in report.tokens), sum(t.input_tokens for t in report.tokens),
                     sum(t.output_tokens for t in report.tokens)))
        out += _table(("node", "calls", "input tokens", "output tokens"), rows)
    else:
        out += ["No model calls.", ""]

    rep = report.reproducibility
    out += ["## Reproducibility", ""]
    out += _table(("what", "value"), [
        ("model", rep.model or "- (none)"), ("base URL host", rep.base_url_host or "-"),
        ("temperature", "-" if rep.temperature is None else rep.temperature),
        ("seed", "-" if rep.seed is None else rep.seed), ("strategy", rep.strategy),
        ("granularity", rep.granularity),
        ("budgets", ", ".join(f"{k}={v}" for k, v in sorted(rep.budgets.items())) or "-"),
        ("spec", f"{rep.spec_path} (sha256 {rep.spec_sha256})"), ("python", rep.python),
        ("packages", ", ".join(f"{k} {v}" for k, v in sorted(rep.packages.items())) or "-"),
        ("reference", rep.reference),
    ])
    if report.features:
        out += ["## Features beyond the reference", "",
                "Each feature is judged with the strongest evidence there is (exact at the neutral setting, the "
                "oracle, the properties) over the run's verified modules: code the agent wrote runs in the "
                "sandbox; the catalogue's built-in implementation is used in template mode.",
                ""]
        out += _table(("feature", "implementation", "parameters", "verdict", "evidence", "reports"),
                      [(f.name, f.implementation, ", ".join(f"{k}={v:g}" for k, v in sorted(f.params.items())),
                        "pass" if f.passed else "FAIL", f.evidence, ", ".join(f.tables) or "-")
                       for f in report.features])
        out += [""]
    out += ["## Notes", ""]
    out += [f"- {_cell(note)}" for note in report.notes] if report.notes else ["None."]
    return "\n".join(out).rstrip() + "\n"


def _chart_line(filename: str, what: str, charts: dict[str, str | None]) -> list[str]:
    if filename not in charts:
        return []
    missing = charts[filename]
    if missing is None:
        return [f"![{what}]({filename})", ""]
    return [f"Chart `{filename}` not drawn: {missing}.", ""]


# ---------------------------------------------------------------- charts


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (imported only when a chart is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cycles_chart(report: RunReport, path: Path) -> str | None:
    """Draw reference vs candidate cycles per layer (and the relative error); returns why not, or ``None``."""
    if not report.layers:
        return "no per-layer cycles were recorded"
    if all(c.actual is None for c in report.layers):
        return "the candidate produced no cycles to compare"
    plt = _pyplot()
    workloads = {c.workload for c in report.layers}
    labels = [f"{c.workload}:{c.layer}" if len(workloads) > 1 else f"{c.layer} {c.name}"[:18] for c in report.layers]
    xs = list(range(len(report.layers)))
    width = 0.4
    expected = [c.expected for c in report.layers]
    actual = [c.actual if c.actual is not None else math.nan for c in report.layers]
    errors = [(c.relative_error or 0.0) * 100 if c.relative_error is not None else math.nan for c in report.layers]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.5 * len(xs) + 2), 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": (3, 1)})
    top.bar([x - width / 2 for x in xs], expected, width, label="reference (SCALE-Sim v2)", color="#4c72b0")
    top.bar([x + width / 2 for x in xs], actual, width, label="candidate", color="#dd8452")
    positive = [v for v in expected + actual if not math.isnan(v) and v > 0]
    if positive and max(positive) / min(positive) > 100:
        top.set_yscale("log")
    for x, value in zip(xs, actual):
        if math.isnan(value):
            top.annotate("no value", (x + width / 2, 0), xycoords=("data", "axes fraction"), xytext=(0, 4),
                         textcoords="offset points", rotation=90, ha="center", va="bottom", fontsize=8)
    top.set_xlim(-0.6, len(xs) - 0.4)
    top.set_ylabel("total cycles")
    top.set_title(f"Cycles per layer: run {report.run_id}")
    top.legend()
    bottom.bar(xs, errors, 0.6, color=["#55a868" if e == 0 else "#c44e52" for e in errors])
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel("rel. error (%)")
    bottom.set_xlabel("layer")
    bottom.set_xticks(xs)
    bottom.set_xticklabels(labels, rotation=60 if len(xs) > 6 else 0, ha="right" if len(xs) > 6 else "center",
                           fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _runtime_chart(report: RunReport, path: Path) -> str | None:
    """Draw candidate vs reference runtime (and the optimiser's before/after); returns why not, or ``None``."""
    runtime = report.runtime
    if runtime is None:
        return "no runtime was measured"
    plt = _pyplot()
    names = ["reference", "candidate"]
    values = [runtime.reference_s, runtime.candidate_s]
    colours = ["#4c72b0", "#dd8452"]
    opt = report.optimiser
    if opt is not None and opt.before_s is not None and opt.after_s is not None:
        names += ["before optimiser", "after optimiser"]
        values += [opt.before_s, opt.after_s]
        colours += ["#8172b3", "#55a868" if opt.accepted else "#c44e52"]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.6 * len(names)))
    ax.barh(names, values, color=colours)
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:.3f} s", va="center", fontsize=9)
    ax.set_xlabel("wall-clock seconds")
    ax.set_xlim(0, max(values) * 1.25 if max(values) > 0 else 1)
    ratio = "" if runtime.ratio is None else f" ({runtime.ratio:.2f}x the reference)"
    ax.set_title(f"Runtime on {runtime.workload}{ratio}")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
