"""The single mapping of MeetBot errors (and pydantic/Starlette ones) to the seed's JSON error shapes."""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meetbot.errors import BrokerUnavailable, DatabaseUnavailable, MeetBotError

log = logging.getLogger("meetbot.api")


def _json_error(detail: object, status: int, headers: dict[str, str]) -> Response:
    if status == 401 and not any(name.lower() == "www-authenticate" for name in headers):
        headers["WWW-Authenticate"] = "Bearer"  # RFC 6750 §3: every 401 names the scheme
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def unavailable_service(exc: Exception) -> MeetBotError | None:
    """A 503 for an outage of a service the API depends on (never a 500 with a trace), else None.

    Connection-level failures only: OperationalError/InterfaceError are what drivers raise when the server is
    gone, restarting or refusing connections (and for lock timeouts, which a retry also cures); a pool with no
    free connection raises sqlalchemy's TimeoutError.
    """
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    ):
        return DatabaseUnavailable()
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return BrokerUnavailable()
    return None


def error_response(exc: Exception, headers: dict[str, str] | None = None) -> Response:
    merged = dict(headers or {})
    if (outage := unavailable_service(exc)) is not None:
        log.warning("dependency unavailable: %s", type(exc).__name__)  # no driver text: it may carry the DSN
        exc = outage
    if isinstance(exc, MeetBotError):
        merged.update(exc.headers)
        return _json_error(exc.detail, exc.status_code, merged)
    if isinstance(exc, HTTPException):
        merged.update(exc.headers or {})
        return _json_error(exc.detail, exc.status_code, merged)
    log.exception("unhandled error", exc_info=exc)
    return _json_error("Internal server error", 500, merged)


async def handle_http_exception(_request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def handle_any_exception(_request: Request, exc: Exception) -> Response:
    return error_response(exc)
