"""/api-keys: create (shown once), list, revoke, per-key usage."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache

import sqlalchemy as sa

from api.routing import Context, Router
from meetbot.db import now_utc
from meetbot.db.pages import fetch_page
from meetbot.db.tables import api_keys, api_request_logs
from meetbot.domain import accounts
from meetbot.domain.analytics import key_daily_requests, key_top_endpoints
from meetbot.schemas.auth import ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyUsage
from meetbot.schemas.common import PageQuery, page_envelope

router = Router(not_found="API key not found")
USAGE_DAYS = 30
TAG = "API keys"


@router.route(
    "GET", "/api-keys", "List API keys (prefix only)", TAG, query=PageQuery, response=ApiKeyList, reads_request_log=True
)
def list_keys(ctx: Context, query: PageQuery) -> dict[str, object]:
    with ctx.transaction() as conn:
        rows, total = fetch_page(conn, api_keys, [api_keys.c.user_id == ctx.user_id], api_keys.c.id, query)
    return page_envelope("apiKeys", ApiKey, rows, total, query)


@router.route(
    "POST",
    "/api-keys",
    "Create an API key; the key is shown once",
    TAG,
    body=ApiKeyCreate,
    response=ApiKeyCreated,
    status=201,
    errors=(409,),
)
def create_key(ctx: Context, body: ApiKeyCreate) -> ApiKeyCreated:
    with ctx.transaction() as conn:
        row, key = accounts.create_api_key(conn, ctx.user_id, body.name, ctx.services.settings.max_api_keys_per_user)
    return ApiKeyCreated.model_validate({**row._mapping, "key": key})


@router.route("DELETE", "/api-keys/{id}", "Revoke an API key", TAG, status=204, errors=(404,))
def revoke_key(ctx: Context, id: int) -> None:
    with ctx.transaction() as conn:
        accounts.revoke_api_key(conn, ctx.user_id, id)


@router.route(
    "GET",
    "/api-keys/{id}/usage",
    "Requests made with an API key",
    TAG,
    response=ApiKeyUsage,
    errors=(404,),
    reads_request_log=True,
)
def key_usage(ctx: Context, id: int) -> ApiKeyUsage:
    with ctx.transaction() as conn:
        row = accounts.get_api_key(conn, ctx.user_id, id)
        of_key = api_request_logs.c.api_key_id == id
        by_status = conn.execute(
            sa.select(api_request_logs.c.status_code, sa.func.count())
            .where(of_key)
            .group_by(api_request_logs.c.status_code)
        ).all()
        now = now_utc()
        recent = conn.execute(
            sa.select(sa.func.count()).where(of_key, api_request_logs.c.created_at >= now - timedelta(days=1))
        ).scalar_one()
        daily = key_daily_requests(conn, id, USAGE_DAYS, now)
        top = key_top_endpoints(conn, id, now - timedelta(days=USAGE_DAYS), _route_template)
    counts = {str(code): n for code, n in by_status}
    return ApiKeyUsage(
        api_key_id=id,
        total_requests=sum(counts.values()),
        requests_last_24h=recent,
        last_used_at=row.last_used_at,
        by_status=counts,
        daily=daily,
        top_endpoints=top,
    )


@lru_cache(maxsize=1)
def _route_patterns() -> dict[str, list[tuple[re.Pattern[str], str]]]:
    """Per method, the API's path templates as patterns: literal paths first, so /users/me beats a /users/{id}."""
    from api.app import API_PREFIX, all_endpoints  # the app imports this module: resolved at first use

    patterns: dict[str, list[tuple[re.Pattern[str], str]]] = {}
    for endpoint in sorted(all_endpoints(), key=lambda e: (bool(e.path_params), e.path)):
        template = API_PREFIX + endpoint.path
        regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        patterns.setdefault(endpoint.method, []).append((re.compile(regex + "$"), template))
    return patterns


def _route_template(method: str, path: str) -> str | None:
    for pattern, template in _route_patterns().get("GET" if method == "HEAD" else method, []):
        if pattern.match(path):
            return template
    return None
