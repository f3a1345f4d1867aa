"""One page of a user's rows: the count, the slice, and each row rendered for the response."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from api.schemas.common import Page

RowT = TypeVar("RowT")
ItemT = TypeVar("ItemT")


def paginate(
    session: Session,
    model: type[RowT],
    *,
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any],
    page: int,
    page_size: int,
    render: Callable[[RowT], ItemT],
) -> Page[ItemT]:
    """`page` of the rows of `model` matching `where` (always scoped by the caller)."""
    total = session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    rows = session.scalars(
        select(model)
        .where(*where)
        .order_by(*order_by)
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return Page.of([render(row) for row in rows], total=total, page=page, page_size=page_size)
