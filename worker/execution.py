"""Running one claimed piece of work in a worker slot, and what happens when it goes wrong.

A claim is a fresh fit (submit it), a status check of a submitted fit, a prediction, or
the merge of a prediction's chunks. A job's first start sends `job.started` to callers
who asked for it.
Every outcome is one compare-and-set write under the claim's lease (`worker.outcomes`):

- upstream errors are retried, parked or failed by their type;
- a model deleted meanwhile fails the job with TABPFN_MODEL_NOT_FOUND;
- a database that went away records nothing: the lease expires and the sweeper recovers
  the job (a submitted fit resumes waiting, anything else runs again);
- anything else is a bug: the job fails with INTERNAL_ERROR and the traceback is logged
  (never the payload or a token).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from shared import metrics
from shared.jobs import events
from shared.jobs.claims import Claim
from shared.jobs.dispatch import publish_delivery
from shared.jobs.failure import MODEL_DELETED, Failure
from shared.logs import log_context
from shared.models import Job, JobErrorCode, JobKind
from shared.tabpfn.errors import UpstreamError, UpstreamUnavailable
from worker import fits, merges, outcomes, predicts
from worker.inputs import ModelGone
from worker.leases import HeldLease
from worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


def run(runtime: WorkerRuntime, claim: Claim, lease: HeldLease) -> None:
    """Do the claimed work and record its outcome; never raises.

    When even the outcome cannot be recorded (the database went away meanwhile), nothing is:
    the lease expires and the sweeper recovers the job."""
    job = claim.job
    with log_context(job_id=job.id, attempt=job.attempts, user_id=job.user_id):
        try:
            _run(runtime, claim, lease)
        except (OperationalError, InterfaceError) as error:
            logger.warning(
                "database unavailable (%s); the job will be recovered", type(error).__name__
            )
        except Exception:
            logger.exception("could not record the job's outcome; lease recovery will")


def _run(runtime: WorkerRuntime, claim: Claim, lease: HeldLease) -> None:
    job = claim.job
    started = time.monotonic()
    operation = _operation(claim)
    if operation in ("submit_fit", "predict"):
        logger.info("job started: %s, attempt %d of %d", job.kind, job.attempts, job.max_attempts)
        metrics.job_started(job)
        _announce_start(runtime, job)
        runtime.events.started(job)
    try:
        if claim.is_status_check:
            fits.check(runtime, job, lease)
        elif claim.is_merge:
            merges.merge(runtime, job, lease)
        elif job.kind is JobKind.FIT:
            fits.submit(runtime, job, lease)
        else:
            predicts.predict(runtime, job, lease)
    except UpstreamError as error:
        metrics.upstream_call(operation, time.monotonic() - started, error.job_error_code)
        limit = runtime.settings.JOB_TIME_LIMIT_S
        if isinstance(error, UpstreamUnavailable) and time.monotonic() - started >= limit:
            message = f"The TabPFN service did not answer within the job's {limit} s."
            outcomes.fail(runtime, job, lease, Failure(JobErrorCode.TIMEOUT, message))
        else:
            outcomes.upstream_error(runtime, job, lease, error, operation)
    except ModelGone:
        outcomes.fail(runtime, job, lease, MODEL_DELETED)
    except (OperationalError, InterfaceError):
        raise  # nothing can be recorded now (see run)
    except Exception:
        logger.exception("job failed with an internal error")
        message = f"An internal error stopped this job; quote job id {job.id} when reporting it."
        outcomes.fail(runtime, job, lease, Failure(JobErrorCode.INTERNAL_ERROR, message))


def _operation(claim: Claim) -> str:
    """What the slot does for this claim (the label of its upstream-call metrics)."""
    if claim.is_status_check:
        return "fit_status"
    if claim.is_merge:
        return "merge"
    return "submit_fit" if claim.job.kind is JobKind.FIT else "predict"


def _announce_start(runtime: WorkerRuntime, job: Job) -> None:
    """`job.started`, once per job, for callers who asked for it (`callback_events`)."""
    if not events.wanted(job, events.STARTED):
        return
    try:
        with runtime.db.session_scope() as session:
            delivery = events.schedule_started(session, job)
            session.flush()  # gives the row its id
            delivery_id = delivery.id if delivery is not None else None
    except Exception as error:  # the work matters more than its announcement
        logger.warning("could not schedule job.started: %s", type(error).__name__)
        return
    if delivery_id is not None:
        publish_delivery(runtime.publisher, runtime.db, delivery_id)
