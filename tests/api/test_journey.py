"""The whole journey through real parts: setup → fit → poll → predict → poll → result."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from tests.standin.baseline import fit_baseline
from tests.support.builders import classification_data, fit_ready, register, wait_for_job
from tests.support.processes import ManagedProcess


def test_classification_journey(client: TestClient, worker: ManagedProcess) -> None:
    account = register(client)
    X, y, X_test, y_test = classification_data()
    fit_job = fit_ready(client, account, X, y)
    model_id = fit_job["model_id"]
    assert fit_job["result"]["classes"] == [0, 1]
    assert fit_job["attempts"] == 1

    response = client.post(
        f"/api/v1/models/{model_id}/predict",
        json={"features": X_test, "output_type": "probas"},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/v1/jobs/{response.json()['id']}"
    job = wait_for_job(client, account, response.json()["id"])
    assert job["status"] == "succeeded", job
    probas = np.array(job["result"]["predictions"])
    assert probas.shape == (len(X_test), 2)
    assert np.allclose(probas.sum(axis=1), 1)
    accuracy = float(np.mean(probas.argmax(axis=1) == np.array(y_test)))
    assert accuracy >= 0.9

    expected = fit_baseline(pd.DataFrame(X).rename(columns=str), np.array(y), "classification")
    reference = np.array(expected.predict(pd.DataFrame(X_test).rename(columns=str), "probas", None))
    assert np.allclose(probas, reference, atol=1e-6)
