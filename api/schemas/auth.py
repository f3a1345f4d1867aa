"""Bodies of the auth and user routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


Label = Annotated[str, Field(max_length=100), AfterValidator(_no_control_characters)]


class TokenIn(BaseModel):
    """A TabPFN token (from https://platform.priorlabs.ai/account/api-keys)."""

    model_config = ConfigDict(extra="forbid")

    tabpfn_token: SecretStr = Field(min_length=8, max_length=4096)

    @field_validator("tabpfn_token")
    @classmethod
    def _printable(cls, value: SecretStr) -> SecretStr:
        """A token travels in an HTTP header: visible ASCII only (no spaces, no controls)."""
        if not all(33 <= ord(c) <= 126 for c in value.get_secret_value()):
            raise ValueError("holds characters a TabPFN token never has (spaces or non-ASCII)")
        return value


class SetupIn(TokenIn):
    key_name: Label | None = None


class SetupOut(BaseModel):
    """The API key and webhook secret are shown here once; store them."""

    user_id: uuid.UUID
    api_key: str = Field(examples=["tpk_0123456789abcdef_s3cr3t..."])
    key_id: str
    webhook_secret: str = Field(examples=["whsec_..."])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Label | None = None


class KeyOut(BaseModel):
    """An API key's public facts (never its secret)."""

    key_id: str
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    api_key: str


class WebhookSecretOut(BaseModel):
    webhook_secret: str


class UserOut(BaseModel):
    """Your account: its id, and the API key this request used."""

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    current_key_id: str


class TokenReplacedOut(UserOut):
    """Your account after a token change, and how many models may need a refit."""

    models_may_need_refit: int = Field(
        description="Your ready or stale models fitted under another TabPFN token. If the new "
        "token belongs to another TabPFN account, their fits are not reachable with it: "
        "refit them (POST /api/v1/models/{id}/refit; no new upload)."
    )
