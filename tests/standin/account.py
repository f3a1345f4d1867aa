"""Account routes: connectivity, token check, settings, usage, cost quotes and data deletion."""

from __future__ import annotations

from typing import Any

from .config import (
    ASYNC_POLL_TIMEOUT_SECS,
    ASYNC_USE_ABOVE_TRAINSET_SIZE_BYTES,
    DATASET_MAX_SIZE_BYTES,
    DEFAULT_MODEL_VERSION,
    MODEL_VERSIONS,
)
from .context import Context
from .faults import next_reset_time, usage_limit
from .wire import HTTPFail, Request, Response, error, ok

PRICING_VERSION = "standin-cells-1"
DEFAULT_N_ESTIMATORS = 8


def root(ctx: Context, req: Request) -> Response:
    """GET /: the client's connectivity probe."""
    return ok({})


def protected(ctx: Context, req: Request) -> Response:
    """GET /protected/: reached only with a valid token (auth runs before the handler)."""
    return ok({})


def greeting_messages(ctx: Context, req: Request) -> Response:
    """GET /retrieve_greeting_messages/: nothing to greet with."""
    return ok({"messages": []})


def settings_body(ctx: Context) -> dict[str, Any]:
    """The GetSettingsResponse: the configured limits for every model version the client knows."""
    limits = dict(ctx.config.get().limits)
    return {
        "default_model_version": DEFAULT_MODEL_VERSION,
        "max_model_limit": limits,
        "model_limits": {version: dict(limits) for version in MODEL_VERSIONS},
        "dataset_max_size_bytes": DATASET_MAX_SIZE_BYTES,
        "async_settings": {
            "use_above_trainset_size_bytes": ASYNC_USE_ABOVE_TRAINSET_SIZE_BYTES,
            "poll_timeout_secs": ASYNC_POLL_TIMEOUT_SECS,
        },
    }


def get_settings(ctx: Context, req: Request) -> Response:
    """GET /tabpfn/get_settings: no auth, as the client sends it without an explicit token."""
    return ok(settings_body(ctx))


def get_api_usage(ctx: Context, req: Request) -> Response:
    """POST /get_api_usage/: cells metered for this token, -1 meaning unlimited."""
    current, limit = usage_limit(ctx.config.get(), req, ctx.store)
    return ok({"current_usage": current, "usage_limit": limit, "reset_time": next_reset_time()})


def _count(body: dict[str, Any], name: str, *, required: bool) -> int:
    value = body.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HTTPFail(error(422, f"Field {name!r} must be a non-negative integer"))
    return value


def estimate_cost(ctx: Context, req: Request) -> Response:
    """POST /tabpfn/estimate_cost: quote in cells, the unit the stand-in meters usage in."""
    body = req.json()
    train_rows = _count(body, "train_rows", required=True)
    raw_columns = _count(body, "raw_columns", required=True)
    test_rows = _count(body, "test_rows", required=False)
    inputs = {
        "train_rows": train_rows,
        "raw_columns": raw_columns,
        "test_rows": test_rows,
        "model_version": body.get("model_version") or DEFAULT_MODEL_VERSION,
        "operation": body.get("operation") or "predict",
        "n_estimators": body.get("n_estimators") or DEFAULT_N_ESTIMATORS,
        "thinking_effort": body.get("thinking_effort"),
    }
    return ok(
        {
            "estimated_cost": (train_rows + test_rows) * raw_columns,
            "pricing_version": PRICING_VERSION,
            "inputs": inputs,
        }
    )


def delete_dataset(ctx: Context, req: Request) -> Response:
    """DELETE /delete_dataset/?dataset_uid=: drop a dataset or fitted set and its dependants."""
    uid = req.query.get("dataset_uid", "")
    deleted = ctx.store.delete(uid, req.owner)
    if not deleted:
        return error(404, f"Dataset {uid} not found", "NOT_FOUND")
    return ok({"deleted_dataset_uids": deleted})


def delete_all_datasets(ctx: Context, req: Request) -> Response:
    """DELETE /delete_all_datasets/: drop everything this token owns."""
    return ok({"deleted_dataset_uids": ctx.store.delete_all(req.owner)})
