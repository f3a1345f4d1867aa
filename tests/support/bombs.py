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


def parquet_text_bomb(rows: int, text_chars: int) -> bytes:
    """One long text repeated over `rows` rows, dictionary-encoded: a few KiB on disk, the
    text once; `rows` x `text_chars` bytes once every cell is materialised. Written from a
    dictionary array, so making it costs one text's memory."""
    indices = pa.array([0] * rows, pa.int32())
    texts = pa.DictionaryArray.from_arrays(indices, pa.array(["x" * text_chars]))
    target = pa.array([0.0, 1.0] * (rows // 2) + [0.0] * (rows % 2))
    buffer = io.BytesIO()
    pq.write_table(pa.table({"note": texts, "target": target}), buffer, compression="zstd")
    return buffer.getvalue()


def parquet_list_column() -> bytes:
    """A table whose feature column holds lists (a list can hold millions of values)."""
    table = pa.table({"values": [[1, 2, 3]] * 10, "target": [0.0, 1.0] * 5})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def csv_quoted_header(cols: int) -> bytes:
    """A CSV header that starts with a quoted name holding a newline, then `cols` names: a
    scan that stops at the first newline counts one column."""
    names = ['"x\n"', *(f"c{i}" for i in range(cols - 1)), "target"]
    row = ["0"] * cols + ["1"]
    return (",".join(names) + "\n" + ",".join(row) + "\n").encode()


def nested_json(depth: int, leaf: str = '"\\u0000"') -> str:
    """A JSON value nested `depth` arrays deep around `leaf`."""
    return "[" * depth + leaf + "]" * depth
