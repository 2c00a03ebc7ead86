"""/users/me: profile, usage counters and the caller's API request log."""

from __future__ import annotations

from api.routing import Context, Router
from meetbot.domain import accounts, users
from meetbot.schemas.auth import ApiLog, ApiLogList, ApiLogQuery, Usage, User, UserUpdate
from meetbot.schemas.common import page_envelope

router = Router()
TAG = "Users"


@router.route("GET", "/users/me", "The caller's profile", TAG, response=User)
def get_me(ctx: Context) -> User:
    with ctx.transaction() as conn:
        return User.model_validate(accounts.get_user(conn, ctx.user_id))


@router.route(
    "PATCH",
    "/users/me",
    "Change name, email or password",
    TAG,
    body=UserUpdate,
    response=User,
    errors=(403, 409),
)
def update_me(ctx: Context, body: UserUpdate) -> User:
    """A new email or password needs currentPassword. A new password ends every other login session
    (their access and refresh tokens stop working); the caller's own session and API keys keep working."""
    with ctx.transaction() as conn:
        return User.model_validate(users.update_profile(conn, ctx.user_id, ctx.principal.session_id, body))


@router.route(
    "GET",
    "/users/me/usage",
    "Bot counts, time in call, recorded minutes, storage used and API requests",
    TAG,
    response=Usage,
    reads_request_log=True,
)
def usage(ctx: Context) -> Usage:
    with ctx.transaction() as conn:
        return users.usage(conn, ctx.user_id)


@router.route(
    "GET",
    "/users/me/api-logs",
    "The caller's API request log, newest first",
    TAG,
    query=ApiLogQuery,
    response=ApiLogList,
    reads_request_log=True,
)
def api_logs(ctx: Context, query: ApiLogQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = users.request_log_page(conn, ctx.user_id, query)
    return page_envelope("logs", ApiLog, rows, total, query)
