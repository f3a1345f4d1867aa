"""OpenAPI for bodies we parse ourselves (fit and predict read JSON or multipart directly;
the auth routes parse their small JSON after their checks).

Routes declare `request_body(...)` in `openapi_extra`; `install()` adds the referenced
Pydantic schemas to the document's components.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

REF = "#/components/schemas/{model}"


def request_body(json_model: type[BaseModel], form_fields: dict[str, str]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body and its multipart alternative."""
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "A CSV or Parquet file."}
    }
    properties.update(
        {name: {"type": "string", "description": text} for name, text in form_fields.items()}
    )
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=json_model.__name__)}},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": properties, "required": ["file"]}
                },
            },
        }
    }


def json_body(json_model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON-only body that the route parses itself (after the
    checks that guard it), with the model added by `install()`; optional when not `required`."""
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=json_model.__name__)}}
            },
        }
    }


def install(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Generate the schema once, with `models` added to its components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                generated = model.model_json_schema(ref_template=REF)
                components.update(generated.pop("$defs", {}))
                components[model.__name__] = generated
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
