"""Fits: submitted to the upstream, then checked on, never held open (DESIGN §6.9).

A fit job passes through worker slots twice or more, briefly each time:

1. **submit**: reserve memory, load and decode the training data, upload it and submit the
   fit (tabpfn-client's async fit), then commit the upstream fit id on the job row at once,
   giving the slot up in the same statement. From this commit on, no attempt fits this job
   again: a worker that dies later is replaced by one that waits on the same fit. A crash
   between the upload and the commit costs a second upload, and (in the instant between
   the upstream's answer and our commit) a second fit.
2. **check**: one status request. Still pending: the slot is given back and the job waits,
   holding no slot, until the next check is due. Done: the job succeeds or fails.

A fit whose data, task and options equal those of an earlier ready model of the user,
fitted under the token the user holds now, is not fitted at all: it takes over that
model's upstream fit (`shared.jobs.reuse`) and succeeds at once, marked `reused_from`.

The first check comes `_FIRST_CHECK_S` after the submit (tabpfn-client's floor for the
service's hint: asking at once would nearly always hear "pending"). Later checks follow
the upstream's `retry_in_secs` hint, never sooner; a fit that has been
pending for long is checked at most every tenth of the time it has waited (up to every
`_MAX_CHECK_INTERVAL_S`), so a 40-minute Thinking fit costs about a hundred checks, not
thousands. A fit still pending JOB_TIME_LIMIT_S after its submission fails with TIMEOUT.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from shared import metrics
from shared.jobs import reuse, transitions, waits
from shared.jobs.failure import Failure
from shared.models import Job, JobErrorCode, JobPhase, Model, Task, User
from shared.tabpfn.config import TabPFNConfig
from shared.tabpfn.errors import FittedModelNotFound, RateLimited, UpstreamError
from shared.tabpfn.types import FitState
from worker import inputs, outcomes
from worker.leases import HeldLease
from worker.progress import PhaseReporter
from worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)

_FIRST_CHECK_S = 0.3
_MAX_CHECK_INTERVAL_S = 30.0
_WAITED_FRACTION = 0.1


def next_check_in(hint_s: float, waited_s: float) -> float:
    """Seconds until the next status check: the upstream's hint, or longer for old fits."""
    return max(hint_s, min(waited_s * _WAITED_FRACTION, _MAX_CHECK_INTERVAL_S))


def options_of(job: Job, model: Model) -> dict[str, Any]:
    """The TabPFN options this fit runs with: a refit's own, else the model's."""
    config = job.params.get("config")
    return dict(config) if config is not None else dict(model.config)


def _summary(model: Model, train_set_uid: str) -> dict[str, Any]:
    return {
        "train_set_uid": train_set_uid,
        "n_samples": model.n_samples,
        "n_features": model.n_features,
        "classes": model.classes,
    }


def submit(runtime: WorkerRuntime, job: Job, lease: HeldLease) -> None:
    """Reuse an identical earlier fit, or upload and submit this one, then record its
    upstream id and give the slot up."""
    if _reused(runtime, job, lease):
        return
    cost = inputs.cost_of(runtime, job)
    with runtime.budget.reserve(cost):
        loaded = inputs.load(runtime, job, cost)
        config = TabPFNConfig.model_validate(options_of(job, loaded.model))
        if not lease.start_call():  # canceled, taken over or handed back: not ours to run
            logger.info("lease lost before the upstream call; not calling it")
            return
        # `fitting` is written with the submission's record, right after the call.
        reporter = PhaseReporter(
            runtime, job, lease, current=JobPhase.UPLOADING, skip=frozenset({JobPhase.FITTING})
        )
        started = time.monotonic()
        submitted = runtime.upstream.submit_fit(
            loaded.token,
            loaded.features,
            loaded.target,
            Task(loaded.model.task),
            config,
            on_phase=reporter,
        )
        metrics.upstream_call("submit_fit", time.monotonic() - started, None)
        fingerprint = loaded.account.fingerprint
        del loaded
    recorded = _record_submitted(
        runtime,
        job,
        lease,
        fit_id=submitted.fit_id,
        trace_id=submitted.trace_id,
        token_fingerprint=fingerprint,
    )
    if not recorded:
        logger.info("job canceled or taken over after its fit was submitted; not waiting on it")
        return
    logger.info("fit submitted upstream as %s", submitted.fit_id)


def _reused(runtime: WorkerRuntime, job: Job, lease: HeldLease) -> bool:
    """Succeed at once on an identical earlier fit of the user, when there is one."""
    key = job.params.get("fit_key")
    if not key or job.params.get("reuse") is False:
        return False
    with runtime.db.session_scope() as session:
        fingerprint = session.scalar(select(User.token_fingerprint).where(User.id == job.user_id))
        model = session.get(Model, job.model_id) if job.model_id else None
        if fingerprint is None or model is None:
            raise inputs.ModelGone
        source = reuse.reusable_model(
            session,
            user_id=job.user_id,
            key=key,
            token_fingerprint=fingerprint,
            exclude_model_id=job.model_id,
        )
        if source is None or source.train_set_uid is None:
            return False
        fit_id, source_id = source.train_set_uid, source.id
        result = {**_summary(model, fit_id), "reused_from": str(source_id)}
    logger.info("fit reuses the upstream fit of model %s; no upstream call", source_id)
    outcomes.succeed(
        runtime,
        job,
        lease,
        result=result,
        trace_id=None,
        upstream=None,
        fit=transitions.FitFacts(
            train_set_uid=fit_id,
            fit_key=key,
            token_fingerprint=fingerprint,
            config=job.params.get("config"),
        ),
    )
    return True


