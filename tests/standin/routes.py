"""Route table and dispatch: log, inject bursts, authenticate, apply switches, then handle."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import account, admin, fitting, predicting, uploads
from .context import Context
from .faults import Op, authenticate, request_latency
from .wire import HTTPFail, Request, Response, error

Handler = Callable[[Context, Request], Response]


@dataclass(frozen=True)
class Route:
    """A protocol route: its handler, what it does (for switches) and whether it needs a token."""

    handler: Handler
    op: Op
    auth: bool


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/"): Route(account.root, "public", auth=False),
    ("GET", "/protected/"): Route(account.protected, "auth", auth=True),
    ("GET", "/retrieve_greeting_messages/"): Route(account.greeting_messages, "public", auth=False),
    ("GET", "/tabpfn/get_settings"): Route(account.get_settings, "public", auth=False),
    ("POST", "/tabpfn/prepare_train_set_upload"): Route(
        uploads.prepare_train_set_upload, "prepare", auth=True
    ),
    ("POST", "/tabpfn/fit"): Route(fitting.fit, "fit", auth=True),
    ("POST", "/tabpfn/submit_fit_job"): Route(fitting.submit_fit_job, "submit", auth=True),
    ("POST", "/tabpfn/get_fit_status"): Route(fitting.get_fit_status, "status", auth=True),
    ("POST", "/tabpfn/prepare_test_set_upload"): Route(
        uploads.prepare_test_set_upload, "prepare", auth=True
    ),
    ("POST", "/tabpfn/predict"): Route(predicting.predict, "predict", auth=True),
    ("POST", "/get_api_usage/"): Route(account.get_api_usage, "auth", auth=True),
    ("POST", "/tabpfn/estimate_cost"): Route(account.estimate_cost, "auth", auth=True),
    ("DELETE", "/delete_dataset/"): Route(account.delete_dataset, "auth", auth=True),
    ("DELETE", "/delete_all_datasets/"): Route(account.delete_all_datasets, "auth", auth=True),
}
KNOWN_PATHS = frozenset(path for _, path in ROUTES)
STORAGE_ROUTE = Route(uploads.storage_put, "storage", auth=False)


def _lookup(req: Request) -> Route:
    if req.path.startswith(uploads.STORAGE_PREFIX):
        if req.method != "PUT":
            raise HTTPFail(error(405, "Method not allowed"))
        return STORAGE_ROUTE
    route = ROUTES.get((req.method, req.path))
    if route is not None:
        return route
    if req.path in KNOWN_PATHS:
        raise HTTPFail(error(405, "Method not allowed"))
    raise HTTPFail(error(404, "Not found"))


def _route(ctx: Context, req: Request) -> Response:
    # Bursts model infrastructure failures, so they hit before auth or any work.
    if ctx.config.take_burst("drop", req.path, req.token_id) is not None:
        return Response(drop=True)
    burst = ctx.config.take_burst("fail", req.path, req.token_id)
    if burst is not None:
        return error(burst.status, f"Injected failure (HTTP {burst.status})", "INJECTED_FAILURE")
    route = _lookup(req)
    if route.auth:
        authenticate(req)
    cfg = ctx.config.get()
    forced = ctx.faults.switch_response(cfg, ctx.store, req, route.op)
    if forced is not None:
        return forced
    latency = request_latency(cfg, route.op) + cfg.path_delays.get(req.path, 0.0)
    if latency > 0:
        time.sleep(latency)  # no lock is held here, so concurrent requests overlap
    return route.handler(ctx, req)


def dispatch(ctx: Context, req: Request) -> Response:
    """Answer one request; every non-admin request is logged with the status it got."""
    if admin.is_admin_path(req.path):
        return admin.handle(ctx, req)
    seq = ctx.store.log_call(req.method, req.path, req.token_id)
    try:
        response = _route(ctx, req)
    except HTTPFail as fail:
        response = fail.response
    except Exception as exc:
        # Handlers never see the raw token, so the exception text cannot carry one.
        sys.stderr.write(f"standin: internal error in {req.method} {req.path}: {exc!r}\n")
        response = error(500, f"Internal stand-in error: {type(exc).__name__}", "INTERNAL")
    ctx.store.set_call_status(seq, None if response.drop else response.status, req.refs)
    return response
