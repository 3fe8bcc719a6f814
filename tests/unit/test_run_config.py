"""One run configuration: who may set each field, and a remote caller's request checked before any work.

The graphs here are bound to a *remote* host (what ``langgraph.json`` serves) whose candidates run in
this process; every refusal must be one line naming the field, and leave the run root as it was.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents import intake, run_config, run_features
from agents.run_config import (
    NO_MAXIMA,
    CallerRequest,
    ConfigError,
    Maxima,
    OperatorSettings,
    RunConfig,
    who_may_set,
)
from agents.spec import ModelSettings
from graph.auth import token_matches
from graph.graph import build_graph
from graph.host import Host
from graph.state import REQUEST_FIELDS
from graph.verifier_graph import VERIFY_FIELDS, VerifierHost, build_verifier_graph
from reference_sim.errors import InputError, WorkLimitError
from tests import fakes

WHO: dict[str, str] = {
    "strategy": "caller", "granularity": "caller", "generate": "caller", "seed": "caller", "temperature": "caller",
    "retry_temperature": "caller", "max_answer_tokens": "caller", "context_tokens": "caller", "model_cache": "caller",
    "human_review": "caller", "optimise": "caller", "attempts_per_module": "caller", "repair_rounds": "caller",
    "max_tokens": "caller", "max_wall_s": "caller", "max_sandboxes": "caller", "spec_path": "caller",
    "run_dir": "caller",
    "model": "operator", "base_url": "operator", "api_key_env": "operator", "model_deadline_s": "operator",
    "max_answer_bytes": "operator", "sandbox": "operator", "sandbox_timeout_s": "operator",
    "sandbox_memory_mib": "operator", "reference_dir": "operator", "features_dir": "operator", "run_root": "operator",
    "path_roots": "operator",
    "max_spec_bytes": "operator", "max_layers": "operator",
}
"""Every RunConfig field and who may set it: adding a field without saying here fails the first test."""

ENDPOINT = "http://127.0.0.1:9/v1"


def test_every_run_config_field_says_who_may_set_it() -> None:
    assert who_may_set() == WHO


def test_a_field_without_who_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    info = RunConfig.model_fields["seed"]
    monkeypatch.setattr(info, "json_schema_extra", {})
    with pytest.raises(TypeError, match=r"RunConfig\.seed does not say who may set it"):
        who_may_set()


def test_the_graph_input_is_the_caller_request() -> None:
    assert set(REQUEST_FIELDS) == set(CallerRequest.model_fields)
    assert all(WHO.get(name, "caller") == "caller" for name in REQUEST_FIELDS if name not in ("model", "base_url"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


@pytest.fixture
def spec(tmp_path: Path, root: Path) -> Path:
    return fakes.small_spec(root)


def remote(root: Path, **settings: Any) -> OperatorSettings:
    settings.setdefault("path_roots", (str(root),))
    return OperatorSettings(remote=True, sandbox="docker", run_root=str(root), **settings)


def serve(operator: OperatorSettings) -> Any:
    return build_graph(Host(operator, executor_factory=fakes.in_process))


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(("context", "fields", "field", "says"), [
    ({"sandbox": "process"}, {}, "sandbox", "remote runs always use the Docker sandbox"),
    ({"reference_dir": "/tmp"}, {}, "reference_dir", "a caller may not set this"),
    ({"features_dir": "/tmp"}, {}, "features_dir", "a caller may not set this (a folder of features is the operator's"),
    ({"executor_factory": "x"}, {}, "executor_factory", "a caller may not set this"),
    ({"api_key_env": "HOME"}, {}, "api_key_env", "a caller may not set this"),
    ({}, {"base_url": "http://127.0.0.1:1/v1"}, "base_url", "has not listed"),
    ({}, {"model": "other"}, "model", "has not listed"),
    ({}, {"strategy": "bogus"}, "strategy", "Input should be"),
    ({}, {"attempts_per_module": "lots"}, "attempts_per_module", "valid integer"),
    ({}, {"max_wall_s": math.nan}, "max_wall_s", "finite"),
    ({}, {"attempts_per_module": 11}, "attempts_per_module", "over this server's maximum of 10"),
    ({}, {"max_tokens": 10**9}, "max_tokens", "over this server's maximum"),
    ({}, {"human_review": "yes"}, "human_review", "valid boolean"),
    ({}, {"run_dir": "/tmp/elsewhere"}, "run_dir", "inside the server's run root"),
    ({}, {"run_dir": "../escape"}, "run_dir", "inside the server's run root"),
    ({}, {"run_id": "../up"}, "run_id", ""),
    ({}, {"spec_path": "/etc/passwd"}, "spec_path", "outside the folders this server may read"),
    ({}, {"spec_yaml": "x" * (1024 * 1024 + 1)}, "spec_yaml", "over the limit"),
])
def test_a_remote_caller_is_refused_in_one_line_naming_the_field(
        root: Path, spec: Path, context: dict[str, Any], fields: dict[str, Any], field: str, says: str) -> None:
    before = listing(root)
    with pytest.raises(InputError) as info:
        base = {} if "spec_yaml" in fields else {"spec_path": str(spec)}
        serve(remote(root)).invoke({**base, **fields}, context=context)
    message = str(info.value)
    assert f"{field}: " in message and says in message and len(message.splitlines()) == 1, message
    assert listing(root) == before, "nothing is written before the request is valid"


def test_a_callers_spec_cannot_name_an_endpoint_or_the_keys_variable(root: Path, spec: Path) -> None:
    data = yaml.safe_load(spec.read_text())
    before = listing(root)
    for model, field in (({"base_url": ENDPOINT, "model": "m"}, "model.base_url"),
                         ({"model": "m"}, "model.model"),
                         ({"api_key_env": "AWS_SECRET_ACCESS_KEY"}, "model.api_key_env")):
        text = yaml.safe_dump({**data, "model": model})
        with pytest.raises(ConfigError, match=rf"{field}: ") as info:
            serve(remote(root)).invoke({"spec_yaml": text})
        assert len(str(info.value).splitlines()) == 1
    assert listing(root) == before


def test_a_topology_outside_the_roots_is_refused_without_echoing_it(root: Path, spec: Path) -> None:
    data = yaml.safe_load(spec.read_text())
    data["workloads"].append({"name": "secret", "topology": "/etc/passwd"})
    with pytest.raises(ConfigError, match=r"workloads\[\d+\]\.topology: outside the folders") as info:
        serve(remote(root)).invoke({"spec_yaml": yaml.safe_dump(data)})
    assert "root:" not in str(info.value)


def test_an_existing_run_folder_is_never_reused(root: Path, spec: Path) -> None:
    taken = root / "taken"
    taken.mkdir()
    (taken / "report.md").write_text("the user's own")
    with pytest.raises(ConfigError, match="run_dir: already exists"):
        serve(remote(root)).invoke({"spec_path": str(spec), "run_dir": str(taken)})
    assert (taken / "report.md").read_text() == "the user's own"


def test_a_listed_endpoint_is_taken_and_the_sandbox_stays_docker(root: Path, spec: Path) -> None:
    operator = remote(root, allowed_base_urls=(ENDPOINT,), allowed_models=("m",))
    request = run_config.caller_request({"base_url": ENDPOINT, "model": "m", "max_sandboxes": 3})
    loaded = fakes.agent_spec(spec)
    config = run_config.resolve(loaded, spec, root / "r", operator.model_copy(update={"sandbox": "process"}), request,
                                spec_from_caller=True)
    assert (config.base_url, config.model, config.sandbox, config.max_sandboxes) == (ENDPOINT, "m", "docker", 3)


def test_the_served_settings_come_from_the_environment(tmp_path: Path) -> None:
    env = {"SIMCODER_RUN_ROOT": str(tmp_path), "SIMCODER_MAX_ATTEMPTS": "4", "OPENAI_MODEL": "served",
           "SIMCODER_ALLOWED_BASE_URLS": f"{ENDPOINT}, http://127.0.0.1:8/v1",
           "SIMCODER_FEATURES_DIR": str(USER_FEATURES), "SIMCODER_MAX_FEATURE_REQUESTS": "5000"}
    operator = OperatorSettings.from_env(env)
    assert operator.remote and operator.sandbox == "docker" and operator.maxima.attempts_per_module == 4
    assert operator.features_dir == str(USER_FEATURES) and operator.maxima.feature_requests == 5000
    assert OperatorSettings.from_env({}).maxima.feature_requests == 1_000_000_000
    with pytest.raises(ConfigError, match="SIMCODER_FEATURES_DIR: is not a folder"):
        OperatorSettings.from_env({"SIMCODER_FEATURES_DIR": str(tmp_path / "none")})
    assert operator.allowed_base_urls == (ENDPOINT, "http://127.0.0.1:8/v1") and operator.model == "served"
    assert str(tmp_path.resolve()) in operator.path_roots
    with pytest.raises(ConfigError, match="SIMCODER_MAX_ATTEMPTS: must be a positive"):
        OperatorSettings.from_env({"SIMCODER_MAX_ATTEMPTS": "-1"})


def test_a_remote_template_run_writes_only_its_own_new_folder(root: Path, spec: Path) -> None:
    before = set(listing(root))
    out = serve(remote(root)).invoke({"spec_yaml": spec.read_text(), "run_id": "mine", "optimise": False})
    assert out["status"] == "verified"
    assert Path(out["run_dir"]) == root / "mine"
    assert (root / "mine" / "spec.yaml").read_text() == spec.read_text()
    assert {p.split("/")[0] for p in set(listing(root)) - before} == {"mine"}


VERIFIER_CASES: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
    ({}, {"context_sandbox": True}, "sandbox", "remote runs always use the Docker sandbox"),
    ({"candidate_dir": "/etc"}, {}, "candidate_dir", "outside the folders"),
    ({"reference_dir": "/usr/lib/python3"}, {}, "reference_dir", "outside the folders"),
    ({"spec_path": "/etc/passwd"}, {}, "spec_path", "outside the folders"),
    ({"workloads": 5}, {}, "workloads", "valid list"),
]


@pytest.mark.parametrize(("fields", "how", "field", "says"), VERIFIER_CASES)
def test_the_verifier_service_refuses_a_remote_caller(root: Path, fields: dict[str, Any], how: dict[str, Any],
                                                      field: str, says: str) -> None:
    graph = build_verifier_graph(VerifierHost(remote(root), executor_factory=fakes.in_process))
    candidate = root / "cand"
    candidate.mkdir(exist_ok=True)
    for role in ("mapping", "network", "memory"):
        (candidate / f"{role}.py").write_text("")
    context = {"sandbox": "process"} if how.get("context_sandbox") else None
    with pytest.raises(InputError) as info:
        graph.invoke({"candidate_dir": str(candidate), **fields}, context=context)
    message = str(info.value)
    assert f"{field}: " in message and says in message and len(message.splitlines()) == 1, message
    assert set(VERIFY_FIELDS) <= {"candidate_dir", "modules", "spec_path", "spec_yaml", "workloads", "final_check",
                                  "reference_dir"}


@pytest.mark.parametrize(("authorization", "api_key", "ok"), [
    ("Bearer s3cret", None, True), ("bearer s3cret", None, True), (None, "s3cret", True),
    ("Bearer wrong", None, False), ("s3cret", None, False), (None, None, False), ("Bearer ", "", False),
])
def test_the_token_check(authorization: str | None, api_key: str | None, ok: bool) -> None:
    assert token_matches("s3cret", authorization, api_key) is ok


def test_a_layer_over_the_work_limit_is_refused_before_any_run(root: Path, spec: Path) -> None:
    data = yaml.safe_load(spec.read_text())
    data["workloads"].append({"name": "huge", "layers": [{"name": "g", "m": 200_000, "n": 200_000, "k": 50_000}]})
    data["verification"]["final_check"] = ["huge"]
    before = listing(root)
    with pytest.raises(WorkLimitError, match=r"verification workload huge \(final check\): layer 0 \('g'\)") as info:
        serve(remote(root)).invoke({"spec_yaml": yaml.safe_dump(data)})
    assert len(str(info.value).splitlines()) == 1 and listing(root) == before
    graph = build_verifier_graph(VerifierHost(remote(root), executor_factory=fakes.in_process))
    modules = {role: "" for role in ("mapping", "network", "memory")}
    with pytest.raises(WorkLimitError, match=r"huge@final_check: layer 0"):
        graph.invoke({"modules": modules, "spec_yaml": yaml.safe_dump(data), "workloads": ["edge_cases"]})


def test_too_many_layers_are_refused(root: Path, spec: Path) -> None:
    data = yaml.safe_load(spec.read_text())
    data["workloads"].append({"name": "long", "layers": [{"name": f"g{i}", "m": 4, "n": 4, "k": 4}
                                                         for i in range(300)]})
    with pytest.raises(InputError, match=r"workloads: 3\d\d layers, over the limit of 256"):
        serve(remote(root)).invoke({"spec_yaml": yaml.safe_dump(data)})
    topology = root / "long.csv"
    topology.write_text("Layer, M, N, K,\n" + "".join(f"g{i}, 4, 4, 4,\n" for i in range(300)))
    data["workloads"][-1] = {"name": "long", "topology": str(topology), "format": "gemm"}
    data["verification"]["final_check"] = ["long"]
    with pytest.raises(InputError, match=r"verification: the verifier would run 3\d\d layers, over the limit of 256"):
        serve(remote(root)).invoke({"spec_yaml": yaml.safe_dump(data)})


def test_the_operators_context_window_beats_the_specs(root: Path, spec: Path) -> None:
    loaded = fakes.agent_spec(spec).model_copy(update={"model": ModelSettings(context_tokens=4096)})
    request = run_config.caller_request({})
    given = OperatorSettings(remote=False, context_tokens=8192)
    assert run_config.resolve(loaded, spec, root / "a", given, request, spec_from_caller=False).context_tokens == 8192
    unset = OperatorSettings(remote=False)
    assert run_config.resolve(loaded, spec, root / "b", unset, request, spec_from_caller=False).context_tokens == 4096


USER_FEATURES = Path(__file__).resolve().parents[1] / "data" / "user_features"


def with_features(spec: Path, features: dict[str, Any]) -> str:
    data = yaml.safe_load(spec.read_text())
    return yaml.safe_dump({**data, "features": features})


@pytest.mark.parametrize(("features", "field", "says"), [
    ({"batch": {"batch_images": 256}}, "features.batch.batch_images",
     "256 images x the final-check workloads' 1.5e4 requests is about 3.8e6 requests, over this server's feature "
     "work cap of 1.0e6 (SIMCODER_MAX_FEATURE_REQUESTS)"),
    ({"energy": {}, "cores": {"cores": 64, "split_axis": 1}}, "features.cores.cores", "64 cores x the final-check"),
])
def test_a_remote_callers_feature_parameters_are_held_to_the_work_cap(
        root: Path, spec: Path, features: dict[str, Any], field: str, says: str) -> None:
    capped = remote(root, maxima=Maxima(feature_requests=500_000 if "cores" in features else 1_000_000))
    text = with_features(spec, features)
    before = listing(root)
    with pytest.raises(InputError) as info:
        intake.prepare({"spec_yaml": text}, capped)
    message = str(info.value)
    assert message.startswith(f"spec_yaml: {field}: ") and says in message and len(message.splitlines()) == 1, message
    with pytest.raises(InputError, match=field):
        serve(capped).invoke({"spec_yaml": text})
    assert listing(root) == before
    fewer = {name: {k: 2 if k in ("batch_images", "cores") else v for k, v in params.items()}
             for name, params in features.items()}
    assert intake.prepare({"spec_yaml": with_features(spec, fewer)}, capped).plan["features"]
    for maxima in (NO_MAXIMA, capped.maxima):
        operator = OperatorSettings(remote=False, run_root=str(root), maxima=maxima)
        assert intake.prepare({"spec_yaml": text}, operator).plan["features"], "the command line is not capped"


def test_the_operators_features_folder_reaches_the_plan_and_the_judge(
        root: Path, spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_features_user import wall_time

    monkeypatch.setitem(run_features.BUILTINS, "wall_time", wall_time)
    text = with_features(spec, {"wall_time": {"clock_mhz": 250}})
    for fields in ({}, {"features_dir": str(USER_FEATURES)}):
        with pytest.raises(InputError, match=r"features\.wall_time: not a feature of the catalogue"):
            serve(remote(root)).invoke({"spec_yaml": text, **fields}, context=None)
    with pytest.raises(ConfigError, match=r"request: features_dir: a caller may not set this"):
        intake.prepare({"spec_yaml": text, "features_dir": str(USER_FEATURES)}, remote(root))
    operator = remote(root, features_dir=str(USER_FEATURES))
    checked = intake.prepare({"spec_yaml": text}, operator)
    assert checked.config.features_dir == str(USER_FEATURES)
    assert checked.plan["features"] == [{"name": "wall_time", "params": {"clock_mhz": 250.0}}]
    out = serve(operator).invoke({"spec_yaml": text, "run_id": "timed", "optimise": False})
    assert out["status"] == "verified", out.get("summary")
    assert (root / "timed" / "features" / "wall_time" / "small_net-final_check" / "TIME_REPORT.csv").is_file()


def test_the_command_lines_features_folder_is_the_operators(tmp_path: Path) -> None:
    from graph import run

    settings = run.settings_from(run.parser().parse_args(["--features-dir", str(USER_FEATURES)]))
    assert settings["features_dir"] == str(USER_FEATURES)
    operator = run.operator_from(settings, tmp_path)
    assert operator.features_dir == str(USER_FEATURES) and not operator.remote
    assert run.operator_from({**settings, "features_dir": None}, tmp_path).features_dir is None
    with pytest.raises(InputError, match=r"--features-dir: .* is not a folder"):
        run.settings_from(run.parser().parse_args(["--features-dir", str(tmp_path / "none")]))
    with pytest.raises(InputError, match=r"--resume: --features-dir cannot change on resume"):
        run.resumed_settings(settings, run.parser().parse_args(["--resume", "x", "--features-dir", str(tmp_path)]))
