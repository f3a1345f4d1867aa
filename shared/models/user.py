"""Users and their API keys (DESIGN §5, §10)."""

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.models.base import Base, CreatedAtMixin, new_id


class User(CreatedAtMixin, Base):
    """One TabPFN account; found by the HMAC fingerprint of its token, never by decrypting rows."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    tabpfn_token_encrypted: Mapped[str] = mapped_column(Text)
    webhook_secret_encrypted: Mapped[str] = mapped_column(Text)
    # The secret replaced by the last rotation: deliveries are signed with it too for
    # WEBHOOK_SECRET_OVERLAP_S after `webhook_secret_rotated_at`.
    previous_webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_secret_rotated_at: Mapped[datetime | None]
    # The upstream rate-limited this account's token: its due jobs wait until then.
    upstream_parked_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    api_keys: Mapped[list["ApiKey"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class ApiKey(CreatedAtMixin, Base):
    """An API key `tpk_<key_id>_<secret>`: the key id is public and indexed, the secret hashed."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(100))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="api_keys")
