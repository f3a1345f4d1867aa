"""The sweeper never waits behind webhook deliveries or jobs (issue 10, point 3): in compose
and in `make dev`, the worker that consumes `maintenance` consumes nothing else, and every
queue has a worker."""

from __future__ import annotations

import json
import re

from shared.queue import QueueName
from tests.support.processes import ROOT

SERVICE = re.compile(r"^  ([a-z][\w-]*):\s*$")


def compose_commands() -> dict[str, list[str]]:
    """Each compose service's `command`, read from its JSON-style list (possibly wrapped)."""
    commands: dict[str, list[str]] = {}
    service = None
    collecting: str | None = None
    for line in (ROOT / "docker-compose.yml").read_text().splitlines():
        if collecting is not None:
            collecting += line
        elif match := SERVICE.match(line):
            service = match.group(1)
        elif line.strip().startswith("command:") and service is not None:
            collecting = line.split("command:", 1)[1]
        if collecting is not None and collecting.count("[") == collecting.count("]"):
            commands[service or ""] = json.loads(collecting)
            collecting = None
    return commands


def worker_queues(commands: dict[str, list[str]]) -> dict[str, set[str]]:
    """The queues each Celery worker consumes (all of them without `-Q`)."""
    queues: dict[str, set[str]] = {}
    for name, args in commands.items():
        if args[2:4] != ["worker.celery_app", "worker"]:  # celery -A worker.celery_app worker
            continue
        if "-Q" in args:
            queues[name] = set(args[args.index("-Q") + 1].split(","))
        else:
            queues[name] = {queue.value for queue in QueueName}
    return queues


def assert_sweeps_run_alone(queues: dict[str, set[str]]) -> None:
    sweepers = [name for name, consumed in queues.items() if QueueName.MAINTENANCE in consumed]
    assert len(sweepers) == 1, queues
    assert queues[sweepers[0]] == {QueueName.MAINTENANCE.value}, queues
    assert set().union(*queues.values()) == {queue.value for queue in QueueName}


def test_compose_gives_the_sweeper_a_worker_of_its_own() -> None:
    commands = compose_commands()
    assert {"worker", "beat", "flower"} <= commands.keys()
    assert_sweeps_run_alone(worker_queues(commands))


def test_make_dev_gives_the_sweeper_a_worker_of_its_own() -> None:
    from scripts.dev import celery_workers

    workers = dict(celery_workers("celery"))
    assert_sweeps_run_alone(worker_queues(workers))
