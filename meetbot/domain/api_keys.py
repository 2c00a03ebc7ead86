"""A user's API keys as listed, and each key's usage figures from the request log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.pages import fetch_page
from meetbot.db.tables import api_keys, api_request_logs
from meetbot.domain import accounts
from meetbot.domain.analytics import key_daily_requests, key_top_endpoints
from meetbot.errors import NotFound
from meetbot.schemas.auth import ApiKeyUsage
from meetbot.schemas.common import PageQuery

API_KEY_NOT_FOUND = "API key not found"
USAGE_DAYS = 30  # the days of a key's daily series and top endpoints


def list_page(conn: sa.Connection, user_id: int, query: PageQuery) -> tuple[list[sa.Row], int]:
    """One page of the user's keys (revoked ones included), oldest first, and how many there are."""
    return fetch_page(conn, api_keys, [api_keys.c.user_id == user_id], api_keys.c.id, query)


def key_usage(
    conn: sa.Connection, user_id: int, key_id: int, route_template: Callable[[str, str], str | None]
) -> ApiKeyUsage:
    """Requests made with one of the user's live keys: by status, last day, per day, top endpoints. NotFound for
    another's key and for a revoked one: DELETE /api-keys/{id} removed it from /api-keys/{id}/… (the list still
    shows it, with its revokedAt). route_template maps (method, path) to the API's path template."""
    row = accounts.get_api_key(conn, user_id, key_id)
    if row.revoked_at is not None:
        raise NotFound(API_KEY_NOT_FOUND)
    of_key = api_request_logs.c.api_key_id == key_id
    by_status = conn.execute(
        sa.select(api_request_logs.c.status_code, sa.func.count())
        .where(of_key)
        .group_by(api_request_logs.c.status_code)
    ).all()
    now = now_utc()
    recent = conn.execute(
        sa.select(sa.func.count()).where(of_key, api_request_logs.c.created_at >= now - timedelta(days=1))
    ).scalar_one()
    daily = key_daily_requests(conn, key_id, USAGE_DAYS, now)
    top = key_top_endpoints(conn, key_id, now - timedelta(days=USAGE_DAYS), route_template)
    counts = {str(code): n for code, n in by_status}
    return ApiKeyUsage(
        api_key_id=key_id,
        total_requests=sum(counts.values()),
        requests_last_24h=recent,
        last_used_at=row.last_used_at,
        by_status=counts,
        daily=daily,
        top_endpoints=top,
    )
