"""Authentication: the bearer token (API key or access token) of an endpoint that needs one, to a Principal."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.middleware.scope import AUTH_ERROR, PRINCIPAL
from api.services import Services
from meetbot.domain.accounts import Principal, bearer_principal
from meetbot.errors import Unauthorized


def bearer_token(scope: Scope) -> str:
    header = Headers(scope=scope).get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


class AuthenticationMiddleware:
    """Puts the caller in the scope, or why it could not be authenticated (raised by the rate limit, after counting
    the attempt against the caller's address).

    A caller seen within the last `principal_cache_seconds` is answered from memory on the event loop; anything else
    is one read of the database in a worker thread.
    """

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            token = bearer_token(scope)
            principal = self.services.principal_cache.get(token)
            if principal is None:
                principal = await run_in_threadpool(self._authenticate, token)
            scope[PRINCIPAL] = principal
        except Unauthorized as exc:
            exc.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
            scope[AUTH_ERROR] = exc
        await self.app(scope, receive, send)

    def _authenticate(self, token: str) -> Principal:
        def lookup(token: str) -> tuple[Principal, float | None]:
            with self.services.engine.connect() as conn:  # reads only: no transaction to commit
                return bearer_principal(conn, token, self.services.secret_key)

        return self.services.principal_cache.authenticate(token, lookup)
