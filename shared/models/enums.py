"""String enums for every state column; their values are what the API shows."""

from enum import StrEnum


class Task(StrEnum):
    """What a model predicts."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class ModelStatus(StrEnum):
    """A model is `pending` until its fit job succeeds (`ready`) or ends otherwise (`failed`).

    A ready model whose upstream fit is gone (the TabPFN service answered "not found": the
    token now belongs to another account, the fit expired, the service forgot it) becomes
    `stale` at the first prediction that finds out; a refit makes it `ready` again."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    STALE = "stale"


class JobKind(StrEnum):
    """The two kinds of background work."""

    FIT = "fit"
    PREDICT = "predict"


class JobStatus(StrEnum):
    """The job state machine (DESIGN §6)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATUSES


FINAL_JOB_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


class JobPhase(StrEnum):
    """What a running job is doing right now (`progress.phase` of a Job).

    `queued` until a worker takes it; a fit then uploads its data and waits on the upstream
    (`fitting`); a prediction uploads its rows, waits on the upstream (`predicting`, also
    while a large prediction's chunks run) and stores its result (`storing`)."""

    QUEUED = "queued"
    UPLOADING = "uploading"
    FITTING = "fitting"
    PREDICTING = "predicting"
    STORING = "storing"


class JobErrorCode(StrEnum):
    """Why a job failed, was canceled or is waiting to run again (`error.code` of a Job)."""

    TABPFN_TOKEN_INVALID = "TABPFN_TOKEN_INVALID"  # noqa: S105 - a code, not a secret
    TABPFN_QUOTA_EXCEEDED = "TABPFN_QUOTA_EXCEEDED"
    TABPFN_RATE_LIMITED = "TABPFN_RATE_LIMITED"
    TABPFN_REJECTED_INPUT = "TABPFN_REJECTED_INPUT"
    TABPFN_MODEL_NOT_FOUND = "TABPFN_MODEL_NOT_FOUND"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    TIMEOUT = "TIMEOUT"
    WORKER_LOST = "WORKER_LOST"
    CANCELED = "CANCELED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class PayloadKind(StrEnum):
    """Why a payload row exists; retention uses it."""

    FIT_INPUT = "fit_input"
    PREDICT_INPUT = "predict_input"
    RESULT = "result"


class DeliveryStatus(StrEnum):
    """One webhook delivery attempt: scheduled, then delivered or failed."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
