"""The broker contract: task names, queues, Celery settings, and publishing by task name.

The API never imports `worker/`: it publishes `send_task("jobs.run_fit", args=[job_id])`
through `Publisher`. Both sides build their Celery configuration from `celery_config()`,
so queues and serialisation cannot drift apart. A message carries a job id and nothing
else; payloads stay in Postgres.
"""

from __future__ import annotations

import logging
import uuid
from enum import StrEnum
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from shared.config import Settings

logger = logging.getLogger(__name__)


class TaskName(StrEnum):
    """Every task the worker registers, by the name the publisher uses."""

    RUN_FIT = "jobs.run_fit"
    RUN_PREDICT = "jobs.run_predict"
    DELIVER_WEBHOOK = "webhooks.deliver"
    SWEEP = "maintenance.sweep"


class QueueName(StrEnum):
    """Explicit queues, so operators can scale fits, predictions and webhooks separately."""

    FIT = "fit"
    PREDICT = "predict"
    WEBHOOKS = "webhooks"
    MAINTENANCE = "maintenance"


TASK_QUEUES: dict[TaskName, QueueName] = {
    TaskName.RUN_FIT: QueueName.FIT,
    TaskName.RUN_PREDICT: QueueName.PREDICT,
    TaskName.DELIVER_WEBHOOK: QueueName.WEBHOOKS,
    TaskName.SWEEP: QueueName.MAINTENANCE,
}


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings shared by the publisher and the worker (DESIGN §6.2)."""
    exchange = Exchange("tabpfn-api", type="direct")
    return {
        "broker_url": settings.REDIS_URL,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "broker_transport_options": {
            # Redis redelivers a message not acked within this; it must outlast a job's
            # hard time limit, or a long job would run twice.
            "visibility_timeout": settings.broker_visibility_timeout_s,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
            "retry_on_timeout": True,
        },
        "task_queues": [Queue(q.value, exchange, routing_key=q.value) for q in QueueName],
        "task_default_queue": QueueName.FIT.value,
        "task_default_exchange": exchange.name,
        "task_routes": {
            name.value: {"queue": queue.value, "routing_key": queue.value}
            for name, queue in TASK_QUEUES.items()
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.JOB_TIME_LIMIT_S,
        "task_soft_time_limit": settings.job_soft_time_limit_s,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "enable_utc": True,
        "timezone": "UTC",
    }


class Publisher:
    """Publishes tasks by name; a failure is logged and reported, never raised to the caller.

    Publishing happens after the commit, so a failed publish loses nothing: the job stays
    `queued` and the sweeper publishes it again.
    """

    def __init__(self, settings: Settings) -> None:
        self.app = Celery("tabpfn-api-publisher", set_as_current=False)
        self.app.conf.update(celery_config(settings))

    def publish(self, task: TaskName, object_id: uuid.UUID, *, countdown: float = 0) -> bool:
        """Send `task(object_id)`; True when the broker accepted it."""
        try:
            self.app.send_task(
                task.value,
                args=[str(object_id)],
                countdown=countdown or None,
                queue=TASK_QUEUES[task].value,
                routing_key=TASK_QUEUES[task].value,
                # One quick retry on a broken pooled connection, then give up: the caller
                # has committed and the sweeper will publish again.
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2},
            )
        except Exception as error:  # the broker being down must never fail the request
            logger.warning(
                "could not publish %s for %s: %s", task.value, object_id, type(error).__name__
            )
            return False
        return True

    def close(self) -> None:
        """Release the broker connections."""
        self.app.close()
