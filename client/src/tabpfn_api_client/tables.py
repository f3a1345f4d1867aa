"""Turning the tables users hold (lists of rows, NumPy arrays, pandas DataFrames) into what
the service reads: JSON rows, or a Parquet file.

The service's rules for a cell: a number, a string (a category) or null (missing). So NaN
and pandas' missing markers become null, booleans become the categories "True"/"False" (as
the service reads boolean file columns), NumPy scalars become Python numbers, and infinite
numbers are refused here with their position rather than by the service's JSON parser.

pandas and pyarrow are optional: without them JSON is always used.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Cell = float | int | str | None


def parquet_available() -> bool:
    """Whether pandas and pyarrow can be imported here."""
    try:
        import pandas  # noqa: F401, PLC0415
        import pyarrow  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def is_dataframe(value: Any) -> bool:
    """A pandas DataFrame (without importing pandas when nobody else has)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def is_series(value: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.Series)


def column_names(X: Any) -> list[str] | None:
    """A DataFrame's column names as text (None for other inputs)."""
    return [str(c) for c in X.columns] if is_dataframe(X) else None


def cell(value: Any, row: int, col: int) -> Cell:
    """One value as the service takes it."""
    if value is None or value is getattr(sys.modules.get("pandas"), "NA", None):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating, Decimal)):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            raise ValueError(
                f"Row {row}, column {col} is infinite; TabPFN takes finite numbers, text or "
                "missing values (None/NaN)."
            )
        return number
    if isinstance(value, str):
        return str(value)
    pandas = sys.modules.get("pandas")
    if pandas is not None and value is pandas.NaT:
        return None
    raise TypeError(
        f"Row {row}, column {col} holds a {type(value).__name__}; convert it to a number or "
        "text first."
    )


def _numeric_rows(array: np.ndarray[Any, Any]) -> list[list[Cell]]:
    """A numeric 2-D array as rows, NaN as None, in one vectorised pass."""
    values = array.astype(np.float64)
    infinite = np.isinf(values)
    if infinite.any():
        row, col = (int(i) for i in np.argwhere(infinite)[0])
        cell(values[row, col], row, col)  # raises with the position
    if np.isnan(values).any():
        cells = values.astype(object)
        cells[np.isnan(values)] = None
        rows: list[list[Cell]] = cells.tolist()
        return rows
    numeric: list[list[Cell]] = values.tolist()
    return numeric


def rows_of(X: Any) -> list[list[Cell]]:
    """A 2-D table (rows, ndarray or DataFrame) as JSON-ready rows."""
    if is_dataframe(X):
        frame = X
        if all(dtype.kind in "iuf" for dtype in frame.dtypes):
            return _numeric_rows(frame.to_numpy(dtype=np.float64, na_value=np.nan))
        columns = [frame.iloc[:, i].tolist() for i in range(frame.shape[1])]
        return [
            [cell(columns[c][r], r, c) for c in range(len(columns))] for r in range(frame.shape[0])
        ]
    array = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    if array.ndim != 2:
        raise ValueError(
            f"Expected a 2-D table (rows of values), got an array of {array.ndim} dimensions."
        )
    if array.dtype.kind in "iuf":
        return _numeric_rows(array)
    return [[cell(v, r, c) for c, v in enumerate(row)] for r, row in enumerate(array.tolist())]


def values_of(y: Any) -> list[Cell]:
    """A 1-D target as JSON-ready values."""
    items = y.tolist() if hasattr(y, "tolist") else list(y)
    if items and isinstance(items[0], list):
        raise ValueError("Expected a 1-D target (one value per row), got a 2-D array.")
    return [cell(v, r, 0) for r, v in enumerate(items)]


def frame_of(X: Any, names: Sequence[str] | None = None) -> pd.DataFrame:
    """A DataFrame with text column names and a plain index, ready for Parquet.

    Arrays get sklearn's generated names (x0, x1, …) unless `names` are given; categorical
    columns become text, as the service reads dictionary columns as text anyway."""
    import pandas as pd  # noqa: PLC0415

    frame: pd.DataFrame
    if is_dataframe(X):
        frame = X.reset_index(drop=True)
    else:
        array = np.asarray(X)
        if array.ndim != 2:
            raise ValueError(
                f"Expected a 2-D table (rows of values), got an array of {array.ndim} dimensions."
            )
        frame = pd.DataFrame(array)
    frame.columns = list(names) if names is not None else _default_names(frame)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _default_names(frame: pd.DataFrame) -> list[str]:
    if all(isinstance(c, str) for c in frame.columns):
        return [str(c) for c in frame.columns]
    return [f"x{i}" for i in range(frame.shape[1])]


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as a Parquet file (no index column, which the service would read as a
    feature); a column pyarrow cannot type is named in the error."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValueError(
            f"A column mixes value types and cannot be sent ({error}); give each column one "
            "type (numbers or text)."
        ) from None
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
