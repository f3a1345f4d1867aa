"""The contract, proven by a client generated from it: `openapi-python-client` builds a
package from the served `/openapi.json`, and that package (nothing hand-written) drives
setup → fit → wait → predict → result against the API under uvicorn, the session's worker
and the stand-in.

Everything is read through the generated models: the typed job result, the error body and
its code enum, the `Prefer`/`Idempotency-Key` header parameters, the bearer client for
secured operations. A regression in the document (an untyped result, a missing security
scheme, a wrong schema) breaks the generation, the import, the parsing or the asserts here.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support import secrets as secret_registry
from tests.support.api_server import ApiServer
from tests.support.builders import classification_data, new_token
from tests.support.processes import BIN, ManagedProcess, child_env

PACKAGE = "tabpfn_generated_client"


@pytest.fixture(scope="module")
def generated(api_server: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated package, imported (the generator runs as a subprocess)."""
    folder = tmp_path_factory.mktemp("generated")
    spec = folder / "openapi.json"
    spec.write_bytes(httpx.get(f"{api_server.url}/openapi.json", timeout=30).content)
    config = folder / "config.yml"
    config.write_text("post_hooks: []\n")
    run = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(folder / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env(None),
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The generator warns about every part of the document it could not turn into code.
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def part(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_generated_client_drives_setup_fit_wait_predict_result(
    generated: Any, api_server: ApiServer, worker: ManagedProcess
) -> None:
    client_module = part(generated, "client")
    models = part(generated, "models")
    setup = part(generated, "api.auth.setup")

    with client_module.Client(base_url=api_server.url, timeout=httpx.Timeout(90)) as anonymous:
        created = setup.sync_detailed(
            client=anonymous, body=models.SetupIn(tabpfn_token=new_token("generated"))
        )
    assert created.status_code == 201
    secret_registry.remember(created.parsed.api_key, "API key")
    secret_registry.remember(created.parsed.webhook_secret, "webhook secret")
    keyed = client_module.AuthenticatedClient(
        base_url=api_server.url, token=created.parsed.api_key, timeout=httpx.Timeout(90)
    )
    with keyed:
        journey(generated, keyed, api_server)


def journey(generated: Any, keyed: Any, api_server: ApiServer) -> None:
    client_module = part(generated, "client")
    models = part(generated, "models")
    fit_model = part(generated, "api.models.fit_model")
    predict = part(generated, "api.models.predict")
    get_job = part(generated, "api.jobs.get_job")
    get_job_result = part(generated, "api.jobs.get_job_result")

    X, y, X_test, y_test = classification_data(n_train=300)
    fitted = fit_model.sync_detailed(
        client=keyed,
        body=models.FitBody(task=models.Task.CLASSIFICATION, features=X, target=y),
        idempotency_key=str(uuid.uuid4()),
        prefer="wait=60",
    )
    assert fitted.status_code in (200, 202), fitted.content
    job = fitted.parsed
    assert isinstance(job, models.JobOut) and job.kind == models.JobKind.FIT
    while job.status not in (models.JobStatus.SUCCEEDED, models.JobStatus.FAILED):
        job = get_job.sync(job.id, client=keyed, prefer="wait=30")
    assert job.status == models.JobStatus.SUCCEEDED, job.error
    assert isinstance(job.result, models.FitResult)
    assert job.result.n_samples == 300 and sorted(job.result.classes) == [0, 1]

    predicted = predict.sync_detailed(
        job.model_id,
        client=keyed,
        body=models.PredictBody(
            features=X_test, output_type=models.PredictBodyOutputTypeType0.PROBAS
        ),
        prefer="wait=60",
    )
    assert predicted.status_code in (200, 202), predicted.content
    job = predicted.parsed
    while job.status not in (models.JobStatus.SUCCEEDED, models.JobStatus.FAILED):
        job = get_job.sync(job.id, client=keyed, prefer="wait=30")
    result = job.result
    assert isinstance(result, models.ProbabilityPrediction), result
    assert result.n_rows == len(X_test) and result.classes == [0, 1]
    probabilities = np.array(result.predictions)
    assert probabilities.shape == (len(X_test), 2)
    accuracy = np.mean(probabilities.argmax(axis=1) == np.array(y_test))
    assert accuracy >= 0.9

    downloaded = get_job_result.sync(job.id, client=keyed)
    assert isinstance(downloaded, models.ProbabilityPrediction)
    assert downloaded.predictions == result.predictions

    missing = get_job.sync_detailed(uuid.uuid4(), client=keyed)
    assert missing.status_code == 404
    assert missing.parsed.code == models.ErrorCode.NOT_FOUND
    with client_module.AuthenticatedClient(base_url=api_server.url, token="tpk_bad") as bad:
        refused = get_job.sync_detailed(job.id, client=bad)
    assert refused.status_code == 401 and refused.parsed.code == models.ErrorCode.UNAUTHORIZED


def test_the_generated_client_is_typed_as_the_contract_says(generated: Any) -> None:
    """The typed pieces a generator can only produce from a precise document."""
    models = part(generated, "models")
    assert {code.value for code in models.ErrorCode} >= {"UNAUTHORIZED", "TOO_MANY_JOBS"}
    assert {status.value for status in models.ModelStatus} == {
        "pending",
        "ready",
        "failed",
        "stale",
    }
    for name in ("LabelPrediction", "PointPrediction", "QuantilePrediction", "FullPrediction"):
        assert hasattr(models, name), name
    secured = Path(part(generated, "api.jobs.get_job").__file__).read_text()
    assert "client: AuthenticatedClient," in secured
