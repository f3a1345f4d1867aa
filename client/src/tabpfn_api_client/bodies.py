"""Request bodies, serialised once so that every retry of a call sends the same bytes (the
service recognises a retried job-creating request by its Idempotency-Key and its body)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import httpx

FileInput = str | Path | bytes | IO[bytes]


def json_body(body: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Serialised once, so every retry sends the same bytes."""
    content = json.dumps(
        {k: v for k, v in body.items() if v is not None}, allow_nan=False, separators=(",", ":")
    ).encode()
    return content, {"Content-Type": "application/json"}


def multipart(
    fields: Mapping[str, Any], file: FileInput, filename: str | None
) -> tuple[bytes, dict[str, str]]:
    """A multipart body with `file` and text fields, built once (same bytes on retries)."""
    if isinstance(file, (str, Path)):
        path = Path(file)
        data, filename = path.read_bytes(), filename or path.name
    elif isinstance(file, bytes):
        data = file
    else:
        data = file.read()
    parquet = data[:4] == b"PAR1"
    name = filename or ("data.parquet" if parquet else "data.csv")
    mime = "application/vnd.apache.parquet" if parquet else "text/csv"
    form = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items() if v is not None
    }
    request = httpx.Request(
        "POST", "http://form.invalid/", data=form, files={"file": (name, data, mime)}
    )
    return request.read(), {"Content-Type": request.headers["Content-Type"]}
