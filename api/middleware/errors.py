"""Error mapping: any exception from the layers inside becomes the seed's JSON error, with the caller's limits."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from api.middleware.scope import limit_headers


class ErrorMappingMiddleware:
    """Answers an exception raised before the response started with api.errors' single mapping to HTTP.

    The rate-limit headers counted for this request (if any) go on the error too: a 404 or a 429 tells the caller
    its budget like a 200 does.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as exc:
            if started:  # a streamed body failed midway: nothing can be said to the caller any more
                raise
            response = error_response(exc, limit_headers(scope))
            await response(scope, receive, send)
