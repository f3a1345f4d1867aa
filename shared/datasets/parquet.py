"""Stored form of datasets and results: zstd-compressed Parquet bytes with their sha256.

Training payloads hold the features plus the target in the reserved column `__target__`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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


def encode(
    columns: Mapping[str, np.ndarray[Any, Any]], target: np.ndarray[Any, Any] | None = None
) -> Encoded:
    """Serialise named columns (and the target, for a fit) to compressed Parquet."""
    arrays = [pa.array(values) for values in columns.values()]
    names = [str(name) for name in columns]
    if target is not None:
        arrays.append(pa.array(target))
        names.append(TARGET_COLUMN)
    # Dictionary encoding pays off for categories only; on float columns it costs half the
    # write time and makes the file larger.
    categorical = [
        n for n, a in zip(names, arrays, strict=True) if not pa.types.is_floating(a.type)
    ]
    buffer = pa.BufferOutputStream()
    pq.write_table(
        pa.Table.from_arrays(arrays, names=names),
        buffer,
        compression="zstd",
        compression_level=1,
        use_dictionary=categorical,
    )
    data = buffer.getvalue().to_pybytes()
    rows = len(arrays[0]) if arrays else 0
    return Encoded(data=data, sha256=hashlib.sha256(data).hexdigest(), rows=rows, cols=len(columns))


def decode(data: bytes) -> tuple[pd.DataFrame | np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """Features and target (None for predict payloads).

    All-numeric features come back as one float64 matrix rather than a DataFrame: the
    upstream client serialises a matrix without copying it, which keeps a large fit's
    memory near the size of its data.
    """
    table = pq.read_table(pa.BufferReader(data))
    target = None
    if TARGET_COLUMN in table.column_names:
        target = table.column(TARGET_COLUMN).to_numpy()
        table = table.drop_columns([TARGET_COLUMN])
    if all(pa.types.is_floating(field.type) for field in table.schema):
        # Column-major: the client's own Parquet conversion then reads each column in
        # place instead of copying the whole matrix first.
        matrix = np.empty((table.num_rows, table.num_columns), dtype=np.float64, order="F")
        for index in range(table.num_columns):
            matrix[:, index] = table.column(index).to_numpy()
        return matrix, target
    return table.to_pandas(), target


def split(data: bytes, bounds: list[tuple[int, int]]) -> list[Encoded]:
    """Row ranges `[start, stop)` of a stored table, each as a stored table of its own, with
    the same columns and types (the slices share the source's memory until written)."""
    table = pq.read_table(pa.BufferReader(data))
    parts: list[Encoded] = []
    for start, stop in bounds:
        buffer = pa.BufferOutputStream()
        pq.write_table(
            table.slice(start, stop - start), buffer, compression="zstd", compression_level=1
        )
        part = buffer.getvalue().to_pybytes()
        parts.append(
            Encoded(
                data=part,
                sha256=hashlib.sha256(part).hexdigest(),
                rows=stop - start,
                cols=table.num_columns,
            )
        )
    return parts


def read_frame(data: bytes) -> pd.DataFrame:
    """A stored table exactly as written (results)."""
    frame: pd.DataFrame = pq.read_table(pa.BufferReader(data)).to_pandas()
    return frame
