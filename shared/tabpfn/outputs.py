"""Predictions as the service stores and serves them: one entry per input row.

tabpfn-client hands predictions back in the upstream's own layout, which differs by output
type: a vector (`preds`, `mean`, `median`, `mode`), a row-major matrix (`probas`), a
quantile-major matrix (`quantiles`: one row per quantile), or a dict of these (`main`,
`full`). Everything here turns them into rows, so that a prediction split into chunks
merges by concatenation, and every output type goes the same way to JSON, CSV and Parquet:

- `preds`, `mean`, `median`, `mode`: one value per row;
- `probas`: one probability per class per row;
- `quantiles`: one value per requested quantile per row;
- `main`, `full`: one object per row (`mean`, `median`, `mode`, `quantiles` and, for
  `full`, the row's `logits` over the bars); `full`'s bar `borders` are the same for every
  row and travel beside the rows as an extra.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Keys of a `main`/`full` answer with one entry per row on axis 0, and those with the rows
# on axis 1 (quantiles come one row per quantile, as for the `quantiles` output).
_ROW_AXIS_0 = ("mean", "median", "mode", "logits")
_ROW_AXIS_1 = ("quantiles",)
# Keys that hold the same values for every row.
_ROW_INDEPENDENT = ("borders",)
STRUCTURED_OUTPUTS = ("main", "full")


def _plain(value: Any) -> Any:
    """JSON-ready: NumPy scalars to Python, non-finite floats to None (JSON has no -inf)."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_rows(values: Any, *, rows_on_axis_1: bool = False) -> list[Any]:
    array = np.asarray(values)
    if rows_on_axis_1:
        array = array.reshape(1, -1) if array.ndim == 1 else array
        array = array.T
    rows: list[Any] = _plain(array.tolist())
    return rows


def prediction_rows(y_pred: Any, output_type: str) -> tuple[list[Any], dict[str, Any]]:
    """The predictions one entry per row, and the row-independent extras (`full`'s borders)."""
    if isinstance(y_pred, dict):
        return _structured_rows(y_pred)
    if output_type == "quantiles":
        return _as_rows(y_pred, rows_on_axis_1=True), {}
    return _as_rows(y_pred), {}


def _structured_rows(y_pred: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    columns: dict[str, list[Any]] = {}
    extras: dict[str, Any] = {}
    for key, values in y_pred.items():
        if key in _ROW_INDEPENDENT:
            extras[key] = _plain(np.asarray(values).tolist())
        elif key in _ROW_AXIS_1:
            columns[key] = _as_rows(values, rows_on_axis_1=True)
        elif key in _ROW_AXIS_0:
            columns[key] = _as_rows(values)
        else:  # a key this version does not know: kept whole, like the borders
            extras[key] = _plain(np.asarray(values).tolist())
    n_rows = len(next(iter(columns.values()))) if columns else 0
    rows = [{key: column[index] for key, column in columns.items()} for index in range(n_rows)]
    return rows, extras
