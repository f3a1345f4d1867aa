"""Predictions: one upstream call held in a slot, then the result stored with the job.

A small result is stored inline on the job row; a large one (more than
RESULT_INLINE_MAX_ROWS rows) as a Parquet payload, served by `GET /jobs/{id}/result`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared import metrics
from shared.datasets import parquet
from shared.jobs import results
from shared.models import Job, Model, Task
from shared.tabpfn.config import TabPFNConfig
from worker import inputs, outcomes
from worker.leases import HeldLease
from worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


def predict(runtime: WorkerRuntime, job: Job, lease: HeldLease) -> None:
    """Load the rows, predict them upstream from the model's fit, store the result."""
    cost = inputs.cost_of(runtime, job)
    with runtime.budget.reserve(cost):
        loaded = inputs.load(runtime, job, cost)
        model = loaded.model
        if not model.train_set_uid:
            raise inputs.ModelGone
        config = TabPFNConfig.model_validate({**model.config, **job.params.get("config", {})})
        output_type = str(job.params["output_type"])
        quantiles = job.params.get("quantiles")
        settings = runtime.settings
        if not lease.start_call():  # canceled, taken over or handed back: not ours to run
            logger.info("lease lost before the upstream call; not calling it")
            return
        started = time.monotonic()
        predicted = runtime.upstream.predict(
            loaded.token,
            model.train_set_uid,
            Task(model.task),
            loaded.features,
            output_type=output_type,
            quantiles=quantiles,
            config=config,
            timeout_s=min(settings.TABPFN_TIMEOUT_S, settings.JOB_TIME_LIMIT_S),
        )
        metrics.upstream_call("predict", time.monotonic() - started, None)
        del loaded
        result, table = _result(runtime, predicted.predictions, output_type, model, quantiles)
        outcomes.succeed(
            runtime,
            job,
            lease,
            result=result,
            table=table,
            trace_id=predicted.trace_id,
            upstream_timings=predicted.timings,
        )


def _result(
    runtime: WorkerRuntime,
    predictions: list[Any],
    output_type: str,
    model: Model,
    quantiles: list[float] | None,
) -> tuple[dict[str, Any], parquet.Encoded | None]:
    classes = model.classes if output_type == "probas" else None
    inline = len(predictions) <= runtime.settings.RESULT_INLINE_MAX_ROWS
    result: dict[str, Any] = {
        "output_type": output_type,
        "n_rows": len(predictions),
        "classes": classes,
        "quantiles": quantiles if output_type == "quantiles" else None,
        "inline": inline,
        "predictions": predictions if inline else None,
    }
    if inline:
        return result, None
    frame = results.to_frame(predictions, output_type, classes, quantiles)
    return result, parquet.encode({str(name): frame[name].to_numpy() for name in frame.columns})
