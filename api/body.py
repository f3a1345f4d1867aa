"""Reading a submission body: JSON, or multipart with a CSV/Parquet `file` and form fields.

The body is read by an async dependency (network I/O stays on the event loop); parsing and
validation then run in the sync route's thread, off the loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from shared.errors import UnsupportedMediaType, ValidationFailed

MAX_FORM_FIELDS = 30


@dataclass
class RawBody:
    """The bytes of a JSON body, or the fields and file of a multipart form."""

    json_bytes: bytes | None = None
    fields: dict[str, str] = field(default_factory=dict)
    file_bytes: bytes | None = None
    filename: str | None = None

    @property
    def is_multipart(self) -> bool:
        return self.json_bytes is None


async def read_body(request: Request) -> RawBody:
    """The body as sent; 415 for any other content type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("", "application/json") or content_type.endswith("+json"):
        return RawBody(json_bytes=await request.body())
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
        try:
            raw = RawBody()
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key != "file":
                        raise ValidationFailed(f"Unexpected file field {key!r}; send it as `file`.")
                    raw.file_bytes = await value.read()
                    raw.filename = value.filename
                else:
                    raw.fields[key] = value
            return raw
        finally:
            await form.close()
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not supported; send application/json or "
        "multipart/form-data (a CSV or Parquet `file` plus form fields)."
    )


RawBodyDep = Annotated[RawBody, Depends(read_body)]


def _reject_constant(name: str) -> Any:
    raise ValidationFailed(
        f"The body contains {name}, which is not valid JSON; send null for a missing value."
    )


def parse_json_object(data: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying where it stops being valid JSON."""
    if not data.strip():
        raise ValidationFailed("The request body is empty; send a JSON object.")
    try:
        parsed = json.loads(data, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ValidationFailed(
            f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None
    except (UnicodeDecodeError, RecursionError):
        raise ValidationFailed("The body is not valid UTF-8 JSON.") from None
    if not isinstance(parsed, dict):
        raise ValidationFailed("The body must be a JSON object.")
    return parsed


def form_json(fields: dict[str, str], name: str) -> Any:
    """A form field that carries JSON (e.g. `config`, `feature_names`); absent → None."""
    if name not in fields or fields[name].strip() == "":
        return None
    try:
        return json.loads(fields[name], parse_constant=_reject_constant)
    except json.JSONDecodeError:
        raise ValidationFailed(f"Form field {name!r} must hold JSON.") from None
