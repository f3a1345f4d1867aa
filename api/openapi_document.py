"""The OpenAPI document (`/openapi.json`), finished so that a generator can trust it.

FastAPI's generated document is completed here, once, when first asked for:

- the `info.description` (`openapi_intro.md`: auth, polling, `Prefer: wait`, webhooks,
  idempotency, errors) and a description per tag;
- an HTTP bearer security scheme, required by every operation whose route depends on the
  API-key dependency (`api.auth.current_user`), and by no other: found in the route's
  dependency tree, so a new route cannot forget it;
- no phantom `422 HTTPValidationError`: FastAPI documents one for every route with
  parameters, but this API answers invalid input with `400 VALIDATION_ERROR` (its routes
  document that, with the codes each can answer); the only real 422 is
  `IDEMPOTENCY_KEY_REUSED`, which the job-creating routes declare themselves;
- `500 INTERNAL_ERROR` on every operation (any of them can meet a bug);
- the Pydantic models of bodies the routes parse themselves (`api.openapi`).

Operation ids are the route functions' names (`get_job`, `fit_model`, ...), so generated
clients read well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel

from api.auth import current_user
from api.openapi import REF
from api.schemas.errors import ErrorCode, error_response

SECURITY_SCHEME = "ApiKey"
INTRO = (Path(__file__).parent / "openapi_intro.md").read_text(encoding="utf-8")
TAGS = [
    {"name": "service", "description": "What the service is and whether it works. Public."},
    {"name": "auth", "description": "Your API keys, stored TabPFN token and webhook secret."},
    {"name": "users", "description": "Your account."},
    {"name": "models", "description": "Fit models, predict with them, refit them."},
    {"name": "jobs", "description": "Follow, cancel and download the fits and predictions."},
    {"name": "usage", "description": "What you have used."},
]
_PHANTOM = "#/components/schemas/HTTPValidationError"
_METHODS = ("get", "put", "post", "delete", "patch")


def needs_key(dependant: Dependant) -> bool:
    """Whether a route (or any dependency of it) authenticates with the API key."""
    return any(sub.call is current_user or needs_key(sub) for sub in dependant.dependencies)


def operation_id(route: APIRoute) -> str:
    return route.name


def documented_routes(app: FastAPI) -> dict[tuple[str, str], RouteContext]:
    """Every route in the document, by (method, path) as the document writes them (routes
    of included routers with their prefixes applied)."""
    found: dict[tuple[str, str], RouteContext] = {}
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            for method in context.methods or ():
                found[(method.lower(), str(context.path_format))] = context
    return found


def _strip_phantom_422(operation: dict[str, Any]) -> None:
    response = operation.get("responses", {}).get("422")
    if response is not None and _PHANTOM in str(response):
        del operation["responses"]["422"]


def finish(schema: dict[str, Any], app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Complete FastAPI's document in place (see the module docstring)."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "tpk_<key id>_<secret>",
        "description": "Your API key, from POST /api/v1/auth/setup (or /auth/keys).",
    }
    secured = {
        (path, method)
        for (method, path), route in documented_routes(app).items()
        if needs_key(route.dependant)
    }
    internal = error_response(ErrorCode.INTERNAL_ERROR)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            _strip_phantom_422(operation)
            operation["responses"]["500"] = {
                "description": internal["description"],
                "content": {
                    "application/json": {
                        "schema": {"$ref": REF.format(model="ErrorBody")},
                        **internal["content"]["application/json"],
                    }
                },
            }
            if (path, method) in secured:
                operation["security"] = [{SECURITY_SCHEME: []}]
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for model in models:
        generated = model.model_json_schema(ref_template=REF)
        schemas.update(generated.pop("$defs", {}))
        schemas[model.__name__] = generated


def install(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Generate the document once, on first request, and keep it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=INTRO,
                routes=app.routes,
                tags=TAGS,
            )
            finish(schema, app, models)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
