"""The conditions every job transition is written with (`transitions`, `waits`).

Each transition is one compare-and-set UPDATE: it matches only while the job is in the state
it expects and, for a worker, still holds the lease token the worker was given.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, or_, update

from shared.models import Job, JobStatus

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
RETURNING = {"synchronize_session": False, "populate_existing": True}
LEASE_EXPIRED = Job.lease_expires_at < func.now()
# Jobs that wait without a slot: a fit the upstream took, a prediction waiting on chunks.
WAITS_WITHOUT_SLOT = or_(Job.upstream_fit_id.is_not(None), Job.chunks_total.is_not(None))
LOST_AND_UNSUBMITTED = (LEASE_EXPIRED, ~WAITS_WITHOUT_SLOT)


def running(job_id: uuid.UUID, lease_token: uuid.UUID | None) -> Any:
    """An UPDATE of a running job, under its lease when `lease_token` is given."""
    statement = update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING)
    if lease_token is not None:
        statement = statement.where(Job.lease_token == lease_token)
    return statement
