"""Hostile uploads: small files that declare huge tables, for the tests and the benchmark."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

_GROUP_ROWS = 1_000_000


def parquet_bomb(rows: int, cols: int = 1) -> bytes:
    """A Parquet file of `rows` x `cols` zeros: run-length encoding keeps a million rows in
    a few KiB (10 M rows x 3 columns is about 140 KiB). Built one row group at a time from
    one shared array, so making it costs a few MB."""
    zeros = pa.array([0.0] * min(rows, _GROUP_ROWS), pa.float64())
    schema = pa.schema([(f"c{i}", pa.float64()) for i in range(cols)])
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, schema, compression="zstd") as writer:
        left = rows
        while left:
            n = min(left, _GROUP_ROWS)
            writer.write_table(pa.table([zeros.slice(0, n)] * cols, schema=schema))
            left -= n
    return buffer.getvalue()


def csv_wide_header(cols: int) -> bytes:
    """A CSV file whose header names `cols` columns (the last one `target`), and one row."""
    names = [f"c{i}" for i in range(cols - 1)] + ["target"]
    return (",".join(names) + "\n" + ",".join(["0"] * (cols - 1) + ["1"]) + "\n").encode()


def csv_rows_then_garbage(rows: int) -> bytes:
    """`rows` good rows of `a,b,target`, then a line no CSV parser takes (too many fields):
    only a reader that stops after the allowed rows never meets it."""
    lines = ["a,b,target", *(f"{i},{i % 3},{i % 2}" for i in range(rows)), "1,2,3,4,5,6,7"]
    return ("\n".join(lines) + "\n").encode()
