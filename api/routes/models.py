"""Models: submit a fit, list and inspect models, delete one, submit a prediction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.auth import CurrentUser, CurrentUserDep
from api.body import OptionalJsonDep, RawBody, RawBodyDep
from api.context import AppContext
from api.deps import ContextDep, SessionDep
from api.openapi import IDEMPOTENCY_KEY_DESCRIPTION, job_answers, json_body, request_body
from api.owned import OwnedModel
from api.pagination import paginate
from api.prefer import PreferWaitDep, hold
from api.schemas.common import Page, PageNumber, PageSize
from api.schemas.errors import AUTH, INVALID, OWNED, SUBMISSION, ErrorCode, error_responses
from api.schemas.jobs import FitBody, PredictBody, RefitBody
from api.schemas.models import AvailableModels, describe_available
from api.services import jobs as job_service
from api.services import polling
from api.services.submissions import read_fit, read_predict, read_refit
from shared.jobs.dispatch import publish_delivery
from shared.jobs.schemas import API_PREFIX, JobOut, ModelOut, job_out, model_out
from shared.models import Job, Model, ModelStatus
from shared.tabpfn.types import Limits

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["models"])

FIT_FORM = {
    "task": "classification or regression",
    "target_column": "The file's column to predict.",
    "config": "JSON object of TabPFN options.",
    "name": "A name for the model.",
    "callback_url": "URL for the job's webhook.",
}
PREDICT_FORM = {
    "output_type": "preds/probas (classification); mean/median/mode/quantiles (regression).",
    "quantiles": "JSON array of quantiles, with output_type quantiles.",
    "config": "JSON object of TabPFN options.",
    "callback_url": "URL for the job's webhook.",
}


def accepted(
    response: Response,
    job: Job,
    session: Session,
    context: AppContext,
    *,
    replayed: bool = False,
) -> tuple[Job, JobOut]:
    """202 headers: where to poll, how soon, and whether an earlier request made the job."""
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    if not job.status.is_final:
        response.headers["Retry-After"] = str(
            polling.retry_after_s(
                session,
                job,
                queue_position=1,
                running_cap=context.settings.JOB_MAX_RUNNING_PER_USER,
            )
        )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return job, job_out(job)


def _limits_for(context: AppContext, current: CurrentUser, model_path: str | None) -> Limits | None:
    return context.upstream.limits(current.tabpfn_token(), current.token_fingerprint, model_path)


@router.get(
    "/available",
    response_model=AvailableModels,
    summary="List the TabPFN models and options",
)
def list_available_models() -> AvailableModels:
    """The TabPFN model names per task (for `config.model_path`), each described, and the
    options tabpfn-client offers (output types, Thinking efforts, fit modes). No
    authentication needed."""
    return describe_available()


@router.post(
    "/fit",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    summary="Fit a model (queue a fit job)",
    responses={
        **job_answers("The fit job, queued."),
        **error_responses(*SUBMISSION, ErrorCode.MODEL_DELETED),
    },
    openapi_extra=request_body(FitBody, FIT_FORM),
)
async def fit_model(
    current: CurrentUserDep,
    raw: RawBodyDep,
    context: ContextDep,
    session: SessionDep,
    response: Response,
    wait: PreferWaitDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description=IDEMPOTENCY_KEY_DESCRIPTION)
    ] = None,
) -> JobOut:
    """Validate the training data and queue a fit job (202). Poll the job, or get a webhook."""
    job, rendered = await run_in_threadpool(
        _fit, current, raw, context, session, response, idempotency_key
    )
    raw.release()  # the job is stored: a wait below holds neither bytes nor slot
    return await hold(rendered, job, wait=wait, response=response, session=session, context=context)


def _fit(
    current: CurrentUser,
    raw: RawBody,
    context: AppContext,
    session: Session,
    response: Response,
    idempotency_key: str | None,
) -> tuple[Job, JobOut]:
    idem, existing = job_service.begin(
        session, context, current.id, raw, idempotency_key=idempotency_key, scope="fit"
    )
    if existing is not None:
        return accepted(response, existing, session, context, replayed=True)
    submission = read_fit(
        raw,
        lambda path: _limits_for(context, current, path),
        allow_private_urls=context.settings.WEBHOOK_ALLOW_PRIVATE_URLS,
    )
    created = job_service.create_fit(session, context, current, submission, idem)
    if not created.replayed:
        job_service.publish(context, created.job)
    return accepted(response, created.job, session, context, replayed=created.replayed)


@router.post(
    "/{model_id}/predict",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    summary="Predict with a model (queue a predict job)",
    responses={
        **job_answers("The predict job, queued."),
        **error_responses(
            *SUBMISSION,
            ErrorCode.FEATURE_COUNT_MISMATCH,
            *OWNED,
            ErrorCode.MODEL_NOT_READY,
            ErrorCode.MODEL_DELETED,
        ),
    },
    openapi_extra=request_body(PredictBody, PREDICT_FORM),
)
async def predict(
    current: CurrentUserDep,
    model: OwnedModel,
    raw: RawBodyDep,
    context: ContextDep,
    session: SessionDep,
    response: Response,
    wait: PreferWaitDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description=IDEMPOTENCY_KEY_DESCRIPTION)
    ] = None,
) -> JobOut:
    """Validate the rows against the model and queue a predict job (202)."""
    job, rendered = await run_in_threadpool(
        _predict, current, model, raw, context, session, response, idempotency_key
    )
    raw.release()  # the job is stored: a wait below holds neither bytes nor slot
    return await hold(rendered, job, wait=wait, response=response, session=session, context=context)


def _predict(
    current: CurrentUser,
    model: Model,
    raw: RawBody,
    context: AppContext,
    session: Session,
    response: Response,
    idempotency_key: str | None,
) -> tuple[Job, JobOut]:
    idem, existing = job_service.begin(
        session,
        context,
        current.id,
        raw,
        idempotency_key=idempotency_key,
        scope=f"predict:{model.id}",
    )
    if existing is not None:
        return accepted(response, existing, session, context, replayed=True)
    job_service.require_ready(model)
    submission = read_predict(
        raw,
        model,
        _limits_for(context, current, model.config.get("model_path")),
        allow_private_urls=context.settings.WEBHOOK_ALLOW_PRIVATE_URLS,
    )
    created = job_service.create_predict(
        session, context, current=current, model=model, sub=submission, idem=idem
    )
    if not created.replayed:
        job_service.publish(context, created.job)
    return accepted(response, created.job, session, context, replayed=created.replayed)


@router.post(
    "/{model_id}/refit",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    summary="Refit a model from its stored data (queue a fit job)",
    responses={
        **job_answers("The refit job, queued."),
        **error_responses(
            *INVALID,
            ErrorCode.INVALID_CALLBACK_URL,
            *AUTH,
            *OWNED,
            ErrorCode.PAYLOAD_TOO_LARGE,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            ErrorCode.REQUEST_TIMEOUT,
            ErrorCode.FIT_IN_PROGRESS,
            ErrorCode.DATASET_EXPIRED,
            ErrorCode.MODEL_DELETED,
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            ErrorCode.RATE_LIMITED,
            ErrorCode.TOO_MANY_JOBS,
        ),
    },
    openapi_extra=json_body(RefitBody, required=False),
)
async def refit_model(
    current: CurrentUserDep,
    model: OwnedModel,
    raw: OptionalJsonDep,
    context: ContextDep,
    session: SessionDep,
    response: Response,
    wait: PreferWaitDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description=IDEMPOTENCY_KEY_DESCRIPTION)
    ] = None,
) -> JobOut:
    """Fit the model again from its stored training data, optionally with new options (202).

    No upload: the data sent with the first fit is stored. The model keeps its status (and
    a ready one keeps serving predictions) until the refit succeeds; a `stale` model, whose
    upstream fit is gone, becomes `ready` again."""
    job, rendered = await run_in_threadpool(
        _refit, current, model, raw, context, session, response, idempotency_key
    )
    raw.release()  # the job is stored: a wait below holds neither bytes nor slot
    return await hold(rendered, job, wait=wait, response=response, session=session, context=context)


def _refit(
    current: CurrentUser,
    model: Model,
    raw: RawBody,
    context: AppContext,
    session: Session,
    response: Response,
    idempotency_key: str | None,
) -> tuple[Job, JobOut]:
    idem, existing = job_service.begin(
        session,
        context,
        current.id,
        raw,
        idempotency_key=idempotency_key,
        scope=f"refit:{model.id}",
    )
    if existing is not None:
        return accepted(response, existing, session, context, replayed=True)
    job_service.require_no_fit_running(session, model)
    submission = read_refit(
        raw, model, allow_private_urls=context.settings.WEBHOOK_ALLOW_PRIVATE_URLS
    )
    created = job_service.create_refit(
        session, context, current=current, model=model, sub=submission, idem=idem
    )
    if not created.replayed:
        job_service.publish(context, created.job)
    return accepted(response, created.job, session, context, replayed=created.replayed)


@router.get(
    "",
    response_model=Page[ModelOut],
    summary="List your models",
    responses=error_responses(*INVALID, *AUTH),
)
def list_models(
    current: CurrentUserDep,
    session: SessionDep,
    status_filter: Annotated[ModelStatus | None, Query(alias="status")] = None,
    page: PageNumber = 1,
    page_size: PageSize = 20,
) -> Page[ModelOut]:
    """Your models, newest first; filter by `status` (pending, ready, failed, stale)."""
    conditions = [Model.user_id == current.id]
    if status_filter is not None:
        conditions.append(Model.status == status_filter)
    return paginate(
        session,
        Model,
        where=conditions,
        order_by=[Model.created_at.desc(), Model.id],
        page=page,
        page_size=page_size,
        render=model_out,
    )


@router.get(
    "/{model_id}",
    response_model=ModelOut,
    summary="Get a model",
    responses=error_responses(*INVALID, *AUTH, *OWNED),
)
def get_model(model: OwnedModel) -> ModelOut:
    """One model: its task, status (pending until its fit succeeds, then ready; stale when
    the TabPFN service lost its fit), shape, classes and options."""
    return model_out(model)


@router.delete(
    "/{model_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a model",
    response_description="Deleted; its unfinished jobs are canceled.",
    responses=error_responses(*INVALID, *AUTH, *OWNED),
)
def delete_model(model: OwnedModel, context: ContextDep, session: SessionDep) -> Response:
    """Delete a model; its queued and running jobs are canceled."""
    deliveries = job_service.cancel_model_jobs(session, context, model.id)
    session.delete(model)
    session.commit()
    for delivery_id in deliveries:
        publish_delivery(context.publisher, context.db, delivery_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
