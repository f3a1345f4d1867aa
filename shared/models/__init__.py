"""All ORM models live together (no import cycles between features); import them from here."""

from shared.models.base import Base
from shared.models.enums import (
    FINAL_JOB_STATUSES,
    DeliveryStatus,
    JobErrorCode,
    JobKind,
    JobPhase,
    JobStatus,
    ModelStatus,
    PayloadKind,
    Task,
)
from shared.models.job import Job
from shared.models.model import Model
from shared.models.payload import Payload
from shared.models.user import ApiKey, User
from shared.models.webhook_delivery import WebhookDelivery

__all__ = [
    "FINAL_JOB_STATUSES",
    "ApiKey",
    "Base",
    "DeliveryStatus",
    "Job",
    "JobErrorCode",
    "JobKind",
    "JobPhase",
    "JobStatus",
    "Model",
    "ModelStatus",
    "Payload",
    "PayloadKind",
    "Task",
    "User",
    "WebhookDelivery",
]
