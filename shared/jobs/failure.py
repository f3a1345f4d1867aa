"""A job's error: one code from `JobErrorCode` and a sentence that says what to do."""

from __future__ import annotations

from dataclasses import dataclass

from shared.models import JobErrorCode


@dataclass(frozen=True)
class Failure:
    """Why a job failed (or why its last attempt did, while it waits to run again)."""

    code: JobErrorCode
    message: str


CANCELED_BY_USER = Failure(JobErrorCode.CANCELED, "Canceled by the user.")
CANCELED_MODEL_DELETED = Failure(JobErrorCode.CANCELED, "The model was deleted.")
MODEL_DELETED = Failure(JobErrorCode.TABPFN_MODEL_NOT_FOUND, "The model was deleted.")
CHUNK_SIBLING_ENDED = Failure(
    JobErrorCode.CANCELED, "The prediction this chunk belongs to ended without it."
)
