"""Size checks against the upstream's limits (per account and model version, cached).

Each violation is a 400 `LIMIT_EXCEEDED` that names the limit, the value and what to do.
When the upstream cannot tell its limits right now, these checks are skipped: the job
still runs and the upstream itself refuses what it cannot take.
"""

from __future__ import annotations

from shared.datasets.table import FeatureTable
from shared.errors import ValidationFailed
from shared.tabpfn.types import Limits


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


def check_predict_limits(table: FeatureTable, n_train_rows: int, limits: Limits | None) -> None:
    if limits is None:
        return
    max_rows = min(limits.test_max_rows, limits.predict_row_pairs_budget // max(n_train_rows, 1))
    if table.n_rows > max_rows:
        raise _exceeded(
            "The number of rows to predict",
            table.n_rows,
            max_rows,
            "split them across several predict jobs",
        )
    if table.n_cells > limits.test_max_cells:
        raise _exceeded(
            "The number of cells to predict",
            table.n_cells,
            limits.test_max_cells,
            "split them across several predict jobs",
        )
