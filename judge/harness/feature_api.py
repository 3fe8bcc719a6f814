"""What a written feature's ``run`` returns: the one class a candidate feature imports from the verifier.

A candidate feature is the file ``feature.py`` of a package that also holds the contract (``contract``,
``errors``), the engine (``engine``), the run's three modules (``mapping``, ``network``, ``memory``) and
this file.  It defines ``run(layers, hardware, params, *, traces=False) -> FeatureRun`` and may import
numpy, the pure standard-library modules of the harness's allowlist (``math``, ``dataclasses``,
``itertools``, ... see :data:`rules.ALLOWED_STDLIB`) and the package's own modules relatively::

    from .engine import simulate, simulate_layer, layer_result, check_work, layer_shape, LayerResult
    from .contract import Hardware, Layer, OPERANDS
    from .feature_api import FeatureRun
    from . import mapping, network, memory

Nothing else: no file, process, network or interpreter access (refused before it runs, and again while
it runs).  This file is shipped into the sandbox and into the generated package: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FeatureRun:
    """A feature's result for one workload: the engine's ``LayerResult`` per layer (in order, with traces
    when asked) and the feature's report tables, keyed by file name (``ENERGY_REPORT.csv``), one row per
    layer, each row a column name -> number."""

    results: list[Any]
    tables: dict[str, list[dict[str, float]]] = field(default_factory=dict)
