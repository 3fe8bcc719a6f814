"""Properties of the ``sparsity`` feature: the report's filter, metadata and MAC counts, and a denser
setting never doing less work."""

from __future__ import annotations

import random

from .api import Case, FeatureRun, TableRow
from .property_base import FEATURE, Property, PropertyFailure, close, fail, pes
from .semantics import GROUP_PARAM, KEPT_PARAM, SPARSITY_REPORT, metadata_words, sparse_layer


def _rows(name: str, case: Case, run: FeatureRun) -> list[TableRow] | PropertyFailure:
    rows = run.tables.get(SPARSITY_REPORT)
    if rows is None or len(rows) != len(case.layers):
        return fail(name, case, None, f"{SPARSITY_REPORT} with one row per layer",
                    "missing" if rows is None else f"{len(rows)} rows", FEATURE)
    return rows


def sparse_report_counts(case: Case, run: FeatureRun) -> PropertyFailure | None:
    name = "sparse_report_counts"
    rows = _rows(name, case, run)
    if isinstance(rows, PropertyFailure):
        return rows
    kept, group = int(case.params[KEPT_PARAM]), int(case.params[GROUP_PARAM])
    for index, (layer, row) in enumerate(zip(case.layers, rows)):
        small = sparse_layer(layer, kept, group)
        meta = metadata_words(layer, kept, group, case.hardware.word_bytes)
        want = {"layer_id": index, "dense_macs": layer.macs, "macs": small.macs,
                "dense_filter_words": layer.window * layer.num_filters,
                "filter_words": small.window * layer.num_filters, "metadata_words": meta,
                "filter_and_metadata_words": small.window * layer.num_filters + meta}
        for column, value in want.items():
            if not close(row.get(column, -1.0), value):
                return fail(name, case, index, f"{column} = {value}", row.get(column), FEATURE)
    return None


def _dense(case: Case, rng: random.Random) -> Case | None:
    return case.with_params(**{KEPT_PARAM: int(case.params[GROUP_PARAM])})


def sparsity_never_adds_work(base: Case, base_run: FeatureRun, other: Case,
                             other_run: FeatureRun) -> PropertyFailure | None:
    name = "sparsity_never_adds_work"
    sparse_rows, dense_rows = _rows(name, base, base_run), _rows(name, other, other_run)
    if isinstance(sparse_rows, PropertyFailure):
        return sparse_rows
    if isinstance(dense_rows, PropertyFailure):
        return dense_rows
    for index, (layer, a, b, ra, rb) in enumerate(zip(base.layers, base_run.results, other_run.results, sparse_rows,
                                                      dense_rows)):
        macs_a = a.overall_util_pct * a.total_cycles * pes(base.hardware) / 100
        macs_b = b.overall_util_pct * b.total_cycles * pes(base.hardware) / 100
        if macs_a > macs_b * (1 + 1e-9) or not close(macs_b, layer.macs):
            return fail(name, base, index, f"sparse MACs <= dense MACs = {layer.macs}", f"{macs_a:.6g}, {macs_b:.6g}",
                        FEATURE)
        if a.total_cycles - a.stall_cycles > b.total_cycles - b.stall_cycles:
            return fail(name, base, index, f"compute cycles <= the dense layer's {b.total_cycles - b.stall_cycles}",
                        a.total_cycles - a.stall_cycles, FEATURE)
        if rb.get("metadata_words") != 0 or rb.get("filter_words") != layer.window * layer.num_filters:
            return fail(name, other, index, f"dense: no metadata, {layer.window * layer.num_filters} filter words",
                        f"{rb.get('metadata_words')}, {rb.get('filter_words')}", FEATURE)
        if ra.get("filter_words", 0.0) > rb.get("filter_words", 0.0):
            return fail(name, base, index, f"filter words <= dense {rb.get('filter_words')}", ra.get("filter_words"),
                        FEATURE)
    return None


SPARSITY_PROPERTIES = [
    Property("sparse_report_counts", "conservation",
             f"{SPARSITY_REPORT} counts: dense and sparse MACs, dense and compressed filter words (filters x "
             "nonzeros per filter), metadata words (per filter ceil(nonzeros x ceil(log2 M) / word bits)) and "
             "their sum, as the definitions give them.", single=sparse_report_counts),
    Property("sparsity_never_adds_work", "monotonicity",
             "The dense setting (N = M) does the layer's dense MACs, no fewer MACs, compute cycles or filter words "
             "than the sparse one, and has no metadata.", pair=sparsity_never_adds_work, vary=_dense),
]
