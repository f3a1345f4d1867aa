"""OpenAPI pieces routes declare: bodies we parse ourselves, and the job answers' headers.

Fit, predict and refit read JSON or multipart directly, and the auth routes parse their
small JSON after their checks, so their routes declare `request_body(...)` /
`json_body(...)` in `openapi_extra`; `api.openapi_document.install()`
adds the referenced Pydantic schemas to the document's components.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.jobs.schemas import JobOut

REF = "#/components/schemas/{model}"


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


RETRY_AFTER = _header(
    "While the job has not ended: seconds until polling it again is worth it.", "integer"
)
PREFERENCE_APPLIED = _header("`wait=N` when `Prefer: wait` was honoured (N as applied).")
SUBMISSION_HEADERS = {
    "Location": _header("The job's URL, to poll."),
    "Retry-After": RETRY_AFTER,
    "Idempotent-Replayed": _header(
        "`true` when an earlier request with this Idempotency-Key made the job."
    ),
    "Preference-Applied": PREFERENCE_APPLIED,
}
POLL_HEADERS = {"Retry-After": RETRY_AFTER, "Preference-Applied": PREFERENCE_APPLIED}
IDEMPOTENCY_KEY_DESCRIPTION = (
    "Makes retries safe: the same key with the same body within 24 h answers the same job "
    "(`Idempotent-Replayed: true`); with another body, 422 IDEMPOTENCY_KEY_REUSED. 1 to 255 "
    "characters."
)


def job_answers(accepted: str) -> dict[int | str, dict[str, Any]]:
    """The success answers of a job-creating POST: 202 (`accepted`), or 200 when the job
    ended within `Prefer: wait`."""
    return {
        202: {"description": accepted, "headers": SUBMISSION_HEADERS},
        200: {
            "model": JobOut,
            "description": "The job, which ended within the `Prefer: wait` time.",
            "headers": SUBMISSION_HEADERS,
        },
    }


def request_body(json_model: type[BaseModel], form_fields: dict[str, str]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body and its multipart alternative."""
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "A CSV or Parquet file."}
    }
    properties.update(
        {name: {"type": "string", "description": text} for name, text in form_fields.items()}
    )
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=json_model.__name__)}},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": properties, "required": ["file"]}
                },
            },
        }
    }


def json_body(json_model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON-only body that the route parses itself (after the
    checks that guard it), with the model added by `install()`; optional when not `required`."""
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=json_model.__name__)}}
            },
        }
    }
