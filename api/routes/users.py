"""/users/me: profile, usage counters and the caller's API request log."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from api.routing import Context, Router
from meetbot.db import now_utc
from meetbot.db.pages import fetch_page
from meetbot.db.tables import api_keys, api_request_logs, bots
from meetbot.domain import accounts
from meetbot.domain.jobs import transcribed_seconds
from meetbot.domain.recordings import recording_totals
from meetbot.errors import Forbidden
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
        user = accounts.get_user(conn, ctx.user_id)
        values: dict[str, object] = {}
        if body.name is not None:
            values["name"] = body.name
        new_email = body.email.lower() if body.email is not None and body.email.lower() != user.email else None
        sensitive = body.password is not None or new_email is not None
        if sensitive and not (
            body.current_password and accounts.verify_password(user.password_hash, body.current_password)
        ):
            # 403, not 401: the caller's session is fine, the proof for this change is not.
            raise Forbidden("currentPassword is missing or wrong: a new email or password needs the current password")
        if new_email is not None:
            values["email"] = new_email
        if body.password is not None:
            values["password_hash"] = accounts.hash_password(body.password)
            accounts.revoke_other_sessions(conn, ctx.user_id, ctx.principal.session_id)
        return User.model_validate(accounts.update_user(conn, ctx.user_id, **values))


@router.route(
    "GET",
    "/users/me/usage",
    "Bot counts, time in call, recorded minutes, storage used and API requests",
    TAG,
    response=Usage,
    reads_request_log=True,
)
def usage(ctx: Context) -> Usage:
    day_ago = now_utc() - timedelta(days=1)
    with ctx.transaction() as conn:
        by_status = dict(
            conn.execute(
                sa.select(bots.c.status, sa.func.count()).where(bots.c.user_id == ctx.user_id).group_by(bots.c.status)
            ).all()
        )
        mine = api_request_logs.c.user_id == ctx.user_id
        total_requests = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
        recent = conn.execute(
            sa.select(sa.func.count()).where(mine, api_request_logs.c.created_at >= day_ago)
        ).scalar_one()
        active_keys = conn.execute(
            sa.select(sa.func.count()).where(api_keys.c.user_id == ctx.user_id, api_keys.c.revoked_at.is_(None))
        ).scalar_one()
        spans = conn.execute(
            sa.select(bots.c.joined_at, bots.c.left_at).where(
                bots.c.user_id == ctx.user_id, bots.c.joined_at.is_not(None)
            )
        ).all()
        recorded_seconds, storage_bytes = recording_totals(conn, ctx.user_id)
        transcribed = transcribed_seconds(conn, ctx.user_id)
    now = now_utc()
    seconds = sum(((left or now) - joined).total_seconds() for joined, left in spans)
    return Usage(
        bots_total=sum(by_status.values()),
        bots_by_status=by_status,
        api_requests_total=total_requests,
        api_requests_last_24h=recent,
        api_keys_active=active_keys,
        seconds_in_call=round(seconds, 1),
        recorded_minutes=round(recorded_seconds / 60, 2),
        storage_bytes=storage_bytes,
        transcribed_minutes=round(transcribed / 60, 2),
    )


@router.route(
    "GET",
    "/users/me/api-logs",
    "The caller's API request log, newest first",
    TAG,
    query=ApiLogQuery,
    response=ApiLogList,
    reads_request_log=True,
)
def api_logs(ctx: Context, query: ApiLogQuery) -> dict[str, object]:
    mine = [api_request_logs.c.user_id == ctx.user_id]
    with ctx.transaction() as conn:
        rows, total = fetch_page(conn, api_request_logs, mine, api_request_logs.c.id.desc(), query)
    return page_envelope("logs", ApiLog, rows, total, query)
