"""The announcement that a job ended: a Postgres NOTIFY sent in the final transition's own
transaction (`shared.jobs.transitions.finish`).

Postgres delivers a NOTIFY only when its transaction commits, so a listener never hears of
an end that was rolled back, and hears of each committed one right after the commit. The
API's `Prefer: wait` waiters listen on this channel (`api.job_waiters`); they re-check the
table now and then as well, because a listener that was reconnecting misses what was sent
meanwhile. The payload is the job id alone (NOTIFY payloads are visible to every listener of
the database, so nothing else goes in it).

Only jobs a user can see are announced: a large prediction's chunks end silently, their
parent announces the prediction's end.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

JOB_ENDED_CHANNEL = "tabpfn_job_ended"


def announce_end(session: Session, job_id: uuid.UUID) -> None:
    """Queue the notice in the caller's transaction; Postgres sends it at commit."""
    session.execute(select(func.pg_notify(JOB_ENDED_CHANNEL, str(job_id))))
