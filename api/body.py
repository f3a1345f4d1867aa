"""Reading a submission body: JSON, or multipart with a CSV/Parquet `file` and form fields.

The body is read by an async dependency (network I/O stays on the event loop); parsing and
validation then run in the sync route's thread, off the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
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
                    if "\x00" in value or "\x00" in key:
                        raise ValidationFailed(f"Form field {key!r} holds the NUL character.")
                    raw.fields[key] = value
            return raw
        finally:
            await form.close()
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not supported; send application/json or "
        "multipart/form-data (a CSV or Parquet `file` plus form fields)."
    )


RawBodyDep = Annotated[RawBody, Depends(read_body)]


_NON_JSON_CONSTANTS = (b"NaN", b"Infinity", b"-Infinity")


def loads(data: bytes | str, what: str = "The body") -> Any:
    """Strict JSON (orjson: several times faster than the standard library on large bodies).

    NaN and Infinity are refused, as are numbers too large to be finite and strings holding
    the NUL character (PostgreSQL cannot store it); the message says where."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raw = data.encode() if isinstance(data, str) else data
        where = f"line {error.lineno}, column {error.colno}"
        if raw[error.pos : error.pos + 9].startswith(_NON_JSON_CONSTANTS):
            problem = "NaN and Infinity are not JSON; send null for a missing value"
        elif "infinity" in error.msg:
            problem = "a number is too large to be finite; send a finite number or null"
        else:
            problem = error.msg
        raise ValidationFailed(f"{what} is not valid JSON: {problem} ({where}).") from None
    raw = data.encode() if isinstance(data, str) else data
    if b"\\u0000" in raw and _holds_nul(parsed):
        raise ValidationFailed(
            f"{what} holds a string with the NUL character (\\u0000); remove it."
        )
    return parsed


def _holds_nul(value: Any) -> bool:
    """Whether any string in a parsed document (keys included) contains NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    return False


def parse_json_object(data: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying where it stops being valid JSON."""
    if not data.strip():
        raise ValidationFailed("The request body is empty; send a JSON object.")
    parsed = loads(data)
    if not isinstance(parsed, dict):
        raise ValidationFailed("The body must be a JSON object.")
    return parsed


def form_json(fields: dict[str, str], name: str) -> Any:
    """A form field that carries JSON (e.g. `config`, `feature_names`); absent → None."""
    if name not in fields or fields[name].strip() == "":
        return None
    return loads(fields[name], what=f"Form field {name!r}")
