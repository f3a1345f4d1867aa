"""Fitting a file to a model before `tabpfn-api predict` uploads it.

The service wants a prediction file to hold exactly the model's columns, in the fit's
order. A file people have at hand often holds more (the target column of the training
file, an id) or the same columns in another order. When the model knows its column names
and the file holds all of them, the CLI sends just those, in order: CSV with the standard
library, Parquet when pyarrow is installed. Anything else is sent as it is, and the
service's answer says what is wrong.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Prepared:
    content: bytes
    dropped: list[str] = field(default_factory=list)
    reordered: bool = False


def select_columns(content: bytes, names: list[str] | None) -> Prepared:
    """`content` holding only the columns `names`, in that order, when it can."""
    if not names:
        return Prepared(content)
    if content[:4] == PARQUET_MAGIC:
        return _select_parquet(content, names)
    return _select_csv(content, names)


def _plan(header: list[str], names: list[str]) -> tuple[list[int], list[str]] | None:
    """The file's column positions for `names`, and the columns left out; None if a
    name is missing or repeated (the service will explain)."""
    if len(set(header)) != len(header) or not set(names) <= set(header):
        return None
    return [header.index(n) for n in names], [h for h in header if h not in set(names)]


def _select_csv(content: bytes, names: list[str]) -> Prepared:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Prepared(content)
    rows = csv.reader(io.StringIO(text), skipinitialspace=True)
    header = next(rows, None)
    if header is None:
        return Prepared(content)
    plan = _plan([h.strip() for h in header], names)
    if plan is None:
        return Prepared(content)
    positions, dropped = plan
    if positions == list(range(len(header))):
        return Prepared(content)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        if row:
            writer.writerow([row[i] if i < len(row) else "" for i in positions])
    return Prepared(out.getvalue().encode(), dropped, reordered=not dropped)


def _select_parquet(content: bytes, names: list[str]) -> Prepared:
    try:
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        return Prepared(content)
    try:
        table = pq.read_table(pa.BufferReader(content))
    except (pa.ArrowException, OSError):
        return Prepared(content)
    plan = _plan([str(c) for c in table.column_names], names)
    if plan is None:
        return Prepared(content)
    positions, dropped = plan
    if positions == list(range(table.num_columns)):
        return Prepared(content)
    buffer = io.BytesIO()
    pq.write_table(table.select(positions), buffer)
    return Prepared(buffer.getvalue(), dropped, reordered=not dropped)
