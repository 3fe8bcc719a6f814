"""The verification suite: workloads (layers on one architecture) read from a spec, and what is expected of each.

A workload names what says what is expected: the built-in reference's modules, run here on the host
(:mod:`judge.reference_runs`), or the folder of a user's own reference, whose results are attached
after its sandbox run (:mod:`judge.user_reference`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from reference_sim import engine
from reference_sim.contract import Hardware, Layer, LayerMapping, MemoryResult, NetworkSchedule

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO_ROOT / "scale_sim.yaml"


@dataclass(frozen=True)
class Workload:
    """One verification workload: layers on one architecture (``id`` is ``<workload>@<variant>``)."""

    id: str
    hardware: Hardware
    layers: tuple[Layer, ...]
    reference: engine.Modules | Path = engine.REFERENCE
    """What says what is expected: modules computed here on the host (the built-in reference), or the folder of a
    user's own reference under the same contract, which runs only in the sandbox (:mod:`judge.user_reference`)."""
    expected: tuple[ReferenceLayer, ...] | None = field(default=None, compare=False, hash=False, repr=False)
    """The user's reference's results with traces, from its sandbox run (``None``: not attached)."""
    expected_untraced: tuple[ReferenceLayer, ...] | None = field(default=None, compare=False, hash=False,
                                                                 repr=False)
    """The same without traces."""

    def __post_init__(self) -> None:
        if (self.expected is not None or self.expected_untraced is not None) and not isinstance(self.reference, Path):
            raise ValueError(f"{self.id}: expected results are attached only for a user's reference folder")


Suite = tuple[Workload, ...]


@dataclass(frozen=True)
class ReferenceLayer:
    """The reference's outputs for one layer and its figures; ``memory`` is traced when the run was."""

    layer: Layer
    mapping: LayerMapping
    schedule: NetworkSchedule
    memory: MemoryResult
    memory_untraced: MemoryResult
    figures: dict[str, float]
    """Report figures of ``memory``."""


def load_suite(spec_path: str | Path = DEFAULT_SPEC, reference: engine.Modules | Path = engine.REFERENCE) -> Suite:
    """The spec's verification suite: every ``verification.workloads`` entry under every variant."""
    from reference_sim.spec import load_spec

    loaded = load_spec(spec_path)
    verification = loaded.spec.verification
    if verification is None:
        raise ValueError(f"{spec_path}: the spec has no verification section")
    return tuple(
        Workload(f"{name}@{variant.name}", loaded.spec.hardware(variant), tuple(loaded.workload(name)), reference)
        for name in verification.workloads
        for variant in verification.variants
    )


def load_final_check(spec_path: str | Path = DEFAULT_SPEC,
                     reference: engine.Modules | Path = engine.REFERENCE) -> Suite:
    """The spec's ``final_check`` workloads (whole networks) on the spec's own architecture."""
    from reference_sim.spec import load_spec

    loaded = load_spec(spec_path)
    verification = loaded.spec.verification
    names = verification.final_check if verification is not None else []
    hardware = loaded.spec.hardware()
    return tuple(Workload(f"{name}@final_check", hardware, tuple(loaded.workload(name)), reference)
                 for name in names)


@functools.cache
def default_suite() -> Suite:
    """``scale_sim.yaml``'s suite: ``edge_cases`` under its architecture variants."""
    return load_suite(DEFAULT_SPEC)


@functools.cache
def default_final_check() -> Suite:
    """``scale_sim.yaml``'s ``final_check`` workloads."""
    return load_final_check(DEFAULT_SPEC)
