"""`Annotated` dependency aliases, so routes stay a few lines long."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.context import AppContext
from shared.config import Settings


def get_context(request: Request) -> AppContext:
    """The process-wide resources of the app serving this request."""
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_settings_dep(context: ContextDep) -> Settings:
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(context: ContextDep) -> Iterator[Session]:
    """One session per request. Routes commit explicitly: never commit in this teardown,
    which since FastAPI 0.118 runs after the response is sent."""
    with context.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
