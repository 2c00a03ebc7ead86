"""/api-keys: create (shown once), list, revoke, per-key usage."""

from __future__ import annotations

import re
from functools import lru_cache

from api.routing import Context, Router
from meetbot.domain import accounts, api_keys
from meetbot.schemas.auth import ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyUsage
from meetbot.schemas.common import PageQuery, page_envelope

router = Router(not_found="API key not found")
TAG = "API keys"


@router.route(
    "GET", "/api-keys", "List API keys (prefix only)", TAG, query=PageQuery, response=ApiKeyList, reads_request_log=True
)
def list_keys(ctx: Context, query: PageQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = api_keys.list_page(conn, ctx.user_id, query)
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
        return api_keys.key_usage(conn, ctx.user_id, id, _route_template)


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
