"""Service-level endpoints: what this is, and whether it can work right now."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import ContextDep
from shared.version import SERVICE_NAME, __version__

logger = logging.getLogger(__name__)
router = APIRouter(tags=["service"])

CheckState = Literal["ok", "error"]


class ServiceInfo(BaseModel):
    name: str
    version: str
    docs: str
    openapi: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, CheckState]


@router.get("/", response_model=ServiceInfo, summary="What this service is")
def service_info() -> ServiceInfo:
    """Name, version and where the API documentation lives."""
    return ServiceInfo(
        name=SERVICE_NAME, version=__version__, docs="/docs", openapi="/openapi.json"
    )


@router.get(
    "/health",
    response_model=Health,
    summary="Whether the service can work right now",
    responses={503: {"model": Health, "description": "A dependency is down."}},
)
def health(context: ContextDep) -> JSONResponse:
    """200 when the database and the broker answer; 503 naming the failing check."""
    checks: dict[str, CheckState] = {"database": "ok", "broker": "ok"}
    try:
        with context.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        logger.warning("health: database check failed: %s", type(error).__name__)
        checks["database"] = "error"
    try:
        context.redis.ping()
    except Exception as error:
        logger.warning("health: broker check failed: %s", type(error).__name__)
        checks["broker"] = "error"
    healthy = all(state == "ok" for state in checks.values())
    body = Health(status="ok" if healthy else "degraded", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
