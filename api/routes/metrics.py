"""`GET /metrics` in the Prometheus text format.

Per-process series (requests, jobs, upstream calls, webhooks) come from every process that
shares PROMETHEUS_MULTIPROC_DIR with this one; the cluster-wide gauges (queue depth, jobs by
status) are read from Redis and Postgres at scrape time, so any API replica reports the same.
Expose it to your scraper only (see docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from api.context import AppContext
from api.deps import ContextDep
from shared.metrics import process_registry
from shared.models import Job, JobStatus
from shared.queue import QueueName

logger = logging.getLogger(__name__)
router = APIRouter(tags=["service"])


class ClusterCollector(Collector):
    """Gauges that describe the whole deployment rather than one process."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "tabpfn_api_queue_depth", "Messages waiting in each broker queue", labels=["queue"]
        )
        try:
            pipeline = self.context.redis.pipeline()
            for queue in QueueName:
                pipeline.llen(queue.value)
            for queue, length in zip(QueueName, pipeline.execute(), strict=True):
                depth.add_metric([queue.value], float(length))
            yield depth
        except Exception as error:
            logger.warning("metrics: queue depth unavailable (%s)", type(error).__name__)
        jobs = GaugeMetricFamily(
            "tabpfn_api_jobs", "Jobs in the database by status", labels=["status"]
        )
        try:
            with self.context.db.session() as session:
                counts = dict(
                    session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
                )
                running = dict(
                    session.execute(
                        select(Job.lease_token.is_(None), func.count())
                        .where(Job.status == JobStatus.RUNNING)
                        .group_by(Job.lease_token.is_(None))
                    ).all()
                )
            for status in JobStatus:
                jobs.add_metric([status.value], float(counts.get(status, 0)))
            yield jobs
            phases = GaugeMetricFamily(
                "tabpfn_api_jobs_running",
                "Running jobs: in a worker slot, or submitted and waiting on the upstream",
                labels=["phase"],
            )
            phases.add_metric(["in_slot"], float(running.get(False, 0)))
            phases.add_metric(["awaiting_upstream"], float(running.get(True, 0)))
            yield phases
        except Exception as error:
            logger.warning("metrics: job counts unavailable (%s)", type(error).__name__)


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(context: ContextDep) -> Response:
    """Prometheus metrics of this deployment."""
    cluster = CollectorRegistry()
    cluster.register(ClusterCollector(context))
    body = generate_latest(process_registry()) + generate_latest(cluster)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
