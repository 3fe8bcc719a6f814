"""The feature tasks' parts: golden solutions, seeded wrong answers, and the judge that runs an answer.

A feature task asks for one catalogue feature's whole module (``run(layers, hardware, params, *,
traces=False) -> FeatureRun``) with the feature coder's own prompt, and judges the answer the way a run
does (:func:`agents.feature_coder.review_code`): statically, then the whole feature judge (exact at the
neutral setting, the oracle where one exists, every property) over the reference's three modules, in
the sandbox the runner gives.  Its golden solution is the catalogue's built-in made portable
(:func:`agents.package_features.builtin_feature`) with its helper modules inlined into one file
(:mod:`taskbench.single_file`): the sandbox's package takes one feature file, the one a model writes.
Its wrong answers for the self-check are the seeded mutants of the built-in (:mod:`features.mutants`),
applied to the same portable source.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from agents.coder import Review
from agents.feature_coder import review_code
from agents.package_features import builtin_feature, feature_api_text
from agents.package_portable import TYPES_FILE, api_names, types_source
from agents.run_features import SandboxedFeatures
from features.catalogue import Feature, load_catalogue
from features.judge import Verdict
from features.mutants import MUTANTS
from judge import reference_runs
from judge.executors import FeatureExecutor
from reference_sim.errors import SimCoderError

from .single_file import inline_modules

MODULE = "feature"
"""A feature task's ``module`` (its row in the tables) and the prefix of its id (``feature.energy``)."""


class FeatureTaskError(SimCoderError):
    """A feature task cannot be made or checked (names the feature)."""


@functools.cache
def catalogue() -> dict[str, Feature]:
    """The built-in catalogue (the operator's own features are not benchmark tasks)."""
    return load_catalogue()


def _portable_sources(name: str) -> dict[str, str]:
    """The portable built-in's modules by file name, ``feature_types.py`` included when the API needs it."""
    sources = dict(builtin_feature(name, {}, catalogue()).sources)
    types = types_source(api_names(feature_api_text()))
    if types is not None:
        sources[f"{TYPES_FILE}.py"] = types
    return sources


def _entry(name: str) -> str:
    return f"feature_{name}.py"


@functools.cache
def golden_source(name: str) -> str:
    """The golden answer of the feature task ``name``: its portable built-in as one file."""
    return inline_modules(_entry(name), _portable_sources(name))


def seeded_mutants(name: str) -> list[tuple[str, str]]:
    """``(mutant name, code)`` for every seeded mutant of ``name``'s built-in, applied to the portable source
    and made one file; a :class:`FeatureTaskError` when an edit does not match exactly one place."""
    sources = _portable_sources(name)
    entry = sources[_entry(name)]
    found: list[tuple[str, str]] = []
    for mutant in MUTANTS.get(name, []):
        if entry.count(mutant.old) != 1:
            raise FeatureTaskError(f"feature {name}: mutant {mutant.name!r} matches {entry.count(mutant.old)} places "
                                   "of the portable built-in, not 1")
        mutated = {**sources, _entry(name): entry.replace(mutant.old, mutant.new)}
        found.append((mutant.name, inline_modules(_entry(name), mutated)))
    return found


def judge_answer(name: str, code: str, executor: Callable[[], FeatureExecutor]) -> tuple[Review, Verdict | None]:
    """The feature coder's review of ``code`` for feature ``name`` and the judge's verdict, run by ``executor``."""
    feature = catalogue().get(name)
    if feature is None:
        raise FeatureTaskError(f"feature {name!r} is not in the catalogue")
    return review_code(feature, code, SandboxedFeatures(executor, reference_runs.reference_sources()))
