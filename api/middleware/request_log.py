"""The request log: one structured log line per API request, and a buffered row in the caller's request history."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware.scope import principal
from api.request_log import request_log_row
from api.services import Services

log = logging.getLogger("meetbot.api")


class RequestLogMiddleware:
    """Times the request and records it once answered: the log line always, the history row when the caller is
    known. The row is only appended to a buffer (api.request_log writes batches): no write on the request path.

    template: when given, the route's template is logged instead of the path, which carries a secret (a share token).
    """

    def __init__(self, app: ASGIApp, services: Services, template: str | None = None) -> None:
        self.app = app
        self.buffer = services.request_log
        self.template = template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self._record(scope, status, (time.perf_counter() - started) * 1000)

    def _record(self, scope: Scope, status: int, elapsed_ms: float) -> None:
        caller = principal(scope)
        path = scope["path"]  # the whole path, the mount's prefix included
        if log.isEnabledFor(logging.INFO):
            shown = scope.get("root_path", "") + self.template if self.template is not None else path
            extra = {
                "method": scope["method"],
                "path": shown,
                "status": status,
                "duration_ms": round(elapsed_ms, 2),
                "user_id": caller.user_id if caller else None,
            }
            log.info("request", extra=extra)
        if caller is not None:
            row = request_log_row(caller.user_id, caller.api_key_id, scope["method"], path, status, elapsed_ms)
            self.buffer.record(row)
