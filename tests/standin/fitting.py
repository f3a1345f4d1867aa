"""Fit routes: validate what the fit asks for, then run the baseline sync or in the background.

A fit takes `fit_delay_s` (plus 2 s for `slow*` tokens); a Thinking fit (with "thinking" in
`tabpfn_systems`) also searches for `thinking_fit_delay_s`, capped by its
`thinking_config.timeout_secs`, and is charged to the token's thinking-fit quota.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from .baseline import BaselineError, BaselineModel, fit_baseline
from .context import Context
from .faults import fit_work_delay
from .options import FitOptions, parse_fit_options
from .state import FittedSet, Upload
from .thinking import charge_thinking_fit, thinking_delay
from .uploads import read_parquet
from .wire import HTTPFail, Request, Response, field_uuid, invalid_input, new_id, not_found, ok


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
        x = read_parquet(upload.files["x_train"].data(), "x_train")
        y = read_parquet(upload.files["y_train"].data(), "y_train")
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


def _complete(ctx: Context, fitted: FittedSet, model: BaselineModel, rows: int, cols: int) -> None:
    ctx.store.add_usage(fitted.owner, rows * cols)
    with ctx.store.lock:
        fitted.model, fitted.n_train_rows, fitted.n_train_cols = model, rows, cols
        fitted.status, fitted.finished = "completed", time.monotonic()


def _fail(ctx: Context, fitted: FittedSet, message: str, code: str | None, charged: bool) -> None:
    if charged:  # a failed Thinking fit costs no thinking quota
        ctx.store.refund_thinking_fit(fitted.owner)
    with ctx.store.lock:
        fitted.status, fitted.finished = "failed", time.monotonic()
        fitted.error, fitted.error_code = message, code


def _finish(ctx: Context, fitted: FittedSet, upload: Upload, delay: float, charged: bool) -> None:
    """Run a fit to its end, recording success or failure on the fitted set (background use).

    The outcome shows `delay` seconds after the submission (or when the baseline is done, if
    it takes longer): the baseline's own time counts towards the delay."""
    deadline = fitted.created + delay
    started = time.monotonic()
    try:
        model, rows, cols = _fit_model(ctx, upload, fitted.task)
    except HTTPFail as fail:
        time.sleep(max(deadline - time.monotonic(), 0.0))
        body = fail.response.body if isinstance(fail.response.body, dict) else {}
        message = str(body.get("message", "fit failed"))
        _fail(ctx, fitted, message, body.get("error_code"), charged)
        return
    except Exception as exc:
        time.sleep(max(deadline - time.monotonic(), 0.0))
        # Handlers never see the raw token, so the exception text cannot carry one.
        sys.stderr.write(f"standin: background fit crashed: {exc!r}\n")
        _fail(ctx, fitted, f"Internal error: {type(exc).__name__}", "INTERNAL", charged)
        return
    # The baseline's time counts towards the delay: the rest of it is the fit stage.
    fitted.transform_s = time.monotonic() - started
    fitted.work_s = max(delay - fitted.transform_s, 0.0)
    time.sleep(max(deadline - time.monotonic(), 0.0))
    _complete(ctx, fitted, model, rows, cols)


def _work_delay(ctx: Context, req: Request, fitted: FittedSet) -> float:
    """The simulated upstream time of this fit; records the Thinking part on the fit."""
    cfg = ctx.config.get()
    if fitted.options.thinking:
        fitted.thinking_s = thinking_delay(cfg, fitted.options)
    return fit_work_delay(cfg, req) + (fitted.thinking_s or 0.0)


def _start_background(
    ctx: Context, req: Request, upload: Upload, options: FitOptions, mode: str, charged: bool
) -> FittedSet:
    fitted = FittedSet(id=new_id(), owner=req.owner, upload_id=upload.id, options=options)
    fitted.mode = mode
    req.refs.append(fitted.id)
    fitted.pending_polls_owed = 1 if ctx.config.get().fit_mode == "pending" else 0
    delay = _work_delay(ctx, req, fitted)
    ctx.store.add_fitted(fitted)
    threading.Thread(
        target=_finish,
        args=(ctx, fitted, upload, delay, charged),
        name="standin-fit",
        daemon=True,
    ).start()
    return fitted


def _accept(ctx: Context, req: Request) -> tuple[FitOptions, Upload, bool]:
    """Validate a fit request and charge a Thinking fit; returns options, upload, charged."""
    body = req.json()
    options = parse_fit_options(body, ctx.config.get().thinking_max_timeout_s)
    upload = _train_upload(ctx, req, body)
    charged = charge_thinking_fit(ctx.config.get(), ctx.store, req.owner, options)
    return options, upload, charged


def fit(ctx: Context, req: Request) -> Response:
    """POST /tabpfn/fit: fit now (sync mode) or answer pending and fit in the background."""
    options, upload, charged = _accept(ctx, req)
    if ctx.config.get().fit_mode == "pending":
        fitted = _start_background(ctx, req, upload, options, "sync", charged)
        return ok(_fit_body(fitted, "pending"))
    fitted = FittedSet(id=new_id(), owner=req.owner, upload_id=upload.id, options=options)
    req.refs.append(fitted.id)
    try:
        fitted.work_s = _work_delay(ctx, req, fitted)
        time.sleep(fitted.work_s)
        started = time.monotonic()
        model, rows, cols = _fit_model(ctx, upload, options.task)
    except BaseException:
        if charged:
            ctx.store.refund_thinking_fit(req.owner)
        raise
    fitted.transform_s = time.monotonic() - started
    _complete(ctx, fitted, model, rows, cols)
    ctx.store.add_fitted(fitted)
    return ok(_fit_body(fitted, "completed"))


def _fit_body(fitted: FittedSet, status: str) -> dict[str, Any]:
    return {"fitted_train_set_id": fitted.id, "status": status, "timings": fitted.timings()}


def submit_fit_job(ctx: Context, req: Request) -> Response:
    """POST /tabpfn/submit_fit_job: accept the job and fit in the background."""
    options, upload, charged = _accept(ctx, req)
    fitted = _start_background(ctx, req, upload, options, "async", charged)
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
                "timings": fitted.timings() if done else {"elapsed_s": _pending_elapsed(fitted)},
            }
        )


def _pending_elapsed(fitted: FittedSet) -> float:
    return round(time.monotonic() - fitted.created, 6)
