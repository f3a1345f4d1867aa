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

The footer cannot tell everything. Nested columns (lists, structs, maps) are refused from
the schema, before any data is read (a list can hold millions of values in one cell). Text
columns are read as dictionaries (each distinct value once, the rows as indices), and what
they would take as plain text is added up before anything is materialised: a file that
repeats one long text over many rows is a bomb the footer's sizes do not show. A CSV
header's columns are counted with its quotes in mind (a quoted name may hold a newline), and
the decoded table's width is checked again before its cells are.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
# A text cell costs its characters plus, once decoded, a reference.
_TEXT_CELL_OVERHEAD = 8
_NESTED = (
    pa.types.is_list,
    pa.types.is_large_list,
    pa.types.is_fixed_size_list,
    pa.types.is_struct,
    pa.types.is_map,
    pa.types.is_union,
)


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
    _check_flat(schema)
    # pandas stores a non-default index as a column; it comes back as the index, not data.
    stored = (schema.pandas_metadata or {}).get("index_columns", [])
    index = {name for name in stored if isinstance(name, str)}  # a RangeIndex is a dict
    n_cols = sum(1 for name in schema.names if name not in index)
    n_rows = metadata.num_rows
    groups = range(metadata.num_row_groups)
    uncompressed = sum(metadata.row_group(i).total_byte_size for i in groups)
    decoded = max(uncompressed, n_rows * metadata.num_columns * DECODED_CELL_BYTES)
    return UploadedFile(content, True, n_cols, n_rows, decoded)


def _check_flat(schema: pa.Schema) -> None:
    """Every column holds one number or text per cell: nested types are refused unread."""
    for field in schema:
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if any(is_nested(kind) for is_nested in _NESTED):
            raise ValidationFailed(
                f"Column {field.name!r} has type {kind}; each cell must hold one number or "
                "one text (flatten nested columns before uploading)."
            )


def _csv_width(content: bytes) -> int:
    """The header's column count, counted in the raw bytes (commas outside quotes, up to the
    first newline outside quotes), so that a header of 400,000 names costs a scan, not
    400,000 strings. Leading blank lines are skipped, as the CSV parser skips them."""
    start = 0
    while content[start : start + 1] in (b"\n", b"\r", b" ", b"\t"):
        start += 1
    if start >= len(content):
        raise ValidationFailed("The uploaded CSV file has no header row.")
    commas, position, quoted = 0, start, False
    while position < len(content):
        if quoted:  # inside quotes: only the closing quote matters ("" reopens at once)
            end = content.find(b'"', position)
            if end < 0:
                raise ValidationFailed("The uploaded CSV file's header has an unclosed quote.")
            position, quoted = end + 1, False
            continue
        quote = content.find(b'"', position)
        newline = content.find(b"\n", position)
        stop = min(i for i in (quote, newline, len(content)) if i >= 0)
        commas += content.count(b",", position, stop)
        if stop == quote:
            position, quoted = quote + 1, True
        else:
            break
    return commas + 1


def decode(upload: UploadedFile, bounds: Bounds, *, extra_cols: int = 0) -> pd.DataFrame:
    """The file as a DataFrame, once its shape passed `bounds`; `extra_cols` columns of the
    file are not features (the fit's target)."""
    n_features = max(upload.n_cols - extra_cols, 0)
    bounds.check(upload.n_rows, n_features)
    if upload.is_parquet:
        _check_expansion(upload)
        frame = _decode_parquet(upload.content, _allowed_bytes(upload))
    else:
        allowed = bounds.rows_allowed(n_features)
        frame = _decode_csv(upload.content, allowed + 1)
        # The header scan counted the columns; the parser decides, so check what it read.
        bounds.check(None, max(frame.shape[1] - extra_cols, 0))
        if len(frame) > allowed:
            raise bounds.too_many_rows(None, n_features)
    # Columns are named by text everywhere else (target_column, feature_names).
    frame.columns = [str(column) for column in frame.columns]
    return frame


def _allowed_bytes(upload: UploadedFile) -> int:
    return max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION * len(upload.content))


def _check_expansion(upload: UploadedFile) -> None:
    allowed = _allowed_bytes(upload)
    if upload.decoded_bytes > allowed:
        raise PayloadTooLarge(
            f"The Parquet file ({len(upload.content)} bytes) declares {upload.n_rows} rows x "
            f"{upload.n_cols} columns, about {upload.decoded_bytes // 1_000_000} MB once "
            f"decoded: more than {MAX_EXPANSION} times its size. Send the data less "
            "compressed (or as CSV), or in smaller parts.",
            details={"decoded_bytes": upload.decoded_bytes, "limit": allowed},
        )


def _decode_parquet(content: bytes, allowed_bytes: int) -> pd.DataFrame:
    """The table, its text columns read as dictionaries and their plain size checked
    against `allowed_bytes` before anything is materialised."""
    try:
        schema = pq.read_schema(io.BytesIO(content))
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
        table = pq.ParquetFile(io.BytesIO(content), read_dictionary=text).read()
    except (pa.ArrowException, OSError, ValueError) as error:
        raise ValidationFailed(f"The file is not readable Parquet: {error}") from None
    size = _plain_bytes(table)
    if size > allowed_bytes:
        raise PayloadTooLarge(
            f"The Parquet file ({len(content)} bytes) holds about {size // 1_000_000} MB of "
            f"data once decoded (long texts repeated over many rows): more than "
            f"{MAX_EXPANSION} times its size. Send it less compressed, or in smaller parts.",
            details={"decoded_bytes": size, "limit": allowed_bytes},
        )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _plain_bytes(table: pa.Table) -> int:
    """What the table takes once every text cell is a text of its own."""
    size = 0
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            for chunk in column.chunks:
                lengths = pc.binary_length(chunk.dictionary).take(chunk.indices)
                size += int(pc.sum(lengths).as_py() or 0) + _TEXT_CELL_OVERHEAD * len(chunk)
        else:
            size += column.nbytes
    return size


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
