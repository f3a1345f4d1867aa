"""Stored datasets and large results: compressed Parquet in Postgres (DESIGN §5)."""

import uuid

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id, str_enum
from shared.models.enums import PayloadKind


class Payload(CreatedAtMixin, Base):
    """Bytes that never travel through Redis: a task gets a job id and loads these itself."""

    __tablename__ = "payloads"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[PayloadKind] = mapped_column(str_enum(PayloadKind))
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    rows: Mapped[int] = mapped_column(Integer)
    cols: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    # Deferred: listing or joining payload metadata must not drag megabytes along.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
