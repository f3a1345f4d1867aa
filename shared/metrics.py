"""Prometheus metrics, written by every process (API workers, Celery children).

With PROMETHEUS_MULTIPROC_DIR set (make dev, the tests and compose set it), each process
writes its samples to files in that folder and `GET /metrics` on any API process adds them
all up, so several uvicorn workers and the Celery children on one host show as one service.
Cluster-wide gauges (queue depth, jobs by status) are read at scrape time instead.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from shared.models import Job

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

HTTP_REQUESTS = Counter(
    "tabpfn_api_http_requests_total",
    "HTTP requests by route and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "tabpfn_api_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
JOBS_CREATED = Counter("tabpfn_api_jobs_created_total", "Jobs accepted", ["kind"])
JOBS_FINISHED = Counter(
    "tabpfn_api_jobs_finished_total", "Jobs that ended", ["kind", "status", "error_code"]
)
JOB_DURATION = Histogram(
    "tabpfn_api_job_duration_seconds", "Submission to final state", ["kind"], buckets=_JOB_BUCKETS
)
JOB_QUEUE_WAIT = Histogram(
    "tabpfn_api_job_queue_wait_seconds", "Submission to first start", ["kind"], buckets=_JOB_BUCKETS
)
JOB_RETRIES = Counter("tabpfn_api_job_retries_total", "Attempts re-queued", ["kind", "reason"])
UPSTREAM_LATENCY = Histogram(
    "tabpfn_api_upstream_call_duration_seconds", "TabPFN calls", ["operation"], buckets=_JOB_BUCKETS
)
UPSTREAM_ERRORS = Counter(
    "tabpfn_api_upstream_errors_total", "TabPFN call errors by code", ["operation", "code"]
)
# Per worker process (a `pid` label in multi-process mode): its engine's load.
UPSTREAM_IN_FLIGHT = Gauge(
    "tabpfn_api_worker_upstream_in_flight",
    "Worker slots busy with an upstream call (or the work around one)",
    multiprocess_mode="liveall",
)
MEMORY_BUDGET_BYTES = Gauge(
    "tabpfn_api_worker_memory_budget_bytes",
    "The worker process's payload memory budget (WORKER_MEMORY_BUDGET_MB)",
    multiprocess_mode="liveall",
)
MEMORY_BUDGET_IN_USE = Gauge(
    "tabpfn_api_worker_memory_budget_in_use_bytes",
    "Payload bytes reserved by jobs in flight in the worker process",
    multiprocess_mode="liveall",
)
# Per API process: requests held by `Prefer: wait`, and how their waits ended.
PREFER_WAITERS = Gauge(
    "tabpfn_api_prefer_waiters",
    "Requests of this API process holding their answer until a job ends (Prefer: wait)",
    multiprocess_mode="liveall",
)
PREFER_WAITS = Counter(
    "tabpfn_api_prefer_waits_total",
    "Prefer: wait requests by outcome (ended, timed_out, disconnected: the client went away, "
    "refused: at PREFER_WAIT_MAX_WAITERS or PREFER_WAIT_MAX_WAITERS_PER_USER)",
    ["outcome"],
)
JOB_LISTENER_CONNECTS = Counter(
    "tabpfn_api_job_listener_connects_total",
    "Connections the API's job-ended listener made (more than one: it reconnected)",
)
WEBHOOK_DELIVERIES = Counter(
    "tabpfn_api_webhook_deliveries_total", "Webhook delivery attempts by outcome", ["outcome"]
)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def process_registry() -> CollectorRegistry:
    """What to expose: every process sharing the multi-process folder, else this process."""
    if not multiprocess_enabled():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def job_started(job: Job) -> None:
    """Observe the queue wait once, at the claim that set `started_at` (a claim stamps it
    and `updated_at` with the same now(); retries and parks keep the first start)."""
    if job.started_at is not None and job.started_at == job.updated_at:
        wait = (job.started_at - job.created_at).total_seconds()
        JOB_QUEUE_WAIT.labels(job.kind.value).observe(max(wait, 0.0))


def job_finished(job: Job) -> None:
    JOBS_FINISHED.labels(job.kind.value, job.status.value, job.error_code or "").inc()
    end = job.finished_at or datetime.now(UTC)
    JOB_DURATION.labels(job.kind.value).observe(max((end - job.created_at).total_seconds(), 0.0))


def upstream_call(operation: str, seconds: float, error_code: str | None) -> None:
    UPSTREAM_LATENCY.labels(operation).observe(seconds)
    if error_code is not None:
        UPSTREAM_ERRORS.labels(operation, error_code).inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one HTTP request (the route template keeps label cardinality bounded)."""
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)
