"""The built-in feature implementations, each an extension of the reference modules."""

from __future__ import annotations

from ..api import FeatureImpl
from . import batch, cores, energy, memory_banks, sparsity

BUILTINS: dict[str, FeatureImpl] = {"energy": energy.run, "batch": batch.run, "cores": cores.run,
                                    "sparsity": sparsity.run, "memory_banks": memory_banks.run}

__all__ = ["BUILTINS"]
