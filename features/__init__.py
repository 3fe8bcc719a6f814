"""Features as data: a catalogue of spec sections with typed parameters, built-in implementations that
extend the reference simulator, a property library and a judge (see ``docs/features.md``)."""

from __future__ import annotations

from .api import Case, FeatureImpl, FeatureRun
from .catalogue import Feature, FeatureDef, load_catalogue
from .judge import Verdict, judge
from .properties import PROPERTIES, PropertyFailure

__all__ = ["PROPERTIES", "Case", "Feature", "FeatureDef", "FeatureImpl", "FeatureRun", "PropertyFailure", "Verdict",
           "judge", "load_catalogue"]
