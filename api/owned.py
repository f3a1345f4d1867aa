"""Loading a user's job or model by id: 404 when it does not exist, 403 when it is not theirs."""

from __future__ import annotations

import uuid
from typing import Annotated, TypeVar

from fastapi import Depends

from api.auth import CurrentUserDep
from api.deps import SessionDep
from shared.errors import Forbidden, NotFound
from shared.models import Job, Model

OwnedT = TypeVar("OwnedT", Job, Model)


def _owned(
    session: SessionDep, current: CurrentUserDep, kind: type[OwnedT], object_id: uuid.UUID
) -> OwnedT:
    found = session.get(kind, object_id)
    noun = "job" if kind is Job else "model"
    # A large prediction's chunks are the service's own jobs, not the user's.
    if found is None or (isinstance(found, Job) and found.parent_job_id is not None):
        raise NotFound(f"No {noun} with id {object_id}.")
    if found.user_id != current.id:
        raise Forbidden(f"The {noun} {object_id} belongs to another user.")
    return found


def owned_job(job_id: uuid.UUID, session: SessionDep, current: CurrentUserDep) -> Job:
    return _owned(session, current, Job, job_id)


def owned_model(model_id: uuid.UUID, session: SessionDep, current: CurrentUserDep) -> Model:
    return _owned(session, current, Model, model_id)


OwnedJob = Annotated[Job, Depends(owned_job)]
OwnedModel = Annotated[Model, Depends(owned_model)]
