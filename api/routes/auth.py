"""Auth: trade a TabPFN token for an API key; manage keys, the stored token, the webhook secret."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from api.auth import CurrentUserDep
from api.body import read_small_json
from api.deps import ContextDep, SessionDep
from api.openapi import json_body
from api.pagination import paginate
from api.schemas.auth import (
    KeyIn,
    KeyOut,
    NewKeyOut,
    SetupIn,
    SetupOut,
    TokenIn,
    TokenReplacedOut,
    WebhookSecretOut,
)
from api.schemas.common import Page, PageNumber, PageSize
from api.schemas.errors import AUTH, INVALID, ErrorCode, error_responses
from api.services import accounts
from shared.jobs.schemas import API_PREFIX
from shared.models import ApiKey
from shared.security.lockout import client_group

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])


def _client_address(request: Request) -> str:
    """Who the setup rate limit counts: the client's address, an IPv6 client as its /64 (a
    host holds a whole /64, and could otherwise take a fresh address per attempt)."""
    return client_group(request.client.host) if request.client else "unknown"


# Bodies are parsed by dependencies that need the rate limit or the API key first: as
# declared bodies, FastAPI would read and parse them before any check (see api/body.py).
def _setup_rate_limit(request: Request, context: ContextDep) -> None:
    context.limiter.hit(
        f"setup:{_client_address(request)}",
        context.settings.RATE_LIMIT_SETUP_PER_MINUTE,
        what="setup attempts from this address",
    )


async def _setup_body(request: Request, _: Annotated[None, Depends(_setup_rate_limit)]) -> SetupIn:
    return await read_small_json(request, SetupIn)


async def _key_body(request: Request, _: CurrentUserDep, session: SessionDep) -> KeyIn:
    return await read_small_json(request, KeyIn, session)


async def _token_body(request: Request, _: CurrentUserDep, session: SessionDep) -> TokenIn:
    return await read_small_json(request, TokenIn, session)


@router.post(
    "/setup",
    status_code=status.HTTP_201_CREATED,
    response_model=SetupOut,
    summary="Trade a TabPFN token for an API key",
    response_description="The new API key and webhook secret (shown once).",
    responses=error_responses(
        *INVALID,
        ErrorCode.TABPFN_TOKEN_INVALID,
        ErrorCode.TABPFN_EMAIL_UNVERIFIED,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        ErrorCode.REQUEST_TIMEOUT,
        ErrorCode.RATE_LIMITED,
        ErrorCode.UPSTREAM_UNAVAILABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    openapi_extra=json_body(SetupIn),
)
def setup(
    body: Annotated[SetupIn, Depends(_setup_body)], context: ContextDep, session: SessionDep
) -> SetupOut:
    """Verify a TabPFN token and return an API key (shown once) for its user.

    The same token again finds the same user and issues an additional key."""
    user, key, full_key, webhook_secret = accounts.setup(
        session, context, body.tabpfn_token.get_secret_value(), body.key_name
    )
    session.commit()
    return SetupOut(
        user_id=user.id, api_key=full_key, key_id=key.key_id, webhook_secret=webhook_secret
    )


@router.get(
    "/keys",
    response_model=Page[KeyOut],
    summary="List your API keys",
    responses=error_responses(*INVALID, *AUTH),
)
def list_keys(
    current: CurrentUserDep,
    session: SessionDep,
    page: PageNumber = 1,
    page_size: PageSize = 20,
) -> Page[KeyOut]:
    """Your API keys, newest first (secrets are never shown again)."""
    return paginate(
        session,
        ApiKey,
        where=[ApiKey.user_id == current.id],
        order_by=[ApiKey.created_at.desc(), ApiKey.key_id],
        page=page,
        page_size=page_size,
        render=lambda key: KeyOut.model_validate(key, from_attributes=True),
    )


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=NewKeyOut,
    summary="Create another API key",
    response_description="The new key (its secret shown once).",
    responses=error_responses(
        *INVALID,
        *AUTH,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        ErrorCode.REQUEST_TIMEOUT,
    ),
    openapi_extra=json_body(KeyIn),
)
def create_key(
    current: CurrentUserDep,
    body: Annotated[KeyIn, Depends(_key_body)],
    context: ContextDep,
    session: SessionDep,
) -> NewKeyOut:
    """Issue another API key (shown once)."""
    key, full_key = accounts.issue_key(session, context, current.id, body.name)
    session.commit()
    return NewKeyOut(
        **KeyOut.model_validate(key, from_attributes=True).model_dump(), api_key=full_key
    )


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    response_description="Revoked: the key is refused from its next request.",
    responses=error_responses(*AUTH, ErrorCode.NOT_FOUND),
)
def revoke_key(
    key_id: str, current: CurrentUserDep, context: ContextDep, session: SessionDep
) -> Response:
    """Revoke a key; its very next request gets 401."""
    accounts.revoke_key(session, context, current.id, key_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/tabpfn-token",
    response_model=TokenReplacedOut,
    summary="Replace your stored TabPFN token",
    responses=error_responses(
        *INVALID,
        ErrorCode.TABPFN_TOKEN_INVALID,
        ErrorCode.TABPFN_EMAIL_UNVERIFIED,
        *AUTH,
        ErrorCode.NOT_FOUND,
        ErrorCode.TOKEN_IN_USE,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        ErrorCode.REQUEST_TIMEOUT,
        ErrorCode.UPSTREAM_UNAVAILABLE,
    ),
    openapi_extra=json_body(TokenIn),
)
def replace_tabpfn_token(
    current: CurrentUserDep,
    body: Annotated[TokenIn, Depends(_token_body)],
    context: ContextDep,
    session: SessionDep,
) -> TokenReplacedOut:
    """Verify a new TabPFN token and store it (encrypted) in place of the old one.

    Fits belong to the TabPFN account that made them: `models_may_need_refit` counts your
    models fitted under another token (if the new token is of another account, they turn
    `stale` at their next prediction; refit them)."""
    user = current.load(session)
    accounts.replace_token(session, context, user, body.tabpfn_token.get_secret_value())
    session.commit()
    return TokenReplacedOut(
        id=user.id,
        created_at=user.created_at,
        updated_at=user.updated_at,
        current_key_id=current.key_id,
        models_may_need_refit=accounts.models_fitted_under_other_tokens(session, user),
    )


@router.post(
    "/webhook-secret",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookSecretOut,
    summary="Rotate your webhook signing secret",
    response_description="The new secret (shown once).",
    responses=error_responses(*AUTH, ErrorCode.NOT_FOUND),
)
def rotate_webhook_secret(
    current: CurrentUserDep, context: ContextDep, session: SessionDep
) -> WebhookSecretOut:
    """Replace the webhook signing secret (shown once). For WEBHOOK_SECRET_OVERLAP_S (default
    24 h) deliveries carry signatures for the new and the previous secret."""
    secret = accounts.rotate_webhook_secret(context, current.load(session))
    session.commit()
    return WebhookSecretOut(webhook_secret=secret)
