"""Payload rows: making one from encoded Parquet, and reading its bytes back lean."""

from __future__ import annotations

import contextlib
import ctypes
import uuid
from typing import Any

import pyarrow as pa
from sqlalchemy.orm import Session

from shared.datasets.parquet import FORMAT, Encoded
from shared.models import Payload, PayloadKind


def new_payload(user_id: uuid.UUID, kind: PayloadKind, encoded: Encoded) -> Payload:
    """A payload row for encoded Parquet (its id set now, so others can reference it)."""
    return Payload(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=kind,
        sha256=encoded.sha256,
        format=FORMAT,
        rows=encoded.rows,
        cols=encoded.cols,
        size_bytes=len(encoded.data),
        data=encoded.data,
    )


def read_payload(session: Session, payload_id: uuid.UUID) -> bytes | None:
    """A payload's bytes, fetched in PostgreSQL's binary format.

    The default text format sends bytea as hex, twice the size, and the driver holds that
    text and the decoded bytes at once: for a large fit that was the worker's peak memory.
    """
    driver: Any = session.connection().connection.driver_connection
    with driver.cursor(binary=True) as cursor:
        cursor.execute("SELECT data FROM payloads WHERE id = %s", [payload_id])
        row = cursor.fetchone()
    return None if row is None else bytes(row[0])


def release_freed_memory() -> None:
    """Give memory freed by a large fetch and decode back to the OS before the next step.

    The driver's buffers live on the C heap and Arrow's in its own allocator; freed, both
    stay in the process's resident size unless asked to let go, and a long-lived worker
    would carry them into the upstream call's own peak."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
