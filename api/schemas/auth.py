"""Bodies of the auth and user routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class TokenIn(BaseModel):
    """A TabPFN token (from https://platform.priorlabs.ai/account/api-keys)."""

    model_config = ConfigDict(extra="forbid")

    tabpfn_token: SecretStr = Field(min_length=8, max_length=4096)


class SetupIn(TokenIn):
    key_name: str | None = Field(default=None, max_length=100)


class SetupOut(BaseModel):
    """The API key and webhook secret are shown here once; store them."""

    user_id: uuid.UUID
    api_key: str = Field(examples=["tpk_0123456789abcdef_s3cr3t..."])
    key_id: str
    webhook_secret: str = Field(examples=["whsec_..."])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)


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
