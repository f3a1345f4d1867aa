"""`Client`: one typed method per endpoint of the tabpfn-api service.

Jobs: `fit`/`fit_file` and `predict`/`predict_file` answer the queued Job (or, with `wait=`,
the finished one when the service can hold the answer); `wait` follows a job to its end;
`prediction` gives a finished prediction's values. Every job-creating call sends a fresh
`Idempotency-Key` (or yours), the same on each of its retries, so a retried call never makes
a second job. Errors raise the classes in `tabpfn_api_client.errors`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from tabpfn_api_client import tables, waiting
from tabpfn_api_client._http import HttpCore, Sleep
from tabpfn_api_client.bodies import FileInput, json_body, multipart
from tabpfn_api_client.records import (
    ApiKey,
    Delivery,
    Health,
    Job,
    Model,
    NewApiKey,
    Page,
    Prediction,
    SetupResult,
    Usage,
    User,
)
from tabpfn_api_client.settings import resolve_api_key, resolve_base_url

API = "/api/v1"


class Client:
    """A client of one tabpfn-api service.

    `base_url` and `api_key` default to `TABPFN_SERVICE_URL` / `TABPFN_API_KEY`, then to the
    config file of `tabpfn-api setup`. `max_retries` bounds the retries of 429/503 answers
    and of failed connections; a `Retry-After` above `max_retry_wait` seconds is raised at
    once. `transport` and `sleep` are for tests and proxies."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.timeout = timeout
        self._core = HttpCore(
            resolve_base_url(base_url),
            resolve_api_key(api_key),
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            transport=transport,
            sleep=sleep,
        )

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def __repr__(self) -> str:  # never the key
        return f"Client(base_url={self.base_url!r})"

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> Any:
        return self._core.request("GET", path, params=params).json()

    # Service ----------------------------------------------------------------------------

    def health(self) -> Health:
        """`GET /health`: `ok`, or `degraded` naming the failing check (never raised)."""
        response = self._core.request("GET", "/health", auth=False, accept=frozenset({503}))
        return Health.from_json(response.json())

    def available_models(self) -> dict[str, list[str]]:
        """The TabPFN model names per task, for `config={"model_path": ...}`."""
        body = self.catalogue()
        return {
            task: [str(name) for name in body.get(task) or []]
            for task in ("classification", "regression")
        }

    def catalogue(self) -> dict[str, Any]:
        """`GET /models/available` whole: the names per task, what each model is, and the
        options the service offers (output types, Thinking efforts, fit modes)."""
        body: dict[str, Any] = self._core.request(
            "GET", f"{API}/models/available", auth=False
        ).json()
        return body

    # Account ----------------------------------------------------------------------------

    def setup(self, tabpfn_token: str, *, key_name: str | None = None) -> SetupResult:
        """Trade a TabPFN token for an API key (shown once); no API key needed."""
        content, headers = json_body({"tabpfn_token": tabpfn_token, "key_name": key_name})
        response = self._core.request(
            "POST", f"{API}/auth/setup", auth=False, content=content, headers=headers
        )
        return SetupResult.from_json(response.json())

    def list_keys(self, *, page: int = 1, page_size: int = 20) -> Page[ApiKey]:
        body = self._get(f"{API}/auth/keys", page=page, page_size=page_size)
        return Page.from_json(body, ApiKey.from_json)

    def create_key(self, name: str | None = None) -> NewApiKey:
        """Issue another API key (its secret is shown this once)."""
        content, headers = json_body({"name": name})
        body = self._core.request(
            "POST", f"{API}/auth/keys", content=content, headers=headers
        ).json()
        return NewApiKey(key=ApiKey.from_json(body), api_key=str(body["api_key"]))

    def revoke_key(self, key_id: str) -> None:
        self._core.request("DELETE", f"{API}/auth/keys/{key_id}")

    def replace_tabpfn_token(self, tabpfn_token: str) -> User:
        """Verify a new TabPFN token and store it in place of the old one."""
        content, headers = json_body({"tabpfn_token": tabpfn_token})
        response = self._core.request(
            "PUT", f"{API}/auth/tabpfn-token", content=content, headers=headers
        )
        return User.from_json(response.json())

    def rotate_webhook_secret(self) -> str:
        """A new webhook signing secret (shown this once)."""
        body = self._core.request("POST", f"{API}/auth/webhook-secret").json()
        return str(body["webhook_secret"])

    def me(self) -> User:
        return User.from_json(self._get(f"{API}/users/me"))

    def delete_me(self) -> None:
        """Delete your account and everything it owns."""
        self._core.request("DELETE", f"{API}/users/me")

    # Jobs: submit -----------------------------------------------------------------------

    def _submit(
        self,
        path: str,
        body: tuple[bytes, dict[str, str]],
        idempotency_key: str | None,
        wait: float | None,
    ) -> Job:
        content, headers = body
        headers = {**headers, "Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        timeout: httpx.Timeout | None = None
        if wait:
            hold = waiting.hold_seconds(wait)
            headers["Prefer"] = f"wait={hold}"
            timeout = httpx.Timeout(self.timeout, read=self.timeout + hold)
        response = self._core.request(
            "POST", path, content=content, headers=headers, timeout=timeout
        )
        return Job.from_json(response.json())

    def fit(
        self,
        features: Any,
        target: Any,
        *,
        task: str = "classification",
        feature_names: Sequence[str] | None = None,
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Queue a fit on rows (lists, an array or a DataFrame, whose column names are sent).

        `wait`: seconds the service may hold the answer until the job ends (`Prefer: wait`)."""
        names = list(feature_names) if feature_names is not None else tables.column_names(features)
        body = {
            "task": task,
            "features": tables.rows_of(features),
            "target": tables.values_of(target),
            "feature_names": names,
            "config": dict(config) if config else None,
            "name": name,
            "callback_url": callback_url,
        }
        return self._submit(f"{API}/models/fit", json_body(body), idempotency_key, wait)

    def fit_file(
        self,
        file: FileInput,
        *,
        target_column: str,
        task: str = "classification",
        filename: str | None = None,
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Queue a fit on a CSV (with a header) or Parquet file: a path, bytes or a binary file."""
        fields = {
            "task": task,
            "target_column": target_column,
            "config": dict(config) if config else None,
            "name": name,
            "callback_url": callback_url,
        }
        body = multipart(fields, file, filename)
        return self._submit(f"{API}/models/fit", body, idempotency_key, wait)

    def predict(
        self,
        model_id: str,
        features: Any,
        *,
        output_type: str | None = None,
        quantiles: Sequence[float] | None = None,
        config: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Queue a prediction on rows with the model's columns, in the fit's order."""
        body = {
            "features": tables.rows_of(features),
            "output_type": output_type,
            "quantiles": list(quantiles) if quantiles is not None else None,
            "config": dict(config) if config else None,
            "callback_url": callback_url,
        }
        path = f"{API}/models/{model_id}/predict"
        return self._submit(path, json_body(body), idempotency_key, wait)

    def predict_file(
        self,
        model_id: str,
        file: FileInput,
        *,
        filename: str | None = None,
        output_type: str | None = None,
        quantiles: Sequence[float] | None = None,
        config: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Queue a prediction on a CSV or Parquet file whose columns are the model's."""
        fields = {
            "output_type": output_type,
            "quantiles": list(quantiles) if quantiles is not None else None,
            "config": dict(config) if config else None,
            "callback_url": callback_url,
        }
        body = multipart(fields, file, filename)
        return self._submit(f"{API}/models/{model_id}/predict", body, idempotency_key, wait)

    # Jobs: follow -----------------------------------------------------------------------

    def get_job(self, job_id: str, *, wait: float | None = None) -> Job:
        """One job; with `wait`, the service may hold the answer until it ends."""
        return waiting.fetch(self._core, self.timeout, job_id, wait).job

    def wait(
        self,
        job: Job | str,
        *,
        timeout: float | None = None,
        on_update: Callable[[Job], None] | None = None,
        raise_on_failure: bool = True,
        max_hold: float = waiting.MAX_HOLD_S,
    ) -> Job:
        """Follow a job until it ends (`Prefer: wait`, else polling at `Retry-After`).

        `on_update` sees every state fetched; `max_hold` caps how long one request may be
        held (shorter for a livelier progress display). Raises JobFailedError /
        JobCanceledError (unless `raise_on_failure=False`) and WaitTimeoutError when
        `timeout` seconds pass first."""
        return waiting.wait(
            self._core,
            self.timeout,
            job,
            timeout_s=timeout,
            on_update=on_update,
            raise_on_failure=raise_on_failure,
            max_hold=max_hold,
        )

    def list_jobs(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> Page[Job]:
        body = self._get(f"{API}/jobs", status=status, kind=kind, page=page, page_size=page_size)
        return Page.from_json(body, Job.from_json)

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a queued or running job (ConflictError JOB_FINISHED if it already ended)."""
        return Job.from_json(self._core.request("POST", f"{API}/jobs/{job_id}/cancel").json())

    def job_result(self, job_id: str) -> Prediction:
        """A succeeded prediction's values (`GET /jobs/{id}/result?format=json`)."""
        return Prediction.from_json(self._get(f"{API}/jobs/{job_id}/result", format="json"))

    def job_result_file(self, job_id: str, *, format: str = "csv") -> bytes:
        """A succeeded job's result as the file the service serves (`csv` or `json`)."""
        path = f"{API}/jobs/{job_id}/result"
        return self._core.request("GET", path, params={"format": format}).content

    def prediction(self, job: Job) -> Prediction:
        """A finished prediction's values: from the job when inline, else downloaded."""
        result = job.result or {}
        if job.status == "succeeded" and result.get("predictions") is not None:
            return Prediction.from_json(result)
        return self.job_result(job.id)

    def list_deliveries(self, job_id: str, *, page: int = 1, page_size: int = 20) -> Page[Delivery]:
        body = self._get(f"{API}/jobs/{job_id}/deliveries", page=page, page_size=page_size)
        return Page.from_json(body, Delivery.from_json)

    # Models and usage -------------------------------------------------------------------

    def list_models(
        self, *, status: str | None = None, page: int = 1, page_size: int = 20
    ) -> Page[Model]:
        body = self._get(f"{API}/models", status=status, page=page, page_size=page_size)
        return Page.from_json(body, Model.from_json)

    def get_model(self, model_id: str) -> Model:
        return Model.from_json(self._get(f"{API}/models/{model_id}"))

    def refit(
        self,
        model_id: str,
        *,
        config: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Fit the model again from its stored data (a `stale` model becomes `ready`), with
        new TabPFN options when `config` is given; no upload."""
        body = {"config": dict(config) if config else None, "callback_url": callback_url}
        path = f"{API}/models/{model_id}/refit"
        return self._submit(path, json_body(body), idempotency_key, wait)

    def delete_model(self, model_id: str) -> None:
        """Delete a model; its unfinished jobs are canceled."""
        self._core.request("DELETE", f"{API}/models/{model_id}")

    def usage(self) -> Usage:
        return Usage.from_json(self._get(f"{API}/usage"))
