"""The broker contract: task names, queues, Celery settings, and publishing by task name.

The API never imports `worker/`: it publishes `send_task("jobs.run_fit", args=[job_id])`
through `Publisher`. Both sides build their Celery configuration from `celery_config()`,
so queues and serialisation cannot drift apart. A message carries a job id and nothing
else; payloads stay in Postgres.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
import weakref
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


# The queues whose messages wake a worker's engine (see shared.jobs.dispatch).
JOB_QUEUES = frozenset({QueueName.FIT, QueueName.PREDICT})

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
        # Workers report task events for Flower. The publisher does not announce "sent"
        # events: that would cost every submission a second Redis round trip, and the job
        # row already records the submission.
        "worker_send_task_events": True,
        "enable_utc": True,
        "timezone": "UTC",
    }


class Publisher:
    """Publishes tasks by name; a failure is logged and reported, never raised to the caller.

    Publishing happens after the commit, so a failed publish loses nothing: a job's message
    only wakes a worker (workers find due jobs in the table on their own), and a webhook
    attempt is re-published by the sweeper.

    Each thread keeps its own broker connection and producer: taking one from Celery's pool
    per message made kombu build a new Redis client every time, which cost more than the
    publish itself. A producer whose connection broke is dropped and rebuilt on next use.
    """

    def __init__(self, settings: Settings) -> None:
        self.app = Celery("tabpfn-api-publisher", set_as_current=False)
        self.app.conf.update(celery_config(settings))
        self._local = threading.local()
        # Weak: a thread that ends takes its producer and connection with it.
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _producer(self) -> Any:
        producer = getattr(self._local, "producer", None)
        if producer is None or self._local.pid != os.getpid():
            connection = self.app.connection_for_write()
            producer = self.app.amqp.Producer(connection)
            self._local.producer, self._local.pid = producer, os.getpid()
            with self._lock:
                self._connections.add(connection)
        return producer

    def _drop_producer(self) -> None:
        producer = getattr(self._local, "producer", None)
        self._local.producer = None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.connection.close()

    def publish(self, task: TaskName, object_id: uuid.UUID, *, countdown: float = 0) -> bool:
        """Send `task(object_id)`; True when the broker accepted it."""
        for attempt in (1, 2):  # a connection broken since the last use gets one fresh try
            try:
                self.app.send_task(
                    task.value,
                    args=[str(object_id)],
                    countdown=countdown or None,
                    queue=TASK_QUEUES[task].value,
                    routing_key=TASK_QUEUES[task].value,
                    producer=self._producer(),
                    retry=False,
                )
            except Exception as error:  # the broker being down must never fail the request
                self._drop_producer()
                if attempt == 2:
                    logger.warning(
                        "could not publish %s for %s: %s",
                        task.value,
                        object_id,
                        type(error).__name__,
                    )
                    return False
            else:
                return True
        return False

    def close(self) -> None:
        """Release the broker connections."""
        with self._lock:
            for connection in list(self._connections):
                with contextlib.suppress(Exception):
                    connection.close()
            self._connections.clear()
        self.app.close()
