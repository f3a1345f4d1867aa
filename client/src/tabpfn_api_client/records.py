"""Typed views of the service's JSON: Job, Model, Page, keys, usage, predictions.

Each record keeps the fields this client knows and the whole object as `raw`, so fields the
service adds later (a job's `progress`, `cached`, `reused_from`, …) are never lost and never
break parsing. Values the client does not know (a new model status, a new error code) stay
plain strings for the same reason. Secrets are left out of every `repr`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
Json = dict[str, Any]

FINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (with `Z` accepted on every Python), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class JobFailure:
    """Why a job failed (or why its last attempt did, while it is queued again)."""

    code: str
    message: str


@dataclass(frozen=True)
class Job:
    """A fit or predict job. `progress` is the service's progress report when it sends one."""

    id: str
    kind: str
    status: str
    model_id: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: JobFailure | None
    result: Json | None
    progress: Json | None
    links: dict[str, str | None]
    raw: Json = field(repr=False, compare=False)

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: Json) -> Job:
        error = data.get("error")
        failure = (
            JobFailure(str(error.get("code", "")), str(error.get("message", "")))
            if isinstance(error, dict)
            else None
        )
        result, progress, links = data.get("result"), data.get("progress"), data.get("links")
        return cls(
            id=str(data["id"]),
            kind=str(data.get("kind", "")),
            status=str(data["status"]),
            model_id=_str_or_none(data.get("model_id")),
            created_at=parse_time(data.get("created_at")),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
            attempts=int(data.get("attempts") or 0),
            error=failure,
            result=result if isinstance(result, dict) else None,
            progress=progress if isinstance(progress, dict) else None,
            links=dict(links) if isinstance(links, dict) else {},
            raw=data,
        )


@dataclass(frozen=True)
class Model:
    """A model: `pending` while its fit runs, then `ready` (or `failed`, or others later)."""

    id: str
    name: str | None
    task: str
    status: str
    n_samples: int
    n_features: int
    feature_names: list[str] | None
    classes: list[Any] | None
    config: Json
    created_at: datetime | None
    fitted_at: datetime | None
    fit_job_id: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Model:
        names, classes = data.get("feature_names"), data.get("classes")
        return cls(
            id=str(data["id"]),
            name=_str_or_none(data.get("name")),
            task=str(data.get("task", "")),
            status=str(data.get("status", "")),
            n_samples=int(data.get("n_samples") or 0),
            n_features=int(data.get("n_features") or 0),
            feature_names=[str(n) for n in names] if isinstance(names, list) else None,
            classes=list(classes) if isinstance(classes, list) else None,
            config=dict(data.get("config") or {}),
            created_at=parse_time(data.get("created_at")),
            fitted_at=parse_time(data.get("fitted_at")),
            fit_job_id=_str_or_none(data.get("fit_job_id")),
            raw=data,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int
    page: int
    page_size: int
    total_pages: int

    @classmethod
    def from_json(cls, data: Json, item: Callable[[Json], T]) -> Page[T]:
        return cls(
            items=[item(entry) for entry in data.get("items", [])],
            total=int(data.get("total", 0)),
            page=int(data.get("page", 1)),
            page_size=int(data.get("page_size", 0)),
            total_pages=int(data.get("total_pages", 0)),
        )


@dataclass(frozen=True)
class SetupResult:
    """What `POST /auth/setup` returns once: store `api_key` (and `webhook_secret`)."""

    user_id: str
    key_id: str
    api_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)

    @classmethod
    def from_json(cls, data: Json) -> SetupResult:
        return cls(
            user_id=str(data["user_id"]),
            key_id=str(data["key_id"]),
            api_key=str(data["api_key"]),
            webhook_secret=str(data["webhook_secret"]),
        )


@dataclass(frozen=True)
class ApiKey:
    """An API key's public facts."""

    key_id: str
    name: str | None
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_json(cls, data: Json) -> ApiKey:
        return cls(
            key_id=str(data["key_id"]),
            name=_str_or_none(data.get("name")),
            created_at=parse_time(data.get("created_at")),
            last_used_at=parse_time(data.get("last_used_at")),
            revoked_at=parse_time(data.get("revoked_at")),
        )


@dataclass(frozen=True)
class NewApiKey:
    """A key just issued: `api_key` is shown this once."""

    key: ApiKey
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class User:
    """Your account, and the key this request used."""

    id: str
    created_at: datetime | None
    updated_at: datetime | None
    current_key_id: str

    @classmethod
    def from_json(cls, data: Json) -> User:
        return cls(
            id=str(data["id"]),
            created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")),
            current_key_id=str(data.get("current_key_id", "")),
        )


@dataclass(frozen=True)
class Usage:
    """Your TabPFN usage (None when the TabPFN service could not be asked) and job counts."""

    tabpfn: Json | None
    jobs: dict[str, int]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Usage:
        tabpfn = data.get("tabpfn")
        jobs = data.get("jobs") or {}
        return cls(
            tabpfn=tabpfn if isinstance(tabpfn, dict) else None,
            jobs={str(k): int(v) for k, v in jobs.items()},
            raw=data,
        )


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery attempt."""

    id: str
    event: str
    attempt: int
    status: str
    url: str
    response_code: int | None
    error: str | None
    attempted_at: datetime | None
    delivered_at: datetime | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Delivery:
        code = data.get("response_code")
        return cls(
            id=str(data["id"]),
            event=str(data.get("event", "")),
            attempt=int(data.get("attempt") or 0),
            status=str(data.get("status", "")),
            url=str(data.get("url", "")),
            response_code=int(code) if code is not None else None,
            error=_str_or_none(data.get("error")),
            attempted_at=parse_time(data.get("attempted_at")),
            delivered_at=parse_time(data.get("delivered_at")),
            raw=data,
        )


@dataclass(frozen=True)
class Health:
    """`GET /health`: `ok`, or `degraded` with the failing check named in `checks`."""

    status: str
    checks: dict[str, str]

    @classmethod
    def from_json(cls, data: Json) -> Health:
        checks = data.get("checks") or {}
        return cls(status=str(data.get("status", "")), checks={**checks})


@dataclass(frozen=True)
class Prediction:
    """A prediction job's result: one entry per input row, in input order.

    `preds`/`mean`/`median`/`mode`: a label or a number per row; `probas`: one probability
    per class in `classes` order; `quantiles`: one value per quantile in `quantiles` order."""

    output_type: str
    predictions: list[Any]
    classes: list[Any] | None
    quantiles: list[float] | None

    @classmethod
    def from_json(cls, data: Json) -> Prediction:
        classes, quantiles = data.get("classes"), data.get("quantiles")
        return cls(
            output_type=str(data.get("output_type", "")),
            predictions=list(data.get("predictions") or []),
            classes=list(classes) if isinstance(classes, list) else None,
            quantiles=[float(q) for q in quantiles] if isinstance(quantiles, list) else None,
        )

    def to_numpy(self) -> np.ndarray[Any, Any]:
        """The predictions as an array: (n,) for labels and numbers, (n, k) otherwise."""
        if self.output_type in ("probas", "quantiles"):
            return np.asarray(self.predictions, dtype=np.float64)
        return np.asarray(self.predictions)
