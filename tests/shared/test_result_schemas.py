"""Typed job results (shared.jobs.result_schemas): every output type tabpfn-client offers
has its model, and the results the worker stores render through them unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shared.jobs import result_schemas
from shared.jobs.result_schemas import OUTPUT_TYPES, result_of
from shared.models import JobKind, Task
from shared.tabpfn.adapter import output_types
from shared.tabpfn.outputs import prediction_rows

ROWS = 3
QUANTILES = [0.1, 0.5, 0.9]


def upstream_answer(output_type: str) -> Any:
    """What tabpfn-client hands back for each output type (shared.tabpfn.outputs)."""
    rng = np.random.default_rng(0)
    if output_type == "preds":
        return np.array(["a", "b", "a"])
    if output_type == "probas":
        return rng.dirichlet([1, 1], size=ROWS)
    if output_type == "quantiles":
        return [rng.normal(size=ROWS) for _ in QUANTILES]
    if output_type in ("main", "full"):
        answer = {
            "mean": rng.normal(size=ROWS),
            "median": rng.normal(size=ROWS),
            "mode": rng.normal(size=ROWS),
            "quantiles": [rng.normal(size=ROWS) for _ in QUANTILES],
        }
        if output_type == "full":
            answer["logits"] = rng.normal(size=(ROWS, 4))
            answer["borders"] = np.linspace(-1, 1, 5)
        return answer
    return np.array([1.5, -np.inf, 0.25])  # mean, median, mode; -inf becomes null


def test_every_output_type_has_a_typed_result() -> None:
    offered = set(output_types(Task.CLASSIFICATION)) | set(output_types(Task.REGRESSION))
    assert offered == set(OUTPUT_TYPES)


@pytest.mark.parametrize("output_type", sorted(OUTPUT_TYPES))
def test_stored_predictions_render_unchanged(output_type: str) -> None:
    rows, extras = prediction_rows(upstream_answer(output_type), output_type)
    stored = {
        "output_type": output_type,
        "n_rows": ROWS,
        "classes": ["a", "b"] if output_type == "probas" else None,
        "quantiles": QUANTILES if output_type in ("quantiles", "main", "full") else None,
        "inline": True,
        "predictions": rows,
        **extras,
    }
    rendered = result_of(JobKind.PREDICT, stored).model_dump(mode="json", exclude_none=True)
    expected = {key: value for key, value in stored.items() if value is not None}
    assert rendered == {**expected, "kind": "predict"}
    assert type(result_of(JobKind.PREDICT, stored)).__name__.endswith("Prediction")


def test_a_fit_result_and_a_large_prediction() -> None:
    fit = result_of(
        JobKind.FIT,
        {"train_set_uid": "u1", "n_samples": 10, "n_features": 2, "classes": [0, 1]},
    )
    assert isinstance(fit, result_schemas.FitResult) and fit.kind == "fit"
    large = result_of(
        JobKind.PREDICT,
        {
            "output_type": "probas",
            "n_rows": 5000,
            "classes": [0, 1],
            "inline": False,
            "predictions": None,
            "chunks": 5,
        },
    )
    assert isinstance(large, result_schemas.ProbabilityPrediction) and large.chunks == 5
