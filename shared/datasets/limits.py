"""Size checks against the upstream's limits (per account and model version, cached).

Each violation is a 400 `LIMIT_EXCEEDED` that names the limit, the value and what to do.
When the upstream cannot tell its limits right now, these checks are skipped: the job
still runs and the upstream itself refuses what it cannot take.
"""

from __future__ import annotations

import math

from shared.datasets.table import FeatureTable
from shared.errors import ValidationFailed
from shared.jobs import chunks
from shared.tabpfn.types import Limits

# A prediction runs as at most this many chunks (each one upstream request).
MAX_PREDICT_CHUNKS = 1000


def _exceeded(what: str, value: int, limit: int, advice: str) -> ValidationFailed:
    return ValidationFailed(
        f"{what} is {value}, above the TabPFN limit of {limit}; {advice}.",
        code="LIMIT_EXCEEDED",
        details={"limit": limit, "value": value},
    )


def check_fit_limits(table: FeatureTable, n_classes: int | None, limits: Limits | None) -> None:
    if limits is None:
        return
    if table.n_rows > limits.train_max_rows:
        raise _exceeded(
            "The number of training rows", table.n_rows, limits.train_max_rows, "subsample the rows"
        )
    if table.n_cols > limits.max_cols:
        raise _exceeded(
            "The number of columns", table.n_cols, limits.max_cols, "select fewer features"
        )
    if table.n_cells > limits.train_max_cells:
        raise _exceeded(
            "The number of training cells (rows x columns)",
            table.n_cells,
            limits.train_max_cells,
            "send fewer rows or columns",
        )
    if n_classes is not None and n_classes > limits.max_classes:
        raise _exceeded(
            "The number of classes", n_classes, limits.max_classes, "merge rare classes"
        )


def check_predict_limits(
    table: FeatureTable, n_train_rows: int, output_type: str, limits: Limits | None
) -> None:
    """Only what no split can serve: rows over the upstream's per-request limit are split
    into chunks by the worker (`shared.jobs.chunks`), up to MAX_PREDICT_CHUNKS of them."""
    if limits is None:
        return
    if table.n_cols > limits.max_cols:
        raise _exceeded(
            "The number of columns", table.n_cols, limits.max_cols, "select fewer features"
        )
    per_request = chunks.rows_per_request(
        limits, n_train_rows=n_train_rows, n_cols=table.n_cols, output_type=output_type
    )
    needed = math.ceil(table.n_rows / per_request)
    if needed > MAX_PREDICT_CHUNKS:
        raise _exceeded(
            "The number of upstream requests this prediction needs",
            needed,
            MAX_PREDICT_CHUNKS,
            f"send at most {per_request * MAX_PREDICT_CHUNKS} rows per predict job",
        )
