"""Typed errors of the MeetBot SDK, built from the API's `{"detail": ...}` error bodies."""

from __future__ import annotations

from typing import Any

import httpx

from meetbot.schemas.common import ValidationErrorItem


class MeetBotAPIError(Exception):
    """An error answer of the API: its HTTP status and its `detail` (a message, or a list for 422)."""

    def __init__(self, status: int, detail: Any, headers: httpx.Headers | None = None) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers if headers is not None else httpx.Headers()
        super().__init__(f"{status}: {detail}")


class BadRequestError(MeetBotAPIError):
    """400: a malformed request (e.g. a body that is not JSON)."""


class AuthenticationError(MeetBotAPIError):
    """401: no token, or a token (API key, access or refresh token) that is invalid, expired or revoked."""


class PermissionDeniedError(MeetBotAPIError):
    """403: the caller may not do this (e.g. an expired or invalid download link)."""


class NotFoundError(MeetBotAPIError):
    """404: no such resource, or one that belongs to another user."""


class ConflictError(MeetBotAPIError):
    """409: the resource is not in a state that allows this (e.g. a bot already deployed)."""


class ValidationError(MeetBotAPIError):
    """422: the request did not validate; `.errors` keeps each error's `loc`, `msg` and `type`."""

    def __init__(self, status: int, detail: Any, headers: httpx.Headers | None = None) -> None:
        super().__init__(status, detail, headers)
        items = detail if isinstance(detail, list) else []
        self.errors: list[ValidationErrorItem] = [
            ValidationErrorItem.model_validate(item) for item in items if isinstance(item, dict)
        ]


class RateLimitError(MeetBotAPIError):
    """429 once the client's retries are spent (or the wait asked for is longer than it may wait)."""

    @property
    def retry_after(self) -> float | None:
        """Seconds the API asked to wait (its Retry-After header), when it said."""
        from meetbot.client._core import retry_after_seconds

        return retry_after_seconds(self.headers)


class ServiceUnavailableError(MeetBotAPIError):
    """503: a back-end (queue, store) is unavailable; the request may be repeated later."""


class TranscriptFailedError(Exception):
    """A transcript (or summary) job ended as failed; `.error` is the job's error message."""

    def __init__(self, bot_id: int, error: str | None) -> None:
        self.bot_id = bot_id
        self.error = error
        super().__init__(f"bot {bot_id}: {error or 'failed'}")


ERRORS_BY_STATUS: dict[int, type[MeetBotAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_from_response(response: httpx.Response) -> MeetBotAPIError:
    """The typed error of an error answer; its detail from `{"detail": ...}`, else the body's text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = (
        body["detail"] if isinstance(body, dict) and "detail" in body else (response.text or response.reason_phrase)
    )
    return ERRORS_BY_STATUS.get(response.status_code, MeetBotAPIError)(response.status_code, detail, response.headers)
