"""The predict route: the caller's fitted baseline on a test upload, logged in the predict log.

How a prediction ran follows what its fit asked for, reported in the metadata fields
`execution_mode` and `cache_outcome` of tabpfn-client 0.6.1's Classifier/RegressorMetadata:

- a standard fit: `standard` / `not_requested`;
- a fit with `tabpfn_config.fit_mode="fit_with_cache"`: `cache` / `hit` on every predict,
  the first one included, because the hosted service builds the KV cache during the fit
  ("compute attention state during fit() and reuse it during prediction", docs.priorlabs.ai,
  KV cache) and serves each later predict of that fitted id from it;
- a Thinking fit: `thinking`, with `not_requested`, or `fallback` when the fit also asked for
  the cache, since a Thinking prediction does not run from the standard KV cache.

A fitted set that was deleted or forgotten (DELETE /_admin/fits) answers 404 NOT_FOUND.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from .baseline import BaselineError, BaselineModel
from .context import Context
from .faults import predict_work_delay
from .options import FitOptions
from .predictlog import PredictRecord
from .state import FittedSet
from .uploads import read_parquet
from .wire import HTTPFail, Request, Response, field_obj, field_uuid, invalid_input, not_found, ok

PACKAGE_VERSION = "0.0.0+standin"


def execution_of(options: FitOptions) -> tuple[str, str]:
    """(execution_mode, cache_outcome) of every prediction from a fit with these options."""
    if options.thinking:
        return "thinking", "fallback" if options.fit_with_cache else "not_requested"
    if options.fit_with_cache:
        return "cache", "hit"
    return "standard", "not_requested"


def _check_test_limits(
    ctx: Context, fitted: FittedSet, model: BaselineModel, x: pd.DataFrame, output_type: str
) -> None:
    limits = ctx.config.get().limits
    rows, cols = x.shape
    max_rows = limits["test_set_max_rows"]
    if fitted.n_train_rows:
        max_rows = min(max_rows, limits["predict_row_pairs_budget"] // fitted.n_train_rows)
    if rows > max_rows:
        raise invalid_input(f"Test rows {rows} exceed the limit {max_rows}")
    if cols > limits["max_cols"]:
        raise invalid_input(f"Test columns {cols} exceed the limit {limits['max_cols']}")
    if rows * cols > limits["test_set_max_cells"]:
        raise invalid_input(f"Test cells {rows * cols} exceed the limit")
    full_cap = limits["test_set_max_rows_w_full_regression_output"]
    if output_type == "full" and rows > full_cap:
        raise invalid_input(f"Test rows {rows} exceed {full_cap} for full regression output")
    if cols != model.n_features:
        raise invalid_input(
            f"X_test has {cols} columns but the train set had {model.n_features} columns"
        )


def _metadata(fitted: FittedSet, model: BaselineModel, x: pd.DataFrame) -> dict[str, Any]:
    mode, outcome = execution_of(fitted.options)
    metadata: dict[str, Any] = {
        "task": fitted.task,
        "test_set_num_rows": int(x.shape[0]),
        "test_set_num_cols": int(x.shape[1]),
        "package_version": PACKAGE_VERSION,
        "tabpfn_config": {},
        "execution_mode": mode,
        "cache_outcome": outcome,
    }
    if fitted.task == "classification":
        metadata["classes"] = model.classes
    return metadata


def predict(ctx: Context, req: Request) -> Response:
    """POST /tabpfn/predict: predict the test upload with the caller's fitted baseline."""
    body = req.json()
    fitted_id = field_uuid(body, "fitted_train_set_id")
    test_id = field_uuid(body, "test_set_upload_id")
    req.refs += [fitted_id, test_id]
    task_config = field_obj(body, "task_config")
    params = field_obj(task_config, "predict_params", required=False)
    # Logged as sent: None when the predict carried no tabpfn_config at all.
    sent_config = (
        None
        if task_config.get("tabpfn_config") is None
        else field_obj(task_config, "tabpfn_config")
    )
    fitted = ctx.store.owned_fitted(fitted_id, req.owner)
    if fitted is None:
        raise not_found(f"Fitted train set {fitted_id}")
    test = ctx.store.owned_upload(test_id, req.owner)
    if test is None or test.fitted_id != fitted_id:
        raise not_found(f"Test set upload {test_id}")
    if not test.complete():
        raise invalid_input(f"Test set upload {test_id} is incomplete")
    model = fitted.model  # read once: the fitted set may be forgotten while this runs
    if fitted.status != "completed" or model is None:
        raise invalid_input(f"Fitted train set {fitted_id} is {fitted.status}, not completed")
    if task_config.get("task", fitted.task) != fitted.task:
        raise invalid_input(f"Fitted train set {fitted_id} is for {fitted.task}")
    default_output = "preds" if fitted.task == "classification" else "mean"
    output_type = str(params.get("output_type") or default_output)
    quantiles = params.get("quantiles")
    started = time.monotonic()
    x = read_parquet(test.files["x_test"].data(), "x_test")
    record = PredictRecord(
        fitted_train_set_id=fitted_id,
        test_set_upload_id=test_id,
        token_id=req.owner,
        task=fitted.task,
        test_rows=int(x.shape[0]),
        test_cols=int(x.shape[1]),
        output_type=params.get("output_type"),
        quantiles=quantiles,
        tabpfn_config=sent_config,
    )
    try:
        _check_test_limits(ctx, fitted, model, x, output_type)
        transformed = time.monotonic()
        time.sleep(predict_work_delay(ctx.config.get(), req))
        try:
            prediction = model.predict(x, output_type, quantiles)
        except BaselineError as exc:
            raise invalid_input(str(exc)) from exc
    except HTTPFail as fail:
        refused = fail.response.body if isinstance(fail.response.body, dict) else {}
        record.status, record.error = fail.response.status, refused.get("message")
        ctx.store.predict_log.add(record)
        raise
    ctx.store.add_usage(req.owner, x.shape[0] * x.shape[1])
    metadata = _metadata(fitted, model, x)
    record.execution_mode = metadata["execution_mode"]
    record.cache_outcome = metadata["cache_outcome"]
    ctx.store.predict_log.add(record)
    timings = {
        "test_set_transform_queue_wait_s": 0.0,
        "test_set_transform_s": round(transformed - started, 6),
        "predict_queue_wait_s": 0.0,
        "predict_s": round(time.monotonic() - transformed, 6),
    }
    return ok({"prediction": prediction, "metadata": metadata, "timings": timings})
