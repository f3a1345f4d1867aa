"""Declarative base: constraint naming convention, timezone-aware times, JSONB, native UUIDs."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Enum, MetaData, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: DateTime(timezone=True),
        uuid.UUID: Uuid(),
        # none_as_null: a Python None is SQL NULL, not the JSON value `null`.
        dict[str, Any]: JSONB(none_as_null=True),
        list[Any]: JSONB(none_as_null=True),
    }


def str_enum(enum: type[StrEnum]) -> Enum:
    """Store a StrEnum as its value in a VARCHAR (no native PG enum: adding states stays cheap)."""
    return Enum(
        enum,
        native_enum=False,
        length=20,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def new_id() -> uuid.UUID:
    """Ids are generated in Python so they are known before the insert."""
    return uuid.uuid4()


class CreatedAtMixin:
    """A server-stamped creation time."""

    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
