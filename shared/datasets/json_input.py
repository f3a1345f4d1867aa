"""JSON rows → a typed FeatureTable and a Target, with errors that point at the bad cell.

Cells may be numbers, strings (categories) or null (missing). A column is numeric when every
value reads as a number (numbers, or strings such as "2.5", as in a CSV file), and
categorical otherwise, when it holds only strings and nulls; numbers mixed with other
strings, booleans, nested arrays or objects, and non-finite numbers are refused. The common
all-numeric case is converted by NumPy in one call; only other columns are walked cell by cell.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shared.datasets.table import ColumnKind, FeatureTable, Target, column_label
from shared.errors import ValidationFailed
from shared.models.enums import Task

MAX_NAME_LENGTH = 200
RESERVED_NAMES = frozenset({"__target__"})


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_feature_names(names: Any, n_cols: int) -> list[str] | None:
    """Names must be unique non-empty strings, one per column."""
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValidationFailed("feature_names must be an array of strings.")
    if len(names) != n_cols:
        raise ValidationFailed(
            f"feature_names has {len(names)} names but the features have {n_cols} columns."
        )
    for index, name in enumerate(names):
        if not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise ValidationFailed(
                f"feature_names[{index}] must be 1 to {MAX_NAME_LENGTH} characters long."
            )
        if "\x00" in name:
            raise ValidationFailed(f"feature_names[{index}] holds the NUL character.")
        if name in RESERVED_NAMES:
            raise ValidationFailed(f"feature_names[{index}]: {name!r} is a reserved name.")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise ValidationFailed(
                f"feature_names[{index}] repeats {name!r} (first at feature_names[{seen[name]}])."
            )
        seen[name] = index
    return list(names)


def peek_shape(rows: Any) -> tuple[int, int] | None:
    """Rows and columns of an array of arrays, from its length and its first row alone, to
    check the limits before any cell is read (None when it is no such array:
    `parse_features` then says what is wrong)."""
    if isinstance(rows, list) and rows and isinstance(rows[0], list):
        return len(rows), len(rows[0])
    return None


def _check_shape(rows: Any, field: str) -> int:
    """The column count of a non-empty, rectangular array of arrays."""
    if not isinstance(rows, list):
        raise ValidationFailed(f"{field} must be an array of rows (arrays of values).")
    if not rows:
        raise ValidationFailed(f"{field} is empty; send at least one row.")
    first = rows[0]
    if not isinstance(first, list):
        raise ValidationFailed(f"{field}[0] must be an array of values, not {_describe(first)}.")
    n_cols = len(first)
    if n_cols == 0:
        raise ValidationFailed(f"{field}[0] is empty; each row needs at least one value.")
    for index, row in enumerate(rows):
        if type(row) is not list:
            raise ValidationFailed(
                f"{field}[{index}] must be an array of values, not {_describe(row)}."
            )
        if len(row) != n_cols:
            raise ValidationFailed(
                f"{field}[{index}] has {len(row)} values but {field}[0] has {n_cols}; "
                "every row needs the same number of values."
            )
    return n_cols


def _numeric(values: list[Any], ndim: int) -> np.ndarray[Any, Any] | None:
    """The values as float64 (None → NaN) when they are numbers and nulls in exactly `ndim`
    dimensions (a cell holding an array would add one)."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.ndim == ndim else None


def _classify_column(
    values: list[Any], index: int, field: str, names: list[str] | None
) -> tuple[ColumnKind, np.ndarray[Any, Any]]:
    """Walk one column cell by cell: the slow path for strings, and for precise errors."""
    first_number: int | None = None
    first_string: int | None = None
    for row, value in enumerate(values):
        if value is None:
            continue
        if isinstance(value, str):
            first_string = row if first_string is None else first_string
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            first_number = row if first_number is None else first_number
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationFailed(
                    f"{field}[{row}][{index}] is not a finite number; send null for a "
                    "missing value."
                )
        else:
            hint = " (send 0/1 or a string)" if isinstance(value, bool) else ""
            raise ValidationFailed(
                f"{field}[{row}][{index}] is {_describe(value)}{hint}; values must be numbers, "
                "strings or null."
            )
        if first_number is not None and first_string is not None:
            raise ValidationFailed(
                f"{column_label(index, names)} mixes numbers ({field}[{first_number}][{index}]) "
                f"and strings ({field}[{first_string}][{index}]); send one type per column."
            )
    if first_string is not None:
        return ColumnKind.CATEGORICAL, np.array(values, dtype=object)
    return ColumnKind.NUMERIC, np.array(values, dtype=np.float64)


def _reject_booleans(column: np.ndarray[Any, Any], rows: list[Any], index: int, field: str) -> None:
    """NumPy reads true/false as 1.0/0.0; only cells equal to 0 or 1 can hide a boolean."""
    for row in np.flatnonzero((column == 0.0) | (column == 1.0)):
        if isinstance(rows[row][index], bool):
            raise ValidationFailed(
                f"{field}[{row}][{index}] is a boolean (send 0/1 or a string); values must be "
                "numbers, strings or null."
            )


def _as_categories(values: list[Any], index: int, field: str) -> np.ndarray[Any, Any]:
    """A column the model saw as categories: numbers become their text, nulls stay null."""
    for row, value in enumerate(values):
        if isinstance(value, (bool, list, dict)):
            raise ValidationFailed(
                f"{field}[{row}][{index}] is {_describe(value)}; values must be numbers, "
                "strings or null."
            )
    return np.array([v if v is None or isinstance(v, str) else str(v) for v in values], object)


