"""Stored form of datasets and results: zstd-compressed Parquet bytes with their sha256.

Training payloads hold the features plus the target in the reserved column `__target__`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TARGET_COLUMN = "__target__"
FORMAT = "parquet+zstd"


@dataclass(frozen=True)
class Encoded:
    data: bytes
    sha256: str
    rows: int
    cols: int


def encode(frame: pd.DataFrame, target: np.ndarray[Any, Any] | None = None) -> Encoded:
    """Serialise features (and the target, for a fit) to compressed Parquet."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if target is not None:
        table = table.append_column(TARGET_COLUMN, pa.array(target))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    data = buffer.getvalue()
    return Encoded(
        data=data, sha256=hashlib.sha256(data).hexdigest(), rows=frame.shape[0], cols=frame.shape[1]
    )


def decode(data: bytes) -> tuple[pd.DataFrame | np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """Features and target (None for predict payloads).

    All-numeric features come back as one float64 matrix rather than a DataFrame: the
    upstream client serialises a matrix without copying it, which keeps a large fit's
    memory near the size of its data.
    """
    table = pq.read_table(io.BytesIO(data))
    target = None
    if TARGET_COLUMN in table.column_names:
        target = table.column(TARGET_COLUMN).to_numpy()
        table = table.drop_columns([TARGET_COLUMN])
    if all(pa.types.is_floating(field.type) for field in table.schema):
        matrix = np.empty((table.num_rows, table.num_columns), dtype=np.float64)
        for index, column in enumerate(table.columns):
            matrix[:, index] = column.to_numpy()
        return matrix, target
    return table.to_pandas(), target


def read_frame(data: bytes) -> pd.DataFrame:
    """A stored table exactly as written (results)."""
    frame: pd.DataFrame = pq.read_table(io.BytesIO(data)).to_pandas()
    return frame