def _record_submitted(
    runtime: WorkerRuntime,
    job: Job,
    lease: HeldLease,
    *,
    fit_id: str,
    trace_id: str,
    token_fingerprint: str,
) -> bool:
    """Commit the upstream fit id, retrying through a database blip while the lease lasts:
    losing the id would make the next attempt fit again."""
    deadline = time.monotonic() + runtime.settings.JOB_LEASE_S
    while True:
        try:
            with runtime.db.session_scope() as session:
                return waits.record_submitted(
                    session,
                    job.id,
                    lease_token=lease.token,
                    upstream_fit_id=fit_id,
                    trace_id=trace_id,
                    check_in_s=_FIRST_CHECK_S,
                    token_fingerprint=token_fingerprint,
                )
        except (OperationalError, InterfaceError) as error:
            if lease.lost.is_set() or time.monotonic() > deadline:
                raise
            logger.warning(
                "could not record fit %s yet (%s); retrying", fit_id, type(error).__name__
            )
            time.sleep(1.0)


def check(runtime: WorkerRuntime, job: Job, lease: HeldLease) -> None:
    """A claimed status check of a fit that is already upstream."""
    account, model = inputs.user_and_model(runtime, job)
    assert job.upstream_fit_id is not None
    fit_id = job.upstream_fit_id
    started = time.monotonic()
    try:
        report = runtime.upstream.fit_status(account.token, fit_id)
    except UpstreamError as error:
        metrics.upstream_call("fit_status", time.monotonic() - started, error.job_error_code)
        _check_failed(runtime, job, lease, error)
        return
    metrics.upstream_call("fit_status", time.monotonic() - started, None)
    if report.state is FitState.COMPLETED:
        outcomes.succeed(
            runtime,
            job,
            lease,
            result=_summary(model, fit_id),
            trace_id=job.upstream_trace_id,
            upstream=outcomes.UpstreamReport(timings=report.timings),
            fit=transitions.FitFacts(
                train_set_uid=fit_id,
                fit_key=job.params.get("fit_key"),
                token_fingerprint=job.params.get("token_fingerprint"),
                config=job.params.get("config"),
            ),
        )
    elif report.state is FitState.FAILED:
        message = f"The TabPFN service could not fit: {report.error or 'no reason given'}"
        failure = Failure(JobErrorCode.TABPFN_REJECTED_INPUT, message)
        outcomes.fail(runtime, job, lease, failure, trace_id=job.upstream_trace_id)
    else:
        _wait(runtime, job, lease, report.retry_in_s)


def _waited_s(job: Job) -> float:
    submitted = job.upstream_submitted_at or datetime.now(UTC)
    return max((datetime.now(UTC) - submitted).total_seconds(), 0.0)


def _wait(runtime: WorkerRuntime, job: Job, lease: HeldLease, hint_s: float) -> None:
    """Still pending: give the slot back until the next check, or time out."""
    waited = _waited_s(job)
    limit = runtime.settings.JOB_TIME_LIMIT_S
    if waited >= limit:
        message = f"The TabPFN service did not finish the fit within {limit} s."
        failure = Failure(JobErrorCode.TIMEOUT, message)
        outcomes.fail(runtime, job, lease, failure, trace_id=job.upstream_trace_id)
        return
    delay = min(next_check_in(hint_s, waited), max(limit - waited, 0.1))
    with runtime.db.session_scope() as session:
        waiting = waits.await_upstream(session, job.id, lease_token=lease.token, check_in_s=delay)
    if not waiting:
        outcomes.discarded(runtime, job)


def _check_failed(runtime: WorkerRuntime, job: Job, lease: HeldLease, error: UpstreamError) -> None:
    """A status request failed. The fit may well be fine: a transient error (5xx, network, a
    rate limit) means "ask again later"; a fit the upstream lost is fitted again; anything
    permanent (the token refused, a request the service rejects) fails the job."""
    if isinstance(error, FittedModelNotFound):
        if job.attempts < job.max_attempts:
            logger.warning("the upstream lost fit %s; fitting again", job.upstream_fit_id)
            failure = Failure(JobErrorCode.UPSTREAM_UNAVAILABLE, error.message + " Fitting again.")
            outcomes.requeue(runtime, job, lease, failure, delay_s=0, forget_upstream_fit=True)
        else:
            failure = Failure(JobErrorCode.UPSTREAM_UNAVAILABLE, error.message)
            outcomes.fail(runtime, job, lease, failure)
        return
    if not error.transient:
        failure = Failure(error.job_error_code, error.message)
        outcomes.fail(runtime, job, lease, failure, trace_id=job.upstream_trace_id)
        return
    logger.warning("fit status unavailable (%s); asking again later", type(error).__name__)
    settings = runtime.settings
    delay = outcomes.backoff_delay(2, settings.JOB_RETRY_BASE_S, settings.JOB_RETRY_MAX_S)
    if isinstance(error, RateLimited):
        delay = max(delay, error.retry_after_s)
    _wait(runtime, job, lease, delay)
