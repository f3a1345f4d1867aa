"""Webhook delivery attempts: one row per attempt, listed to the user (DESIGN §8)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id, str_enum
from shared.models.enums import DeliveryStatus


class WebhookDelivery(CreatedAtMixin, Base):
    """An attempt to POST one event; `pending` rows are the schedule the sweeper follows."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    # The Standard Webhooks `webhook-id`: the same for every attempt of one event.
    message_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]]
    response_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    # When a message for this attempt was last handed to the broker (the sweeper re-sends
    # pending attempts whose message seems lost).
    published_at: Mapped[datetime | None]
    attempted_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
