"""Rate limiting: every API request counts against its caller (its principal, else its address), 429 past the limit."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware.scope import AUTH_ERROR, LIMIT_HEADERS, principal
from api.services import Services


def client_key(scope: Scope) -> str:
    """The rate-limit key of a caller not (yet) authenticated: its address."""
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    """Counts the request, puts the X-RateLimit-* headers on whatever answers it, then raises a failed
    authentication: guessing tokens costs the guesser's address its budget (and no database write)."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.limiter = services.rate_limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = principal(scope)
        key = caller.rate_limit_key if caller is not None else client_key(scope)
        # In memory the count is a few microseconds; in Redis it is a round trip, kept off the event loop.
        headers = await run_in_threadpool(self.limiter.hit, key) if self.limiter.shared else self.limiter.hit(key)
        scope[LIMIT_HEADERS] = headers
        if (auth_error := scope.get(AUTH_ERROR)) is not None:
            raise auth_error

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_limits)
