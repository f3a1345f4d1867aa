"""Celery tasks: thin, like web views. Each takes an id; the logic lives in plain modules."""

from __future__ import annotations

import uuid

from celery import shared_task

from shared.queue import TaskName
from worker import execution, sweeper, webhook_delivery


@shared_task(name=TaskName.RUN_FIT.value, ignore_result=True)
def run_fit(job_id: str) -> None:
    """Run a fit job (the message carries its id and nothing else)."""
    execution.run_job(uuid.UUID(job_id))


@shared_task(name=TaskName.RUN_PREDICT.value, ignore_result=True)
def run_predict(job_id: str) -> None:
    """Run a predict job."""
    execution.run_job(uuid.UUID(job_id))


@shared_task(name=TaskName.DELIVER_WEBHOOK.value, ignore_result=True)
def deliver_webhook(delivery_id: str) -> None:
    """Make one webhook delivery attempt; a failure schedules the next one."""
    webhook_delivery.attempt(uuid.UUID(delivery_id))


@shared_task(name=TaskName.SWEEP.value, ignore_result=True)
def sweep() -> None:
    """Periodic maintenance (beat): re-publish, recover expired leases, retry webhooks, purge."""
    sweeper.sweep()
