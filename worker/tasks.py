"""Celery tasks: thin, like web views. Each takes an id; the logic lives in plain modules.

A job's message wakes this process's engine, which claims the fairest due work from the job
table (not necessarily the job named): see `shared.jobs.dispatch` and `worker.engine`. Such
a task succeeds at once whatever becomes of the job, so it sends no task events: Flower
would list it as a SUCCESS beside a job that failed. Each run of a job shows in Flower as a
task of its own instead (`job.fit` / `job.predict`, `worker.task_events`).
"""

from __future__ import annotations

import uuid

from celery import shared_task

from shared.queue import TaskName
from worker import engine, sweeper, webhook_delivery

WOKE = "woke the engine; it claims due jobs fairly, and each run of a job is its job.{} task"


@shared_task(name=TaskName.RUN_FIT.value, ignore_result=True, send_events=False)
def run_fit(job_id: str) -> str:
    """A fit job is due: wake the engine (the message carries the job's id and nothing else)."""
    engine.current().nudge()
    return WOKE.format("fit")


@shared_task(name=TaskName.RUN_PREDICT.value, ignore_result=True, send_events=False)
def run_predict(job_id: str) -> str:
    """A predict job is due: wake the engine."""
    engine.current().nudge()
    return WOKE.format("predict")


@shared_task(name=TaskName.DELIVER_WEBHOOK.value, ignore_result=True)
def deliver_webhook(delivery_id: str) -> None:
    """Make one webhook delivery attempt; a failure schedules the next one."""
    webhook_delivery.attempt(uuid.UUID(delivery_id))


@shared_task(name=TaskName.SWEEP.value, ignore_result=True)
def sweep() -> None:
    """Periodic maintenance (beat): recover expired leases, retry webhooks, purge."""
    sweeper.sweep()
