"""What the request path's middleware leave in the ASGI scope for the layers inside them (and for the log)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import Scope

if TYPE_CHECKING:
    from meetbot.domain.accounts import Principal

PRINCIPAL = "meetbot.principal"  # the authenticated caller
AUTH_ERROR = "meetbot.auth_error"  # why authentication failed: raised after the rate limit has counted the request
LIMIT_HEADERS = "meetbot.limit_headers"  # X-RateLimit-* of this request, once counted


def principal(scope: Scope) -> Principal | None:
    return scope.get(PRINCIPAL)


def limit_headers(scope: Scope) -> dict[str, str]:
    return dict(scope.get(LIMIT_HEADERS) or {})
