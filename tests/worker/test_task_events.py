"""Job runs reported as Celery task events are best effort: with the broker away they are
dropped and counted, and the sender neither raises nor hangs (see test_flower.py for what
Flower shows when the broker is there)."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest

from scripts.engines import free_port
from shared.config import Settings
from shared.models import JobKind
from tests.support.settings import make_settings
from worker.task_events import TaskEvents, task_id


def test_events_are_dropped_while_the_broker_is_away(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    away = make_settings(
        DATABASE_URL=settings.DATABASE_URL, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    events = TaskEvents(away, "worker@host")
    job = SimpleNamespace(id=uuid.uuid4(), kind=JobKind.PREDICT, attempts=2)
    with caplog.at_level(logging.WARNING, logger="worker.task_events"):
        events.started(job)  # received and started
        events.failed(job, "TABPFN_REJECTED_INPUT")
        events.close(timeout=60)
    assert events.dropped == 3
    assert [r.getMessage() for r in caplog.records].count(
        "task events not sent: OperationalError"
    ) == 1  # once per outage, not per event


def test_a_run_is_named_by_its_job_and_attempt() -> None:
    job_id = uuid.UUID(int=7)
    assert task_id(job_id, 3) == f"{job_id}-attempt-3"
