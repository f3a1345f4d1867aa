"""Predictions stored as a Parquet table come back as JSON rows, missing values as null."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.datasets import parquet
from shared.jobs import results


def _round_trip(predictions: list[Any], output_type: str, **kwargs: Any) -> list[Any]:
    frame = results.to_frame(
        predictions, output_type, kwargs.get("classes"), kwargs.get("quantiles")
    )
    stored = parquet.encode({name: frame[name].to_numpy() for name in frame.columns})
    return results.to_rows(parquet.read_frame(stored.data), output_type)


@pytest.mark.parametrize(
    ("output_type", "predictions", "kwargs"),
    [
        ("mean", [1.5, None, 2.5], {}),
        ("probas", [[0.2, 0.8], [None, None], [0.6, 0.4]], {"classes": [0, 1]}),
        ("quantiles", [[0.1, 0.9], [0.2, None]], {"quantiles": [0.1, 0.9]}),
    ],
)
def test_missing_values_come_back_as_null_not_nan(
    output_type: str, predictions: list[Any], kwargs: dict[str, Any]
) -> None:
    rows = _round_trip(predictions, output_type, **kwargs)
    assert rows == predictions
    json.dumps(rows, allow_nan=False)  # strict JSON, as Postgres stores it in JSONB


def test_complete_tables_keep_their_numbers() -> None:
    rows = _round_trip([[0.25, 0.75], [0.5, 0.5]], "probas", classes=["a", "b"])
    assert rows == [[0.25, 0.75], [0.5, 0.5]]
    assert all(isinstance(value, float) for row in rows for value in row)
