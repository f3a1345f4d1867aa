"""Uploaded tables (CSV or Parquet, read by `file_reader`) → the same FeatureTable and Target
as JSON input.

Column names come from the file's header. Numeric columns become float64; text columns
must hold only text and missing values; booleans become the categories "True"/"False";
any other type (dates, lists, …) is refused with the column's name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shared.datasets.json_input import check_feature_names, parse_target
from shared.datasets.table import ColumnKind, FeatureTable, Target, column_label
from shared.errors import ValidationFailed
from shared.models.enums import Task


def _column(
    series: pd.Series, index: int, names: list[str]
) -> tuple[ColumnKind, np.ndarray[Any, Any]]:
    label = column_label(index, names)
    if isinstance(series.dtype, pd.CategoricalDtype):
        # Parquet text read as a dictionary: each row refers to one shared value.
        series = series.astype(object).infer_objects()
    if pd.api.types.is_bool_dtype(series):
        texts = [None if pd.isna(value) else str(bool(value)) for value in series.tolist()]
        return ColumnKind.CATEGORICAL, np.array(texts, dtype=object)
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():
            raise ValidationFailed(
                f"{label}, row {int(np.argmax(infinite))} is not a finite number."
            )
        return ColumnKind.NUMERIC, values
    if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        values = series.to_numpy(dtype=object)
        for row, value in enumerate(values):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                values[row] = None
            elif not isinstance(value, str):
                raise ValidationFailed(
                    f"{label}, row {row} holds {type(value).__name__} among text; "
                    "use one type per column."
                )
        return ColumnKind.CATEGORICAL, values
    raise ValidationFailed(
        f"{label} has type {series.dtype}; convert it to numbers or text before uploading."
    )


def to_feature_table(
    frame: pd.DataFrame, *, expected_kinds: list[ColumnKind] | None = None
) -> FeatureTable:
    """Type-check every column of an uploaded table."""
    if frame.shape[0] == 0:
        raise ValidationFailed("The uploaded table has no rows.")
    if frame.shape[1] == 0:
        raise ValidationFailed("The uploaded table has no feature columns.")
    names = check_feature_names([str(c) for c in frame.columns], frame.shape[1])
    assert names is not None
    columns: dict[str, np.ndarray[Any, Any]] = {}
    kinds: list[ColumnKind] = []
    for index, name in enumerate(names):
        kind, values = _column(frame.iloc[:, index], index, names)
        expected = expected_kinds[index] if expected_kinds else None
        if expected is ColumnKind.CATEGORICAL and kind is ColumnKind.NUMERIC:
            kind = expected
            values = np.array([None if np.isnan(v) else _number_text(v) for v in values], object)
        elif expected is ColumnKind.NUMERIC and kind is ColumnKind.CATEGORICAL:
            if any(v is not None for v in values):
                raise ValidationFailed(
                    f"{column_label(index, names)} held numbers when the model was fit, but "
                    "here it holds text."
                )
            kind, values = expected, np.full(len(values), np.nan)
        columns[name] = values
        kinds.append(kind)
    return FeatureTable(columns=columns, kinds=kinds, names=names)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def split_target(
    frame: pd.DataFrame, target_column: str, task: Task
) -> tuple[pd.DataFrame, Target]:
    """Separate the target column from the features and validate it."""
    if target_column not in frame.columns:
        available = ", ".join(repr(str(c)) for c in list(frame.columns)[:20])
        raise ValidationFailed(
            f"target_column {target_column!r} is not a column of the file (columns: {available})."
        )
    series = frame[target_column]
    values = [None if pd.isna(v) else v for v in series.tolist()]
    target = parse_target(values, len(values), task)
    return frame.drop(columns=[target_column]), target
