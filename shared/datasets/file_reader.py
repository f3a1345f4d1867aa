"""Uploaded files (CSV or Parquet): their shape first, their data only within bounds.

Decoding is where an upload costs memory and CPU, and a small file can ask for a great deal
of both: a Parquet file of 140 KiB can declare 10 M rows (its footer says so; run-length
encoding holds them in a few bytes), a CSV file of 4.5 MiB can name 400,000 columns in its
header. So reading is two steps:

1. `inspect()` reads only the Parquet footer, or only the CSV header line: the columns and,
   for Parquet, the rows and the decoded size.
2. `decode()` first refuses a shape over the bounds (the account's TabPFN limits, or hard
   caps when they are unknown: 400 LIMIT_EXCEEDED), and a Parquet file that would decode
   to more than `MAX_EXPANSION` times its size once past `EXPANSION_FLOOR_BYTES` (a
   decompression bomb: 413 PAYLOAD_TOO_LARGE); then it decodes, a CSV file for at most the
   allowed rows plus one (one more says there are too many).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shared.datasets.limits import Bounds
from shared.errors import PayloadTooLarge, ValidationFailed

PARQUET_MAGIC = b"PAR1"
# Float64 columns take 8 bytes a cell once decoded, and text columns at least a pointer.
DECODED_CELL_BYTES = 8
# Honest Parquet files decode to about their size (measured numbers) up to some 150 times it
# (sparse one-hot columns, zstd); a bomb of repeated values to thousands of times. Tables up
# to the floor (a million float64 cells) may compress as they like.
MAX_EXPANSION = 256
EXPANSION_FLOOR_BYTES = 8 * 1024 * 1024
_QUOTED = re.compile(rb'"[^"]*"')


@dataclass(frozen=True)
class UploadedFile:
    """An upload whose shape is known before its data is decoded."""

    content: bytes
    is_parquet: bool
    n_cols: int
    n_rows: int | None  # from the Parquet footer; None for CSV until it is read
    decoded_bytes: int  # Parquet: what decoding would allocate, at least; CSV: its size


def inspect(content: bytes, filename: str | None) -> UploadedFile:
    """The file's format and shape (Parquet recognised by its magic bytes or extension),
    read from the Parquet footer or the CSV header line alone."""
    if not content:
        raise ValidationFailed("The uploaded file is empty.")
    name = (filename or "").lower()
    if content[:4] == PARQUET_MAGIC or name.endswith((".parquet", ".pq")):
        return _inspect_parquet(content)
    return UploadedFile(content, False, _csv_width(content), None, len(content))


def _inspect_parquet(content: bytes) -> UploadedFile:
    try:
        parquet = pq.ParquetFile(io.BytesIO(content))
        metadata, schema = parquet.metadata, parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as error:
        raise ValidationFailed(f"The file is not readable Parquet: {error}") from None
    # pandas stores a non-default index as a column; it comes back as the index, not data.
    stored = (schema.pandas_metadata or {}).get("index_columns", [])
    index = {name for name in stored if isinstance(name, str)}  # a RangeIndex is a dict
    n_cols = sum(1 for name in schema.names if name not in index)
    n_rows = metadata.num_rows
    groups = range(metadata.num_row_groups)
    uncompressed = sum(metadata.row_group(i).total_byte_size for i in groups)
    decoded = max(uncompressed, n_rows * metadata.num_columns * DECODED_CELL_BYTES)
    return UploadedFile(content, True, n_cols, n_rows, decoded)


def _csv_width(content: bytes) -> int:
    """The header's column count, counted in the raw bytes (commas outside quotes), so that
    a header of 400,000 names costs a scan, not 400,000 strings. Leading blank lines are
    skipped, as the CSV parser skips them."""
    start = 0
    while True:
        end = content.find(b"\n", start)
        line = content[start : len(content) if end < 0 else end].strip(b"\r\t ")
        if line or end < 0:
            break
        start = end + 1
    if not line:
        raise ValidationFailed("The uploaded CSV file has no header row.")
    return _QUOTED.sub(b"", line).count(b",") + 1


def decode(upload: UploadedFile, bounds: Bounds, *, extra_cols: int = 0) -> pd.DataFrame:
    """The file as a DataFrame, once its shape passed `bounds`; `extra_cols` columns of the
    file are not features (the fit's target)."""
    n_features = max(upload.n_cols - extra_cols, 0)
    bounds.check(upload.n_rows, n_features)
    if upload.is_parquet:
        _check_expansion(upload)
        frame = _decode_parquet(upload.content)
    else:
        allowed = bounds.rows_allowed(n_features)
        frame = _decode_csv(upload.content, allowed + 1)
        if len(frame) > allowed:
            raise bounds.too_many_rows(None, n_features)
    # Columns are named by text everywhere else (target_column, feature_names).
    frame.columns = [str(column) for column in frame.columns]
    return frame


def _check_expansion(upload: UploadedFile) -> None:
    allowed = max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION * len(upload.content))
    if upload.decoded_bytes > allowed:
        raise PayloadTooLarge(
            f"The Parquet file ({len(upload.content)} bytes) declares {upload.n_rows} rows x "
            f"{upload.n_cols} columns, about {upload.decoded_bytes // 1_000_000} MB once "
            f"decoded: more than {MAX_EXPANSION} times its size. Send the data less "
            "compressed (or as CSV), or in smaller parts.",
            details={"decoded_bytes": upload.decoded_bytes, "limit": allowed},
        )


def _decode_parquet(content: bytes) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = pq.read_table(io.BytesIO(content)).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as error:
        raise ValidationFailed(f"The file is not readable Parquet: {error}") from None
    return frame


def _decode_csv(content: bytes, max_rows: int) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(content), skipinitialspace=True, nrows=max_rows)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        ValueError,
    ) as error:
        text = str(error).strip()
        message = text.splitlines()[0] if text else type(error).__name__
        raise ValidationFailed(f"The file is not readable CSV: {message}") from None
