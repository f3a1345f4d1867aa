"""Prediction results: one entry per input row, as JSON rows or as a table (CSV, Parquet).

preds / mean / median / mode → one value per row (column `prediction`);
probas → one probability per class (columns `proba_<class>`, in `classes` order);
quantiles → one value per requested quantile (columns `quantile_<q>`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def columns(
    output_type: str, classes: list[Any] | None, quantiles: list[float] | None
) -> list[str]:
    """The table columns for an output type."""
    if output_type == "probas":
        return [f"proba_{c}" for c in classes or []]
    if output_type == "quantiles":
        # repr, not a rounded format: two distinct quantiles must never share a column.
        return [f"quantile_{float(q)!r}" for q in quantiles or []]
    return ["prediction"]


def to_frame(
    predictions: list[Any],
    output_type: str,
    classes: list[Any] | None,
    quantiles: list[float] | None,
) -> pd.DataFrame:
    """Rows of predictions as a table."""
    names = columns(output_type, classes, quantiles)
    if len(names) == 1 and output_type not in ("probas", "quantiles"):
        return pd.DataFrame({names[0]: predictions})
    return pd.DataFrame(predictions, columns=names)


def to_rows(frame: pd.DataFrame, output_type: str) -> list[Any]:
    """A stored table back to JSON rows."""
    if output_type in ("probas", "quantiles"):
        return [list(row) for row in frame.itertuples(index=False, name=None)]
    return list(frame.iloc[:, 0].tolist())
