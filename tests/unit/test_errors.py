"""Every error this project raises on purpose is a SimCoderError, and keeps its built-in base."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import reference_sim
import sandbox
from reference_sim import memory_literal
from reference_sim.contract import Hardware, Layer
from reference_sim.engine import REFERENCE, simulate_layer
from reference_sim.errors import InputError, SimCoderError, SimulationError
from reference_sim.scalesim_io import read_config
from sandbox import EngineUnavailable, ImageMissing, SandboxConfig, SandboxError, SandboxUnavailable, make_sandbox


def _public_errors() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in (reference_sim, sandbox):
        names = [package.__name__] + [
            f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__) if m.name != "__main__"
        ]
        for module_name in names:
            module = importlib.import_module(module_name)
            for name, obj in vars(module).items():
                if (inspect.isclass(obj) and issubclass(obj, BaseException) and not name.startswith("_")
                        and obj.__module__ == module_name):
                    found[f"{module_name}.{name}"] = obj
    return [found[key] for key in sorted(found)]


def test_the_known_errors_are_found() -> None:
    found = set(_public_errors())
    assert {InputError, SimulationError, SandboxError, SandboxUnavailable, EngineUnavailable, ImageMissing} <= found


@pytest.mark.parametrize("cls", _public_errors(), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_public_error_is_a_simcoder_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, SimCoderError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (InputError, ValueError),
        (SimulationError, RuntimeError),
        (SandboxError, RuntimeError),
        (SandboxUnavailable, SandboxError),
        (EngineUnavailable, SandboxUnavailable),
        (ImageMissing, SandboxUnavailable),
    ],
)
def test_errors_keep_their_second_base(cls: type[BaseException], builtin: type[BaseException]) -> None:
    assert issubclass(cls, builtin) and issubclass(cls, SimCoderError)


def test_the_root_is_a_plain_exception() -> None:
    assert SimCoderError.__bases__ == (Exception,)


def test_bad_input_is_caught_as_simcoder_error(tmp_path: Path) -> None:
    with pytest.raises(SimCoderError, match=r"missing\.cfg: file not found") as caught:
        read_config(tmp_path / "missing.cfg")
    assert isinstance(caught.value, InputError) and isinstance(caught.value, ValueError)


def test_sandbox_errors_are_caught_as_simcoder_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(SimCoderError, match="No Docker engine is reachable") as caught:
        make_sandbox(SandboxConfig(), kind="docker")
    assert isinstance(caught.value, EngineUnavailable)


@pytest.mark.parametrize("memory", ["fast", "literal"])
def test_a_calc_read_buffer_of_under_100_words_is_a_one_line_error(memory: str) -> None:
    modules = REFERENCE if memory == "fast" else REFERENCE.with_module("memory", memory_literal)
    hardware = Hardware(4, 4, "os", 1, 2, 1, word_bytes=16)
    with pytest.raises(SimulationError, match="the ifmap SRAM holds 64 words, fewer than 100: SCALE-Sim v2's CALC"):
        simulate_layer(Layer("x", 6, 6, 2, 2, 2, 3, 1, 1), hardware, modules)
