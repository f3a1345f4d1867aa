"""Usage: the TabPFN account's counters and this service's job counts."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from sqlalchemy import func, select

from api.auth import CurrentUserDep
from api.deps import ContextDep, SessionDep
from api.schemas.errors import AUTH, error_responses
from api.schemas.usage import TabPFNUsage, UsageOut
from shared.jobs.schemas import API_PREFIX
from shared.models import Job, JobStatus
from shared.tabpfn.errors import UpstreamError

logger = logging.getLogger(__name__)
router = APIRouter(prefix=API_PREFIX, tags=["usage"])


@router.get(
    "/usage",
    response_model=UsageOut,
    summary="Your TabPFN usage and job counts",
    responses=error_responses(*AUTH),
)
def get_usage(current: CurrentUserDep, context: ContextDep, session: SessionDep) -> UsageOut:
    """Your TabPFN usage (from the TabPFN service) and your jobs by status."""
    counts = dict.fromkeys((s.value for s in JobStatus), 0)
    for status, count in session.execute(
        select(Job.status, func.count())
        .where(Job.user_id == current.id, Job.parent_job_id.is_(None))
        .group_by(Job.status)
    ).all():
        counts[JobStatus(status).value] = int(count)
    try:
        upstream = context.upstream.usage(current.tabpfn_token())
        tabpfn = TabPFNUsage(
            current_usage=upstream.current_usage,
            usage_limit=upstream.usage_limit,
            reset_time=upstream.reset_time,
        )
    except UpstreamError as error:
        logger.warning("usage: TabPFN unavailable (%s)", error.job_error_code)
        tabpfn = None
    return UsageOut(tabpfn=tabpfn, jobs=counts)
