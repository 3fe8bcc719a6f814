"""SandboxConfig: defaults, validation errors that name the field, immutability."""

from __future__ import annotations

import pydantic
import pytest

from sandbox import SandboxConfig


def test_defaults_match_the_documented_limits() -> None:
    cfg = SandboxConfig()
    assert cfg.image == "simulatorcoder-sandbox:latest"
    assert (cfg.memory_mib, cfg.cpus, cfg.pids_limit, cfg.timeout_s) == (512, 1.0, 64, 60.0)
    assert (cfg.tmpfs_mib, cfg.output_limit_mib, cfg.stream_limit_bytes) == (64, 64, 64_000)
    assert cfg.name_prefix == "simcoder-sbx-"
    assert (cfg.owner, cfg.cleanup_stale) == (None, True)
    assert cfg.memory_bytes == 512 * 1024 * 1024
    assert cfg.output_limit_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memory_mib", 0),
        ("memory_mib", -5),
        ("cpus", 0.0),
        ("cpus", -1.0),
        ("pids_limit", 0),
        ("timeout_s", 0),
        ("timeout_s", -1.5),
        ("timeout_s", float("inf")),
        ("tmpfs_mib", 0),
        ("output_limit_mib", -1),
        ("max_output_files", 0),
        ("stream_limit_bytes", 10),
        ("image", ""),
    ],
)
def test_non_positive_values_are_rejected_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        SandboxConfig.model_validate({field: value})
    assert isinstance(caught.value, pydantic.ValidationError)
    assert caught.value.error_count() == 1


@pytest.mark.parametrize("prefix", ["-leading-dash", "has space", "slash/", ""])
def test_bad_name_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="name_prefix"):
        SandboxConfig.model_validate({"name_prefix": prefix})


@pytest.mark.parametrize("owner", ["", "has space", "-dash", "a=b", "x" * 129])
def test_bad_owner_is_rejected(owner: str) -> None:
    with pytest.raises(ValueError, match="owner"):
        SandboxConfig.model_validate({"owner": owner})


def test_owner_may_name_a_user_and_host() -> None:
    assert SandboxConfig(owner="uid1000@build-7.example:ci").owner == "uid1000@build-7.example:ci"


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxConfig.model_validate({"memory_mb": 100})


def test_config_is_frozen() -> None:
    cfg = SandboxConfig()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.memory_mib = 1
    assert cfg.model_copy(update={"memory_mib": 128}).memory_mib == 128
