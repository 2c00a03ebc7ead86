"""The single mapping of MeetBot errors (and pydantic/Starlette ones) to the seed's JSON error shapes."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meetbot.errors import MeetBotError

log = logging.getLogger("meetbot.api")


def _json_error(detail: object, status: int, headers: dict[str, str]) -> Response:
    if status == 401 and not any(name.lower() == "www-authenticate" for name in headers):
        headers["WWW-Authenticate"] = "Bearer"  # RFC 6750 §3: every 401 names the scheme
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def error_response(exc: Exception, headers: dict[str, str] | None = None) -> Response:
    merged = dict(headers or {})
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
