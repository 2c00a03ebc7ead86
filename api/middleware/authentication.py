"""Authentication: the bearer token (API key or access token) of an endpoint that needs one, to a Principal."""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.middleware.scope import AUTH_ERROR, PRINCIPAL
from api.services import Services
from meetbot.domain.accounts import Principal, bearer_principal
from meetbot.domain.principal_cache import revocation_epoch
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
    is one read of the database in a worker thread, shared by the requests with the same token that arrive while it
    runs (when a busy caller's entry expires, its open connections do not all read the database at once). A read
    begun before a revocation in this process is not shared after it.
    """

    # (event loop, services, token, revocation epoch) -> the lookup under way; shared by every endpoint's stack
    _lookups: dict[tuple[int, int, str, int], asyncio.Future[Principal]] = {}

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            token = bearer_token(scope)
            principal = self.services.principal_cache.get(token)
            if principal is None:
                principal = await self._shared_lookup(token)
            scope[PRINCIPAL] = principal
        except Unauthorized as exc:
            exc.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
            scope[AUTH_ERROR] = exc
        await self.app(scope, receive, send)

    async def _shared_lookup(self, token: str) -> Principal:
        key = (id(asyncio.get_running_loop()), id(self.services), token, revocation_epoch())
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = asyncio.ensure_future(run_in_threadpool(self._authenticate, token))

            def done(finished: asyncio.Future[Principal], key: tuple[int, int, str, int] = key) -> None:
                if self._lookups.get(key) is finished:
                    del self._lookups[key]
                if not finished.cancelled():
                    finished.exception()  # retrieved here: every waiter may have gone

            lookup.add_done_callback(done)
        return await asyncio.shield(lookup)  # one caller's disconnect does not cancel the others' lookup

    def _authenticate(self, token: str) -> Principal:
        def lookup(token: str) -> tuple[Principal, float | None]:
            with self.services.engine.connect() as conn:  # reads only: no transaction to commit
                return bearer_principal(conn, token, self.services.secret_key)

        return self.services.principal_cache.authenticate(token, lookup)
