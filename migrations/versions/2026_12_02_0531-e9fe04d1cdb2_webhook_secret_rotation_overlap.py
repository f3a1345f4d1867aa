"""Webhook secret rotation overlaps: the previous secret and the rotation time on the user.

For WEBHOOK_SECRET_OVERLAP_S after `POST /auth/webhook-secret`, deliveries are signed with
the previous secret (encrypted like the current one) as well as the new one. Both columns
are nullable and new: old workers ignore them, so no stop is needed to upgrade.

Revision ID: e9fe04d1cdb2
Revises: 5208d86758ba
Create Date: 2026-12-02 05:31:53.892300+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e9fe04d1cdb2"
down_revision: str | None = "5208d86758ba"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("previous_webhook_secret_encrypted", sa.Text(), nullable=True))
    op.add_column(
        "users", sa.Column("webhook_secret_rotated_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("users", "webhook_secret_rotated_at")
    op.drop_column("users", "previous_webhook_secret_encrypted")