def parse_features(
    rows: Any,
    *,
    names: list[str] | None,
    field: str = "features",
    expected_kinds: list[ColumnKind] | None = None,
) -> FeatureTable:
    """Validate and type the rows. All-numeric tables take one vectorised conversion.

    `expected_kinds` (predict) holds each column to the kind it had when the model was fit.
    """
    n_cols = _check_shape(rows, field)
    names = check_feature_names(names, n_cols)
    columns: dict[str, np.ndarray[Any, Any]] = {}
    kinds: list[ColumnKind] = []
    matrix = _numeric(rows, ndim=2)
    for index in range(n_cols):
        expected = expected_kinds[index] if expected_kinds else None
        kind: ColumnKind
        column: np.ndarray[Any, Any] | None = None
        if expected is ColumnKind.CATEGORICAL:
            kind, column = expected, _as_categories([row[index] for row in rows], index, field)
        else:
            column = matrix[:, index] if matrix is not None else None
            if column is None:
                column = _numeric([row[index] for row in rows], ndim=1)
            if column is not None:
                kind = ColumnKind.NUMERIC
                _reject_booleans(column, rows, index, field)
                _reject_infinite(column, index, field)
            else:
                kind, column = _classify_column([row[index] for row in rows], index, field, names)
                if expected is ColumnKind.NUMERIC:
                    _reject_text_in_numeric(column, index, field, names)
        columns[names[index] if names else str(index)] = column
        kinds.append(kind)
    return FeatureTable(columns=columns, kinds=kinds, names=names)


def _reject_text_in_numeric(
    column: np.ndarray[Any, Any], index: int, field: str, names: list[str] | None
) -> None:
    row = next(r for r, value in enumerate(column) if isinstance(value, str))
    raise ValidationFailed(
        f"{column_label(index, names)} held numbers when the model was fit, "
        f"but {field}[{row}][{index}] is the string {column[row]!r}."
    )


def _reject_infinite(column: np.ndarray[Any, Any], index: int, field: str) -> None:
    infinite = np.isinf(column)
    if infinite.any():
        row = int(np.argmax(infinite))
        raise ValidationFailed(
            f"{field}[{row}][{index}] is not a finite number; send null for a missing value."
        )


def parse_target(values: Any, n_rows: int, task: Task) -> Target:
    """Labels for classification (numbers or strings, at least two classes) or numbers for
    regression, exactly one per row and none missing."""
    if not isinstance(values, list):
        raise ValidationFailed("target must be an array with one value per row.")
    if len(values) != n_rows:
        raise ValidationFailed(
            f"target has {len(values)} values but features has {n_rows} rows; "
            "send one target value per row."
        )
    if not values:
        raise ValidationFailed("target is empty; send at least one row.")
    array = _uniform_target(values, task)
    if task is Task.REGRESSION:
        return Target(values=array.astype(np.float64), classes=None)
    classes = np.unique(array)
    if len(classes) < 2:
        raise ValidationFailed(
            f"target has a single class ({classes[0].item()!r}); classification needs at "
            "least two classes."
        )
    return Target(values=array, classes=[c.item() for c in classes])


def _uniform_target(values: list[Any], task: Task) -> np.ndarray[Any, Any]:
    """The target as one NumPy array of numbers (or of strings, for labels).

    One vectorised conversion covers the usual cases; anything else (nulls, booleans,
    mixed types, non-finite numbers) is found by a walk that names the first bad value."""
    try:
        array = np.array(values)
    except ValueError:  # ragged nested arrays
        _describe_target_problem(values, task)
        raise
    numeric = array.ndim == 1 and array.dtype.kind in "if" and bool(np.isfinite(array).all())
    if numeric and not _holds_booleans(values, array):
        return array
    # NumPy turns [1, "a"] into strings too, so a text fast path checks every value is one.
    textual = array.ndim == 1 and array.dtype.kind == "U" and task is Task.CLASSIFICATION
    if textual and all(isinstance(value, str) and "\x00" not in value for value in values):
        return array
    _describe_target_problem(values, task)
    raise AssertionError("unreachable: the walk raises")  # pragma: no cover


def _holds_booleans(values: list[Any], array: np.ndarray[Any, Any]) -> bool:
    return any(isinstance(values[i], bool) for i in np.flatnonzero((array == 0) | (array == 1)))


def _describe_target_problem(values: list[Any], task: Task) -> None:
    kinds: set[str] = set()
    for row, value in enumerate(values):
        if value is None:
            raise ValidationFailed(f"target[{row}] is null; every row needs a target value.")
        if isinstance(value, str):
            if task is Task.REGRESSION:
                raise ValidationFailed(f"target[{row}] is a string; regression needs numbers.")
            if "\x00" in value:
                raise ValidationFailed(f"target[{row}] holds the NUL character.")
            kinds.add("string")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationFailed(f"target[{row}] is not a finite number.")
            kinds.add("number")
        else:
            raise ValidationFailed(
                f"target[{row}] is {_describe(value)}; target values must be numbers"
                + (" or strings." if task is Task.CLASSIFICATION else ".")
            )
        if len(kinds) > 1:
            raise ValidationFailed("target mixes numbers and strings; use one type for all labels.")
    raise ValidationFailed("target holds values that are neither numbers nor strings.")
