"""Fitted models: our id for the upstream's `train_set_uid`, with what predict needs to know."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id, str_enum
from shared.models.enums import ModelStatus, Task


class Model(CreatedAtMixin, Base):
    """A user's model; `ready` once its fit job stored the upstream `train_set_uid`."""

    __tablename__ = "models"
    __table_args__ = (
        # A user's ready models by what they were fitted on, for fit reuse.
        Index(
            "ix_models_ready_user_id_fit_key",
            "user_id",
            "fit_key",
            postgresql_where=text("status = 'ready' AND fit_key IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200))
    task: Mapped[Task] = mapped_column(str_enum(Task))
    status: Mapped[ModelStatus] = mapped_column(str_enum(ModelStatus))
    n_samples: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    feature_names: Mapped[list[Any] | None]
    # "numeric" or "categorical" per column, so predict can name a column whose type changed.
    feature_kinds: Mapped[list[Any]]
    classes: Mapped[list[Any] | None]
    config: Mapped[dict[str, Any]]
    train_set_uid: Mapped[str | None] = mapped_column(String(64))
    # What the fit was made from (data hash, task, options: `shared.jobs.reuse.fit_key`) and
    # under which TabPFN token (its fingerprint): an identical later fit reuses this one.
    fit_key: Mapped[str | None] = mapped_column(String(64))
    fitted_token_fingerprint: Mapped[str | None] = mapped_column(String(64))
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payloads.id", ondelete="SET NULL"), index=True
    )
    # No foreign key: jobs already reference models, and a cycle would complicate deletes.
    fit_job_id: Mapped[uuid.UUID | None]
    fitted_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
