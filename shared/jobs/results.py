"""Prediction results: one entry per input row, as JSON rows or as a table (CSV, Parquet).

preds / mean / median / mode → one value per row (column `prediction`);
probas → one probability per class (columns `proba_<class>`, in `classes` order);
quantiles → one value per requested quantile (columns `quantile_<q>`);
main / full → one object per row (`mean`, `median`, `mode`, `quantiles` and, for full,
`logits`): columns `mean`, `median`, `mode`, `quantile_<q>` and `logit_<i>` (full's bar
`borders`, the same for every row, stay in the job's result, not in the table).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shared.tabpfn.outputs import STRUCTURED_OUTPUTS

# Output types whose result carries the quantiles they were computed for.
WITH_QUANTILES = ("quantiles", *STRUCTURED_OUTPUTS)
_SCALARS = ("mean", "median", "mode")
_QUANTILE, _LOGIT = "quantile_", "logit_"


def extras_entry(extras: dict[str, Any]) -> dict[str, Any]:
    """What a prediction's result keeps of the upstream's row-independent extras: `borders`
    (documented, of `full`) beside the predictions, anything newer under `extras`, so no
    key the upstream adds can overwrite the result's own."""
    entry: dict[str, Any] = {}
    known = {key: value for key, value in extras.items() if key == "borders"}
    newer = {key: value for key, value in extras.items() if key != "borders"}
    entry.update(known)
    if newer:
        entry["extras"] = newer
    return entry


def extras_of(result: dict[str, Any]) -> dict[str, Any]:
    """The extras a stored result holds (the inverse of `extras_entry`)."""
    extras = dict(result.get("extras") or {})
    if "borders" in result:
        extras["borders"] = result["borders"]
    return extras


def _quantile_columns(quantiles: list[float] | None) -> list[str]:
    # repr, not a rounded format: two distinct quantiles must never share a column.
    return [f"{_QUANTILE}{float(q)!r}" for q in quantiles or []]


def columns(
    output_type: str, classes: list[Any] | None, quantiles: list[float] | None
) -> list[str]:
    """The table columns for an output type (for `full`, without its logit columns)."""
    if output_type == "probas":
        return [f"proba_{c}" for c in classes or []]
    if output_type == "quantiles":
        return _quantile_columns(quantiles)
    if output_type in STRUCTURED_OUTPUTS:
        return [*_SCALARS, *_quantile_columns(quantiles)]
    return ["prediction"]


def to_frame(
    predictions: list[Any],
    output_type: str,
    classes: list[Any] | None,
    quantiles: list[float] | None,
) -> pd.DataFrame:
    """Rows of predictions as a table."""
    if output_type in STRUCTURED_OUTPUTS:
        return _structured_frame(predictions, quantiles)
    names = columns(output_type, classes, quantiles)
    if len(names) == 1 and output_type not in ("probas", "quantiles"):
        return pd.DataFrame({names[0]: predictions})
    return pd.DataFrame(predictions, columns=names)


def _structured_frame(predictions: list[Any], quantiles: list[float] | None) -> pd.DataFrame:
    table: dict[str, list[Any]] = {}
    for name in _SCALARS:
        table[name] = [row.get(name) for row in predictions]
    for index, name in enumerate(_quantile_columns(quantiles)):
        table[name] = [(row.get("quantiles") or [None] * (index + 1))[index] for row in predictions]
    n_logits = max((len(row.get("logits") or []) for row in predictions), default=0)
    for index in range(n_logits):
        table[f"{_LOGIT}{index}"] = [row["logits"][index] for row in predictions]
    return pd.DataFrame(table)


def to_rows(frame: pd.DataFrame, output_type: str) -> list[Any]:
    """A stored table back to JSON rows; a missing value (NaN in the table) is None, since
    NaN is not JSON (Postgres refuses it in JSONB, and a client's parser would too)."""
    if output_type not in STRUCTURED_OUTPUTS and frame.isna().to_numpy().any():
        frame = frame.astype(object).where(frame.notna(), None)
    if output_type in ("probas", "quantiles"):
        return [list(row) for row in frame.itertuples(index=False, name=None)]
    if output_type in STRUCTURED_OUTPUTS:
        return _structured_rows(frame)
    return list(frame.iloc[:, 0].tolist())


def _structured_rows(frame: pd.DataFrame) -> list[Any]:
    names = [str(name) for name in frame.columns]
    quantile_at = [i for i, name in enumerate(names) if name.startswith(_QUANTILE)]
    logit_at = [i for i, name in enumerate(names) if name.startswith(_LOGIT)]
    scalar_at = {name: names.index(name) for name in _SCALARS if name in names}
    rows: list[Any] = []
    for values in (
        frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    ):
        row: dict[str, Any] = {name: values[i] for name, i in scalar_at.items()}
        row["quantiles"] = [values[i] for i in quantile_at]
        if logit_at:
            row["logits"] = [values[i] for i in logit_at]
        rows.append(row)
    return rows
