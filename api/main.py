"""The FastAPI application: `uvicorn api.main:app`.

`create_app(settings)` builds an app around one `AppContext` (engine, Redis, publisher);
tests pass their own settings. The module attribute `app` is built on first access, so
importing this module never reads the environment by itself.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.context import AppContext
from api.errors import register_error_handlers
from api.middleware import RequestContextMiddleware
from api.openapi_document import install, operation_id
from api.proxies import ForwardedClientMiddleware, TrustedProxies, check_uvicorn_agrees
from api.routes import auth, jobs, meta, metrics, models, usage, users
from api.schemas.auth import KeyIn, SetupIn, TokenIn
from api.schemas.jobs import FitBody, PredictBody, RefitBody
from shared.config import Settings, get_settings
from shared.jobs.result_schemas import JobResultFile
from shared.logs import setup_logging
from shared.metrics import observe_request
from shared.version import __version__

# `validatorUrl: None`: Swagger UI would otherwise send the document to an outside validator.
SWAGGER_UI = {"validatorUrl": None, "persistAuthorization": True, "displayRequestDuration": True}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: logging, resources, middleware, error handlers and routes."""
    settings = settings or get_settings()
    setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT, label="api")
    context = AppContext.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        context.close()

    # /docs and /redoc load Swagger UI and ReDoc from this service (fastapi-offline ships
    # them), so the docs work offline and behind firewalls; no page names another host.
    app = FastAPIOffline(
        title="tabpfn-api",
        version=__version__,
        summary="TabPFN fits and predictions as background jobs, from any language.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        swagger_ui_parameters=SWAGGER_UI,
    )
    app.state.context = context
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.MAX_UPLOAD_BYTES,
        small_body_bytes=settings.MAX_SMALL_BODY_BYTES,
        observer=observe_request,
    )
    # Outermost: every later layer (limits, logs) sees the client trusted proxies named.
    app.add_middleware(
        ForwardedClientMiddleware, trusted=TrustedProxies(settings.FORWARDED_ALLOW_IPS)
    )
    register_error_handlers(app)
    app.include_router(meta.router)
    app.include_router(metrics.router)
    for router in (auth.router, users.router, models.router, jobs.router, usage.router):
        app.include_router(router)
    install(app, [FitBody, PredictBody, RefitBody, SetupIn, KeyIn, TokenIn, JobResultFile])
    return app


def __getattr__(name: str) -> FastAPI:
    """Build `app` lazily for `uvicorn api.main:app` (PEP 562).

    Under uvicorn, first check that uvicorn's proxy trust is no wider than ours (it rewrites
    the client address before the app sees it; see `api.proxies`)."""
    if name == "app":
        settings = get_settings()
        if "uvicorn" in sys.modules:
            check_uvicorn_agrees(TrustedProxies(settings.FORWARDED_ALLOW_IPS))
        application = create_app(settings)
        globals()["app"] = application
        return application
    raise AttributeError(name)
