"""Shapes shared by every resource: errors and pagination."""

from __future__ import annotations

import math
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

T = TypeVar("T")
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based page number.")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page (max 100).")]


class ErrorBody(BaseModel):
    """Every error: a stable code, a sentence saying what to fix, sometimes details."""

    code: str = Field(examples=["VALIDATION_ERROR"])
    message: str = Field(examples=["features[3]: row 3 has 4 values, expected 5."])
    details: Any | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int
    page: int
    page_size: int
    total_pages: int

    @classmethod
    def of(cls, items: list[T], *, total: int, page: int, page_size: int) -> Page[T]:
        return cls(
            items=items,
            total=total,
            page=page,
            page_size=page_size,
            total_pages=math.ceil(total / page_size) if total else 0,
        )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries documenting that these statuses return an ErrorBody."""
    return {status: {"model": ErrorBody} for status in statuses}
