"""The Celery configuration of DESIGN §6.2, read from the app the CLI loads."""

from __future__ import annotations

from shared.config import Settings
from shared.queue import TASK_QUEUES, QueueName, TaskName, celery_config


def test_reliability_settings(settings: Settings) -> None:
    conf = celery_config(settings)
    assert conf["task_acks_late"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["task_ignore_result"] is True
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    assert conf["task_time_limit"] < conf["broker_transport_options"]["visibility_timeout"]
    assert {q.name for q in conf["task_queues"]} == {q.value for q in QueueName}


def test_every_task_is_routed_to_an_explicit_queue(settings: Settings) -> None:
    routes = celery_config(settings)["task_routes"]
    assert set(routes) == {name.value for name in TaskName}
    assert all(routes[name.value]["queue"] == TASK_QUEUES[name].value for name in TaskName)
