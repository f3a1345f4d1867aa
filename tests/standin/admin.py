"""Admin routes (runtime config, state reset, forgetting fits) and the request, fit and predict
logs, outside the TabPFN protocol."""

from __future__ import annotations

from .config import ConfigError
from .context import Context
from .wire import HTTPFail, Request, Response, error, ok

ADMIN_PREFIX = "/_admin/"
CALLS_PATH = "/_calls"
FITS_PATH = "/_fits"
PREDICTS_PATH = "/_predicts"


def is_admin_path(path: str) -> bool:
    """Admin and log routes are never logged, delayed, faulted or authenticated."""
    return path.startswith(ADMIN_PREFIX) or path in (CALLS_PATH, FITS_PATH, PREDICTS_PATH)


def handle(ctx: Context, req: Request) -> Response:
    """Dispatch an admin or request-log route."""
    try:
        if req.path == f"{ADMIN_PREFIX}config":
            return _config(ctx, req)
        if req.path == f"{ADMIN_PREFIX}state" and req.method == "DELETE":
            return _reset_state(ctx)
        if req.path == f"{ADMIN_PREFIX}fits" and req.method == "DELETE":
            return _forget_fits(ctx, req)
        if req.path == CALLS_PATH:
            return _calls(ctx, req)
        if req.path == FITS_PATH and req.method == "GET":
            return ok({"fits": ctx.store.fits()})
        if req.path == PREDICTS_PATH:
            return _predicts(ctx, req)
    except HTTPFail as fail:
        return fail.response
    return error(404, "Not found")


def _config(ctx: Context, req: Request) -> Response:
    if req.method == "GET":
        return ok(ctx.config.get().to_json())
    if req.method == "POST":
        try:
            return ok(ctx.config.update(req.json()).to_json())
        except ConfigError as exc:
            return error(400, str(exc), "INVALID_CONFIG")
    if req.method == "DELETE":
        return ok(ctx.config.reset().to_json())
    return error(405, "Method not allowed")


def _reset_state(ctx: Context) -> Response:
    """Forget all uploads, fitted sets, usage, flaky counters and every log."""
    ctx.store.reset()
    ctx.faults.reset()
    return ok({})


def _forget_fits(ctx: Context, req: Request) -> Response:
    """Lose the fitted sets (all, or `?token_id=`'s) as a restarted upstream would; uploads,
    usage and the logs stay. Predicts on a forgotten fit answer 404 NOT_FOUND."""
    owner = req.query.get("token_id") or None
    return ok({"forgotten_fitted_train_set_ids": ctx.store.forget_fits(owner)})


def _since(req: Request) -> int:
    since = req.query.get("since", "0")
    if not since.lstrip("-").isdigit():
        raise HTTPFail(error(400, "since must be an integer"))
    return int(since)


def _calls(ctx: Context, req: Request) -> Response:
    if req.method == "GET":
        return ok({"calls": ctx.store.calls(_since(req))})
    if req.method == "DELETE":
        ctx.store.clear_calls()
        return ok({})
    return error(405, "Method not allowed")


def _predicts(ctx: Context, req: Request) -> Response:
    if req.method == "GET":
        return ok({"predicts": ctx.store.predict_log.entries(_since(req))})
    if req.method == "DELETE":
        ctx.store.predict_log.clear()
        return ok({})
    return error(405, "Method not allowed")
