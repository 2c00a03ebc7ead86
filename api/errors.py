"""The single mapping of MeetBot errors (and pydantic/Starlette ones) to the seed's JSON error shapes."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meetbot.errors import MeetBotError

log = logging.getLogger("meetbot.api")


def error_response(exc: Exception, headers: dict[str, str] | None = None) -> Response:
    merged = dict(headers or {})
    if isinstance(exc, MeetBotError):
        merged.update(exc.headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=merged)
    if isinstance(exc, HTTPException):
        merged.update(exc.headers or {})
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=merged)
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "Internal server error"}, status_code=500, headers=merged)


async def handle_http_exception(_request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def handle_any_exception(_request: Request, exc: Exception) -> Response:
    return error_response(exc)
