"""The built-in feature implementations, each an extension of the reference modules."""

from __future__ import annotations

from ..api import FeatureImpl
from . import batch, energy

BUILTINS: dict[str, FeatureImpl] = {"energy": energy.run, "batch": batch.run}

__all__ = ["BUILTINS"]
