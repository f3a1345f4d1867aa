"""Jobs: poll, list, cancel, download the result, see webhook deliveries."""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.auth import CurrentUserDep
from api.deps import ContextDep, SessionDep, done_with_database
from api.openapi import POLL_HEADERS
from api.owned import OwnedJob
from api.pagination import paginate
from api.prefer import PreferWaitDep, hold, polled
from api.schemas.common import Page, PageNumber, PageSize
from api.schemas.errors import AUTH, INVALID, OWNED, ErrorCode, error_responses
from api.schemas.jobs import DeliveryOut
from api.services import jobs as job_service
from shared.datasets import parquet
from shared.errors import Conflict, ValidationFailed
from shared.jobs import results
from shared.jobs.result_schemas import result_of
from shared.jobs.schemas import API_PREFIX, JobOut, job_out
from shared.models import Job, JobKind, JobStatus, Payload, WebhookDelivery

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])


@router.get(
    "",
    response_model=Page[JobOut],
    summary="List your jobs",
    responses=error_responses(*INVALID, *AUTH),
)
def list_jobs(
    current: CurrentUserDep,
    session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: Annotated[JobKind | None, Query()] = None,
    page: PageNumber = 1,
    page_size: PageSize = 20,
) -> Page[JobOut]:
    """Your jobs, newest first; filter by `status` and `kind`."""
    conditions = [Job.user_id == current.id, Job.parent_job_id.is_(None)]
    if status_filter is not None:
        conditions.append(Job.status == status_filter)
    if kind is not None:
        conditions.append(Job.kind == kind)
    return paginate(
        session,
        Job,
        where=conditions,
        order_by=[Job.created_at.desc(), Job.id],
        page=page,
        page_size=page_size,
        render=job_out,
    )


@router.get(
    "/{job_id}",
    response_model=JobOut,
    summary="Get a job (optionally waiting for it to end)",
    responses={
        200: {"description": "The job.", "headers": POLL_HEADERS},
        **error_responses(*INVALID, *AUTH, *OWNED),
    },
)
async def get_job(
    job: OwnedJob,
    response: Response,
    session: SessionDep,
    context: ContextDep,
    wait: PreferWaitDep,
) -> JobOut:
    """One job, with its progress; `Retry-After` says when to poll again while it is not
    finished (estimated from its phase and how long your recent jobs took).

    With `Prefer: wait=N` the answer is held until the job ends or N seconds pass."""
    rendered = await run_in_threadpool(polled, session, context, response, job)
    return await hold(rendered, job, wait=wait, response=response, session=session, context=context)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    summary="Cancel a job",
    response_description="The job: canceled, or (running) canceled with its result discarded.",
    responses=error_responses(*INVALID, *AUTH, *OWNED, ErrorCode.JOB_FINISHED),
)
def cancel_job(job: OwnedJob, context: ContextDep, session: SessionDep) -> JobOut:
    """Cancel a queued job, or a running one (its result is then discarded); 409 if it ended."""
    return job_out(job_service.cancel(session, context, job))


def _prediction_rows(session: SessionDep, job: Job) -> list[Any]:
    assert job.result is not None
    if job.result.get("inline", True):
        return list(job.result.get("predictions") or [])
    payload = session.get(Payload, job.result_payload_id) if job.result_payload_id else None
    if payload is None:
        raise Conflict(f"The result of job {job.id} is no longer stored.", code="RESULT_EXPIRED")
    return results.to_rows(parquet.read_frame(payload.data), str(job.result["output_type"]))


@router.get(
    "/{job_id}/result",
    summary="Download a job's result",
    responses={
        200: {
            "description": "The result as a file: JSON (typed like `Job.result`, predictions "
            "always included) or CSV (one line per row).",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/JobResultFile"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **error_responses(
            *INVALID, *AUTH, *OWNED, ErrorCode.JOB_NOT_SUCCEEDED, ErrorCode.RESULT_EXPIRED
        ),
    },
)
def get_job_result(
    job: OwnedJob, session: SessionDep, format: Annotated[Literal["json", "csv"], Query()] = "json"
) -> Response:
    """The job's result as a file: predictions as JSON or CSV (a fit's summary as JSON)."""
    if job.status is not JobStatus.SUCCEEDED or job.result is None:
        raise Conflict(
            f"Job {job.id} is {job.status}; its result exists once it has succeeded.",
            code="JOB_NOT_SUCCEEDED",
        )
    filename = f"job-{job.id}"
    if job.kind is JobKind.FIT:
        if format == "csv":
            raise ValidationFailed("A fit job's result is JSON only; use format=json.")
        body = result_of(job.kind, job.result).model_dump(mode="json")
        return JSONResponse(body, headers=_attachment(f"{filename}.json"))
    output_type = str(job.result["output_type"])
    rows = _prediction_rows(session, job)
    done_with_database(session)  # rendering up to millions of rows needs no connection
    classes, quantiles = job.result.get("classes"), job.result.get("quantiles")
    if format == "json":
        # The result's other fields go through its typed model; the rows (up to millions,
        # written by the worker in their typed shape) are serialised as they are, by orjson.
        body = result_of(job.kind, job.result, predictions=None).model_dump(mode="json")
        body["predictions"] = rows
        return Response(
            orjson.dumps(body, default=_plain_number),
            media_type="application/json",
            headers=_attachment(f"{filename}.json"),
        )
    frame = results.to_frame(rows, output_type, classes, quantiles)
    buffer = io.StringIO()
    frame.to_csv(buffer, index_label="row")
    return Response(
        buffer.getvalue(), media_type="text/csv", headers=_attachment(f"{filename}.csv")
    )


def _plain_number(value: Any) -> Any:
    """NumPy scalars a stored table hands back, as the JSON numbers they are."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


@router.get(
    "/{job_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="List a job's webhook deliveries",
    responses=error_responses(*INVALID, *AUTH, *OWNED),
)
def list_job_deliveries(
    job: OwnedJob,
    session: SessionDep,
    page: PageNumber = 1,
    page_size: PageSize = 20,
) -> Page[DeliveryOut]:
    """Every webhook delivery attempt for this job, oldest first."""
    return paginate(
        session,
        WebhookDelivery,
        where=[WebhookDelivery.job_id == job.id],
        order_by=[WebhookDelivery.attempt, WebhookDelivery.created_at],
        page=page,
        page_size=page_size,
        render=lambda attempt: DeliveryOut.model_validate(attempt, from_attributes=True),
    )
