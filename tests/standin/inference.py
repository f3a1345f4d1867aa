"""Fit and predict routes: run the baseline on uploaded parquet, sync or in the background."""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .baseline import BaselineError, BaselineModel, fit_baseline
from .context import Context
from .faults import fit_work_delay, predict_work_delay
from .state import FittedSet, Upload
from .wire import (
    HTTPFail,
    Request,
    Response,
    field_obj,
    field_uuid,
    invalid_input,
    new_id,
    not_found,
    ok,
)

PACKAGE_VERSION = "0.0.0+standin"


def _read_parquet(data: bytes, what: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise invalid_input(f"{what} is not a readable parquet file") from exc


def _task(body: Mapping[str, Any]) -> str:
    task = field_obj(body, "task_config").get("task")
    if task not in ("classification", "regression"):
        raise invalid_input("task_config.task must be 'classification' or 'regression'")
    return str(task)


def _train_upload(ctx: Context, req: Request, body: Mapping[str, Any]) -> Upload:
    upload_id = field_uuid(body, "train_set_upload_id")
    req.refs.append(upload_id)
    upload = ctx.store.owned_upload(upload_id, req.owner)
    if upload is None or upload.fitted_id is not None:
        raise not_found(f"Train set upload {upload_id}")
    if not upload.complete():
        raise invalid_input(f"Train set upload {upload_id} is incomplete")
    return upload


def _fit_model(ctx: Context, upload: Upload, task: str) -> tuple[BaselineModel, int, int]:
    """Read the upload, enforce the train limits and fit; returns the model, rows and columns.

    The baseline is deterministic, so a fitted baseline is kept per (upload, task): the same
    uploaded train set fits again in no CPU time. The stand-in shares the machine with the
    service under test, and its own compute must not be what a benchmark measures; how long
    a fit takes upstream is `fit_delay_s`."""
    key = (upload.id, task)
    with ctx.store.lock:
        single_flight = ctx.store.baseline_locks.setdefault(key, threading.Lock())
    with single_flight:  # concurrent fits of one upload fit it once
        cached = _fitted_baseline(ctx, upload, task, key)
    model, rows, cols, classes = cached
    _check_train_limits(ctx, rows, cols, classes, task)  # the limits may have changed since
    return model, rows, cols


def _fitted_baseline(
    ctx: Context, upload: Upload, task: str, key: tuple[str, str]
) -> tuple[BaselineModel, int, int, int]:
    with ctx.store.lock:
        cached = ctx.store.baselines.get(key)
    if cached is None:
        x = _read_parquet(upload.files["x_train"].data(), "x_train")
        y = _read_parquet(upload.files["y_train"].data(), "y_train")
        if y.shape[1] != 1:
            raise invalid_input(f"y_train must have exactly one column, got {y.shape[1]}")
        classes = int(y.iloc[:, 0].nunique()) if task == "classification" else 0
        _check_train_limits(ctx, x.shape[0], x.shape[1], classes, task)
        try:
            model = fit_baseline(x, y, task)
        except (BaselineError, ValueError, TypeError) as exc:
            raise invalid_input(str(exc)) from exc
        cached = (model, int(x.shape[0]), int(x.shape[1]), classes)
        with ctx.store.lock:
            ctx.store.baselines[key] = cached
    return cached


def _check_train_limits(ctx: Context, rows: int, cols: int, classes: int, task: str) -> None:
    limits = ctx.config.get().limits
    if rows > limits["train_set_max_rows"]:
        raise invalid_input(f"Train rows {rows} exceed the limit {limits['train_set_max_rows']}")
    if cols > limits["max_cols"]:
        raise invalid_input(f"Train columns {cols} exceed the limit {limits['max_cols']}")
    if rows * cols > limits["train_set_max_upload_cells"]:
        raise invalid_input(f"Train cells {rows * cols} exceed the upload cell limit")
    if task == "classification" and classes > limits["max_classes"]:
        raise invalid_input(f"More than {limits['max_classes']} classes")


def _finish(ctx: Context, fitted: FittedSet, upload: Upload, delay: float) -> None:
    """Run a fit to its end, recording success or failure on the fitted set (background use).

    The outcome shows `delay` seconds after the submission (or when the baseline is done, if
    it takes longer): the baseline's own time counts towards the delay."""
    deadline = time.monotonic() + delay
    try:
        model, rows, cols = _fit_model(ctx, upload, fitted.task)
    except HTTPFail as fail:
        time.sleep(max(deadline - time.monotonic(), 0.0))
        body = fail.response.body if isinstance(fail.response.body, dict) else {}
        with ctx.store.lock:
            fitted.status, fitted.finished = "failed", time.monotonic()
            fitted.error = str(body.get("message", "fit failed"))
            fitted.error_code = body.get("error_code")
        return
    except Exception as exc:
        time.sleep(max(deadline - time.monotonic(), 0.0))
        # Handlers never see the raw token, so the exception text cannot carry one.
        sys.stderr.write(f"standin: background fit crashed: {exc!r}\n")
        with ctx.store.lock:
            fitted.status, fitted.finished = "failed", time.monotonic()
            fitted.error, fitted.error_code = f"Internal error: {type(exc).__name__}", "INTERNAL"
        return
    time.sleep(max(deadline - time.monotonic(), 0.0))
    ctx.store.add_usage(fitted.owner, rows * cols)
    with ctx.store.lock:
        fitted.model, fitted.n_train_rows = model, rows
        fitted.status, fitted.finished = "completed", time.monotonic()


def _start_background(ctx: Context, req: Request, upload: Upload, task: str) -> FittedSet:
    cfg = ctx.config.get()
    fitted = FittedSet(id=new_id(), owner=req.owner, upload_id=upload.id, task=task, mode="async")
    req.refs.append(fitted.id)
    fitted.pending_polls_owed = 1 if cfg.fit_mode == "pending" else 0
    ctx.store.add_fitted(fitted)
    delay = fit_work_delay(cfg, req)
    threading.Thread(
        target=_finish, args=(ctx, fitted, upload, delay), name="standin-fit", daemon=True
    ).start()
    return fitted


def fit(ctx: Context, req: Request) -> Response:
    """POST /tabpfn/fit: fit now (sync mode) or answer pending and fit in the background."""
    body = req.json()
    task, upload = _task(body), _train_upload(ctx, req, body)
    cfg = ctx.config.get()
    if cfg.fit_mode == "pending":
        fitted = _start_background(ctx, req, upload, task)
        return ok(_fit_body(fitted, "pending"))
    fitted = FittedSet(id=new_id(), owner=req.owner, upload_id=upload.id, task=task, mode="sync")
    req.refs.append(fitted.id)
    time.sleep(fit_work_delay(cfg, req))
    started = time.monotonic()
    model, rows, cols = _fit_model(ctx, upload, task)
    fitted.model, fitted.n_train_rows = model, rows
    fitted.status, fitted.finished = "completed", time.monotonic()
    ctx.store.add_fitted(fitted)
    ctx.store.add_usage(req.owner, rows * cols)
    body_out = _fit_body(fitted, "completed")
    body_out["timings"]["fit_s"] = round(fitted.finished - started, 6)
    return ok(body_out)


def _fit_body(fitted: FittedSet, status: str) -> dict[str, Any]:
    return {
        "fitted_train_set_id": fitted.id,
        "status": status,
        "timings": {"elapsed_s": fitted.elapsed(), "queue_wait_s": 0.0},
    }


def submit_fit_job(ctx: Context, req: Request) -> Response:
    """POST /tabpfn/submit_fit_job: accept the job and fit in the background."""
    body = req.json()
    task, upload = _task(body), _train_upload(ctx, req, body)
    fitted = _start_background(ctx, req, upload, task)
    return ok({"fitted_train_set_id": fitted.id})


def get_fit_status(ctx: Context, req: Request) -> Response:
    """POST /tabpfn/get_fit_status: pending until done (and until one pending poll was owed)."""
    fitted_id = field_uuid(req.json(), "fitted_train_set_id")
    req.refs.append(fitted_id)
    fitted = ctx.store.owned_fitted(fitted_id, req.owner)
    if fitted is None:
        raise not_found(f"Fitted train set {fitted_id}")
    hint = ctx.config.get().fit_poll_hint_s
    with ctx.store.lock:
        status: str = fitted.status
        if status == "pending" or fitted.pending_polls_owed > 0:
            fitted.pending_polls_owed = max(0, fitted.pending_polls_owed - 1)
            status = "pending"
        done = status != "pending"
        return ok(
            {
                "fitted_train_set_id": fitted.id,
                "status": status,
                "retry_in_secs": hint,
                "error": fitted.error if done else None,
                "error_code": fitted.error_code if done else None,
                "timings": {"elapsed_s": fitted.elapsed() if done else _pending_elapsed(fitted)},
            }
        )


def _pending_elapsed(fitted: FittedSet) -> float:
    return round(time.monotonic() - fitted.created, 6)


def _check_test_limits(ctx: Context, fitted: FittedSet, x: pd.DataFrame, output_type: str) -> None:
    limits = ctx.config.get().limits
    model = fitted.model
    assert model is not None
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


def predict(ctx: Context, req: Request) -> Response:
    """POST /tabpfn/predict: predict the test upload with the caller's fitted baseline."""
    body = req.json()
    fitted_id = field_uuid(body, "fitted_train_set_id")
    test_id = field_uuid(body, "test_set_upload_id")
    req.refs += [fitted_id, test_id]
    task_config = field_obj(body, "task_config")
    fitted = ctx.store.owned_fitted(fitted_id, req.owner)
    if fitted is None:
        raise not_found(f"Fitted train set {fitted_id}")
    test = ctx.store.owned_upload(test_id, req.owner)
    if test is None or test.fitted_id != fitted_id:
        raise not_found(f"Test set upload {test_id}")
    if not test.complete():
        raise invalid_input(f"Test set upload {test_id} is incomplete")
    if fitted.status != "completed" or fitted.model is None:
        raise invalid_input(f"Fitted train set {fitted_id} is {fitted.status}, not completed")
    if task_config.get("task", fitted.task) != fitted.task:
        raise invalid_input(f"Fitted train set {fitted_id} is for {fitted.task}")
    params = task_config.get("predict_params") or {}
    default_output = "preds" if fitted.task == "classification" else "mean"
    output_type = str(params.get("output_type") or default_output)
    quantiles = params.get("quantiles")
    started = time.monotonic()
    x = _read_parquet(test.files["x_test"].data(), "x_test")
    _check_test_limits(ctx, fitted, x, output_type)
    transformed = time.monotonic()
    time.sleep(predict_work_delay(ctx.config.get(), req))
    try:
        prediction = fitted.model.predict(x, output_type, quantiles)
    except BaselineError as exc:
        raise invalid_input(str(exc)) from exc
    ctx.store.add_usage(req.owner, x.shape[0] * x.shape[1])
    metadata: dict[str, Any] = {
        "task": fitted.task,
        "test_set_num_rows": int(x.shape[0]),
        "test_set_num_cols": int(x.shape[1]),
        "package_version": PACKAGE_VERSION,
        "tabpfn_config": {},
        "execution_mode": "standard",
    }
    if fitted.task == "classification":
        metadata["classes"] = fitted.model.classes
    timings = {
        "test_set_transform_queue_wait_s": 0.0,
        "test_set_transform_s": round(transformed - started, 6),
        "predict_queue_wait_s": 0.0,
        "predict_s": round(time.monotonic() - transformed, 6),
    }
    return ok({"prediction": prediction, "metadata": metadata, "timings": timings})
