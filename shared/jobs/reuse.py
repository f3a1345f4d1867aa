"""Fit reuse and the prediction cache: the same work twice costs one upstream call.

- **Fit reuse.** A fit is identified by its `fit_key`: the content hash of the stored
  training payload, the task and the options. A new fit whose key equals that of an earlier
  *ready* model of the same user, fitted under the TabPFN token the user holds now (the
  token's fingerprint is recorded when a fit is submitted), takes over that model's
  upstream fit: no upload, no fit, no quota spent. `reuse: false` on the fit opts out; a
  refit reuses only when it asks to (`"reuse": true`): its point is to fit again.
- **Prediction cache.** A prediction is identified by its `cache_key`: the model's upstream
  fit, the content hash of the rows, the output options. A new prediction with the key of an
  earlier *succeeded* prediction of the same model, still within retention, is answered with
  that stored result, marked `cached`. A refit changes the upstream fit, so it changes every
  key: a cached answer always comes from the model as it is now. `cache: false` opts out.

Keys are SHA-256 over canonical JSON, so options given in another order are the same.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.models import Job, JobStatus, Model, ModelStatus


def _digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def fit_key(payload_sha256: str, task: str, config: dict[str, Any]) -> str:
    """What a fit is made from: data, task and options (defaults left out)."""
    return _digest({"data": payload_sha256, "task": task, "config": config})


def cache_key(train_set_uid: str, payload_sha256: str, params: dict[str, Any]) -> str:
    """What a prediction is: the fit it uses, the rows, and the options that shape its output."""
    options = {
        "output_type": params.get("output_type"),
        "quantiles": params.get("quantiles"),
        "config": params.get("config") or {},
    }
    return _digest({"fit": train_set_uid, "rows": payload_sha256, "options": options})


def reusable_model(
    session: Session,
    *,
    user_id: uuid.UUID,
    key: str,
    token_fingerprint: str,
    exclude_model_id: uuid.UUID | None,
) -> Model | None:
    """The newest ready model of this user fitted from the same key under the same token."""
    statement = (
        select(Model)
        .where(
            Model.user_id == user_id,
            Model.status == ModelStatus.READY,
            Model.fit_key == key,
            Model.fitted_token_fingerprint == token_fingerprint,
            Model.train_set_uid.is_not(None),
        )
        .order_by(Model.fitted_at.desc())
        .limit(1)
    )
    if exclude_model_id is not None:
        statement = statement.where(Model.id != exclude_model_id)
    return session.scalars(statement).first()


def cached_prediction(session: Session, *, model_id: uuid.UUID, key: str) -> Job | None:
    """The newest succeeded prediction of this model with the same cache key."""
    return session.scalars(
        select(Job)
        .where(
            Job.model_id == model_id,
            Job.cache_key == key,
            Job.status == JobStatus.SUCCEEDED,
            Job.result.is_not(None),
        )
        .order_by(Job.finished_at.desc())
        .limit(1)
    ).first()


def refingerprint(session: Session, user_id: uuid.UUID, old: str, new: str) -> None:
    """The same token got a new fingerprint (SECRET_KEY rotated): the user's models fitted
    under it follow, so they stay reusable."""
    if old != new:
        session.execute(
            update(Model)
            .where(Model.user_id == user_id, Model.fitted_token_fingerprint == old)
            .values(fitted_token_fingerprint=new)
        )
