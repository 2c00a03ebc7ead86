"""A user's own account: profile changes (the current-password rule), usage figures and request log."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.pages import fetch_page
from meetbot.db.tables import api_keys, api_request_logs, bots
from meetbot.domain import accounts
from meetbot.domain.jobs import transcribed_seconds
from meetbot.domain.recordings import recording_totals
from meetbot.errors import Forbidden
from meetbot.schemas.auth import ApiLogQuery, Usage, UserUpdate

WRONG_CURRENT_PASSWORD = "currentPassword is missing or wrong: a new email or password needs the current password"


def update_profile(conn: sa.Connection, user_id: int, session_id: str | None, change: UserUpdate) -> sa.Row:
    """Apply a profile change. A new email or password needs the current password (Forbidden otherwise); a new
    password ends every login session but session_id (the caller's own, None for an API key), keys untouched."""
    user = accounts.get_user(conn, user_id)
    values: dict[str, object] = {}
    if change.name is not None:
        values["name"] = change.name
    new_email = change.email.lower() if change.email is not None and change.email.lower() != user.email else None
    sensitive = change.password is not None or new_email is not None
    if sensitive and not (
        change.current_password and accounts.verify_password(user.password_hash, change.current_password)
    ):
        # 403, not 401: the caller's session is fine, the proof for this change is not.
        raise Forbidden(WRONG_CURRENT_PASSWORD)
    if new_email is not None:
        values["email"] = new_email
    if change.password is not None:
        values["password_hash"] = accounts.hash_password(change.password)
        accounts.revoke_other_sessions(conn, user_id, session_id)
    return accounts.update_user(conn, user_id, **values)


def usage(conn: sa.Connection, user_id: int) -> Usage:
    """Bot counts by status, time in call, recorded and transcribed minutes, storage and API requests."""
    day_ago = now_utc() - timedelta(days=1)
    by_status = dict(
        conn.execute(
            sa.select(bots.c.status, sa.func.count()).where(bots.c.user_id == user_id).group_by(bots.c.status)
        ).all()
    )
    mine = api_request_logs.c.user_id == user_id
    total_requests = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
    recent = conn.execute(sa.select(sa.func.count()).where(mine, api_request_logs.c.created_at >= day_ago)).scalar_one()
    active_keys = conn.execute(
        sa.select(sa.func.count()).where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
    ).scalar_one()
    spans = conn.execute(
        sa.select(bots.c.joined_at, bots.c.left_at).where(bots.c.user_id == user_id, bots.c.joined_at.is_not(None))
    ).all()
    recorded_seconds, storage_bytes = recording_totals(conn, user_id)
    transcribed = transcribed_seconds(conn, user_id)
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


def request_log_page(conn: sa.Connection, user_id: int, query: ApiLogQuery) -> tuple[list[sa.Row], int]:
    """One page of the user's API request log, newest first, and the number of its rows."""
    mine = [api_request_logs.c.user_id == user_id]
    return fetch_page(conn, api_request_logs, mine, api_request_logs.c.id.desc(), query)
