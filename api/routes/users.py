"""The current user's profile, and account deletion."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.auth import CurrentUserDep
from api.deps import ContextDep, SessionDep
from api.schemas.auth import UserOut
from api.schemas.errors import AUTH, error_responses
from api.services import accounts
from shared.jobs.schemas import API_PREFIX

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])


@router.get("/me", response_model=UserOut, summary="Who you are", responses=error_responses(*AUTH))
async def get_me(current: CurrentUserDep) -> UserOut:
    """Who you are: your user id and the key this request used."""
    return UserOut(
        id=current.id,
        created_at=current.created_at,
        updated_at=current.updated_at,
        current_key_id=current.key_id,
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete your account and all its data",
    response_description="Deleted.",
    responses=error_responses(*AUTH),
)
def delete_me(current: CurrentUserDep, context: ContextDep, session: SessionDep) -> Response:
    """Delete your account and everything it owns: keys, models, jobs, stored data."""
    accounts.delete_user(session, context, current.id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
