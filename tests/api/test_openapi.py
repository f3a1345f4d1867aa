"""`/openapi.json` is a document a generator can trust: valid OpenAPI 3.1, a bearer scheme
exactly where a key is needed, the error responses each operation really answers (no
phantom 422), every error code in an enum, typed job results, true examples, summaries."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from api.body import read_body
from api.errors import FALLBACK_CODE, STATUS_CODES
from api.openapi_document import documented_routes, needs_key
from api.owned import owned_job, owned_model
from api.schemas.errors import CATALOGUE, ErrorCode
from api.schemas.jobs import CLASSIFICATION_OUTPUTS, REGRESSION_OUTPUTS
from shared.jobs.result_schemas import OUTPUT_TYPES
from shared.models import JobErrorCode

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {
    ("get", "/"),
    ("get", "/health"),
    ("get", "/api/v1/models/available"),
    ("post", "/api/v1/auth/setup"),
}
JOB_CREATING = {
    ("post", "/api/v1/models/fit"),
    ("post", "/api/v1/models/{model_id}/predict"),
    ("post", "/api/v1/models/{model_id}/refit"),
}
ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    served: dict[str, Any] = TestClient(app).get("/openapi.json").json()
    return served


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def depends_on(route: Any, call: Any) -> bool:
    def walk(dependant: Any) -> bool:
        return any(sub.call is call or walk(sub) for sub in dependant.dependencies)

    return walk(route.dependant)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_operation_is_summarised_described_and_named(document: dict[str, Any]) -> None:
    ids = []
    for method, path, operation in operations(document):
        ids.append(operation["operationId"])
        generated = operation["operationId"].replace("_", " ").title()
        assert operation.get("summary") and operation["summary"] != generated, (method, path)
        assert len(operation.get("description", "")) > 20, (method, path)
        assert operation.get("tags"), (method, path)
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z_]+", i) for i in ids), ids


def test_the_description_explains_the_essentials(document: dict[str, Any]) -> None:
    text = document["info"]["description"]
    for topic in (
        "Authorization: Bearer",
        "Retry-After",
        "Prefer: wait",
        "Preference-Applied",
        "callback_url",
        "webhook-signature",
        "Idempotency-Key",
        "IDEMPOTENCY_KEY_REUSED",
    ):
        assert topic in text, topic


def test_a_bearer_key_is_required_exactly_where_the_api_needs_one(
    document: dict[str, Any], app: FastAPI
) -> None:
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    client = TestClient(app, client=("203.0.113.77", 1))
    for method, path, operation in operations(document):
        url = path.format(**dict.fromkeys(re.findall(r"{(\w+)}", path), str(uuid.uuid4())))
        answer = client.request(method, url)
        if (method, path) in PUBLIC:
            assert "security" not in operation, (method, path)
            assert answer.status_code != 401, (method, path)
        else:
            assert operation["security"] == [{"ApiKey": []}], (method, path)
            assert answer.status_code == 401, (method, path, answer.text)
            assert "401" in operation["responses"], (method, path)
    assert {(m, p) for m, p, _ in operations(document)} >= PUBLIC


def test_no_phantom_validation_422(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for method, path, operation in operations(document):
        answer = operation["responses"].get("422")
        if (method, path) in JOB_CREATING:
            examples = answer["content"]["application/json"]["examples"]
            assert set(examples) == {"IDEMPOTENCY_KEY_REUSED"}
        else:
            assert answer is None, (method, path)


def test_error_responses_follow_what_each_route_can_answer(
    document: dict[str, Any], app: FastAPI
) -> None:
    by_route = documented_routes(app)
    for method, path, operation in operations(document):
        responses = operation["responses"]
        route = by_route[(method, path)]
        has_input = bool(
            _checked_params(route.dependant)
            or route.body_field is not None
            or depends_on(route, read_body)
        )
        if has_input:
            assert "400" in responses, (method, path)
        if depends_on(route, owned_job) or depends_on(route, owned_model):
            assert {"403", "404"} <= set(responses), (method, path)
        if needs_key(route.dependant):
            assert "401" in responses
        if route.body_field is not None or depends_on(route, read_body):
            assert "413" in responses, (method, path)
        if depends_on(route, read_body):
            assert {"415", "422", "429"} <= set(responses), (method, path)
        assert "500" in responses


def _checked_params(dependant: Any) -> list[Any]:
    """Query parameters, and path parameters that are more than any string (UUIDs)."""
    found = list(dependant.query_params) + [
        param for param in dependant.path_params if param.field_info.annotation is not str
    ]
    for sub in dependant.dependencies:
        found += _checked_params(sub)
    return found


def test_error_examples_are_true_for_their_status(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith("2") or (path, status) == ("/health", "503"):
                continue
            content = response["content"]["application/json"]
            assert content["schema"]["$ref"] == ERROR_REF, (method, path, status)
            assert content["examples"], (method, path, status)
            for code, example in content["examples"].items():
                assert CATALOGUE[ErrorCode(code)].status == int(status), (path, status, code)
                assert example["value"]["code"] == code
    enum = document["components"]["schemas"]["ErrorCode"]["enum"]
    assert set(enum) == {code.value for code in ErrorCode}


def _code_nodes(node: ast.AST) -> list[ast.expr | None]:
    """The expressions that hold an error code in this node, if it is a place codes go."""
    if isinstance(node, ast.keyword) and node.arg == "code":
        return [node.value]
    if isinstance(node, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == "default_code" for target in node.targets
    ):
        return [node.value]
    if isinstance(node, ast.Dict):
        return [
            item
            for key, item in zip(node.keys, node.values, strict=True)
            if isinstance(key, ast.Constant) and key.value == "code"
        ]
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "error_response":
        return list(node.args[1:2])
    return []


def _codes_in_source() -> set[str]:
    """Every literal error code in api/, shared/ and worker/: `code="..."`,
    `default_code = "..."`, `{"code": "..."}` and `error_response(status, "...")`."""
    found: set[str] = set()
    for folder in ("api", "shared", "worker"):
        for file in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                for value in _code_nodes(node):
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        found.add(value.value)
    return found


def test_every_error_code_in_the_code_base_is_in_the_enum() -> None:
    """A new code in the code but not in ErrorCode (or JobErrorCode, for a job's own
    error) fails here: add it to api/schemas/errors.py with its status and an example."""
    in_code = _codes_in_source() | set(STATUS_CODES.values()) | {FALLBACK_CODE}
    assert {"UNAUTHORIZED", "TOO_MANY_JOBS", "LIMIT_EXCEEDED", "RESULT_EXPIRED"} <= in_code
    documented = {code.value for code in ErrorCode} | {code.value for code in JobErrorCode}
    assert in_code - documented == set()
    assert set(CATALOGUE) == set(ErrorCode)


def test_job_results_are_typed_and_discriminated(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    result = schemas["JobOut"]["properties"]["result"]["anyOf"][0]["oneOf"]
    assert result[0] == {"$ref": "#/components/schemas/FitResult"}
    predictions = result[1]
    assert predictions["discriminator"]["propertyName"] == "output_type"
    mapping = predictions["discriminator"]["mapping"]
    every_output = set(CLASSIFICATION_OUTPUTS) | set(REGRESSION_OUTPUTS)
    assert set(mapping) == every_output == set(OUTPUT_TYPES)
    assert mapping["probas"].endswith("/ProbabilityPrediction")
    probas = schemas["ProbabilityPrediction"]["properties"]["predictions"]
    assert probas["anyOf"][0]["items"]["type"] == "array"
    assert "train_set_uid" in schemas["FitResult"]["required"]
    assert "kind" in schemas["FitResult"]["required"]
    job_error_code = schemas["JobError"]["properties"]["code"]
    assert job_error_code == {"$ref": "#/components/schemas/JobErrorCode"}
    assert "additionalProperties" not in str(schemas["JobOut"]["properties"]["result"])


def test_prefer_wait_is_documented_where_it_works(document: dict[str, Any]) -> None:
    for method, path in {*JOB_CREATING, ("get", "/api/v1/jobs/{job_id}")}:
        operation = document["paths"][path][method]
        names = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "Prefer" in names, path
        assert "Preference-Applied" in operation["responses"]["200"]["headers"], path
        if method == "post":
            assert {"200", "202"} <= set(operation["responses"])
            assert "Idempotency-Key" in names
