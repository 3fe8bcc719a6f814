"""The work cap on a remote caller's feature parameters, checked before any work.

A feature's run on the final-check workloads (its report tables, and the implementation's run) costs
about the reference's work there (:func:`reference_sim.engine.estimate_requests`, in requests) times the
parameters ``feature.yaml`` marks ``multiplies_work`` (``batch_images``, ``cores``).  For a remote caller
each feature's estimate must stay within the operator's ``Maxima.feature_requests``
(``SIMCODER_MAX_FEATURE_REQUESTS``); the operator's own command line is not capped beyond the layer limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agents.run_config import OperatorSettings
from agents.run_features import FeatureTask
from agents.spec import AgentSpec
from features.catalogue import FeatureDef, load_catalogue
from reference_sim import engine
from reference_sim.errors import InputError
from reference_sim.spec import LoadedSpec

CAP_ENV = "SIMCODER_MAX_FEATURE_REQUESTS"


def final_check_requests(loaded: LoadedSpec[AgentSpec]) -> int:
    """The reference's estimated requests over the spec's final-check workloads, on the spec's architecture."""
    verification = loaded.spec.verification
    if verification is None:
        return 0
    hardware = loaded.spec.hardware(None)
    return sum(engine.estimate_requests(layer, hardware)
               for name in dict.fromkeys(verification.final_check) for layer in loaded.workload(name))


def check_feature_work(loaded: LoadedSpec[AgentSpec], tasks: Sequence[FeatureTask], operator: OperatorSettings,
                       source: str) -> None:
    """Refuse, naming ``features.<name>.<parameter>``, a feature whose estimated work is over the operator's cap."""
    cap = operator.maxima.feature_requests
    if cap is None or not tasks:
        return
    base = final_check_requests(loaded)
    catalogue = load_catalogue(Path(operator.features_dir) if operator.features_dir else None)
    for task in tasks:
        definition = catalogue[task["name"]].definition
        work = definition.work_factor(task["params"]) * base
        if work > cap:
            raise InputError(source, _over(definition, task, base, work, cap), field=_field(definition, task))


def _field(definition: FeatureDef, task: FeatureTask) -> str:
    """The parameter that multiplies the work most (the feature itself when none does)."""
    factors = [(float(task["params"][p.name]), p.name) for p in definition.parameters if p.multiplies_work]
    return f"features.{definition.name}" + (f".{max(factors)[1]}" if factors else "")


def _over(definition: FeatureDef, task: FeatureTask, base: int, work: float, cap: int) -> str:
    factors = " x ".join(f"{task['params'][p.name]:g} {p.unit}" for p in definition.parameters if p.multiplies_work)
    what = f"{factors} x the final-check workloads' {_short(base)} requests" if factors else \
        f"the final-check workloads' {_short(base)} requests"
    return f"{what} is about {_short(work)} requests, over this server's feature work cap of {_short(cap)} ({CAP_ENV})"


def _short(count: float) -> str:
    mantissa, exponent = f"{count:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"
