"""The one exception hierarchy of MeetBot; the API maps each class to its HTTP status in one place."""

from __future__ import annotations

from typing import Any


class MeetBotError(Exception):
    """Base of every error MeetBot raises on purpose."""

    status_code = 500
    default_detail = "Internal server error"

    def __init__(self, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        self.detail = detail if detail is not None else self.default_detail
        self.headers = headers or {}
        super().__init__(str(self.detail))


class BadRequest(MeetBotError):
    status_code = 400
    default_detail = "Malformed request"


class Unauthorized(MeetBotError):
    status_code = 401
    default_detail = "Not authenticated"


class Forbidden(MeetBotError):
    status_code = 403
    default_detail = "Not allowed"


class NotFound(MeetBotError):
    status_code = 404
    default_detail = "Not found"


class Conflict(MeetBotError):
    status_code = 409
    default_detail = "Conflict"


class PayloadTooLarge(MeetBotError):
    status_code = 413
    default_detail = "Request body too large"


class UnsupportedMediaType(MeetBotError):
    status_code = 415
    default_detail = "Request body must be JSON (Content-Type: application/json)"


class ValidationFailed(MeetBotError):
    """Carries the seed's list form: [{"loc": [...], "msg": ..., "type": ...}]."""

    status_code = 422
    default_detail = "Validation failed"


class RateLimited(MeetBotError):
    status_code = 429
    default_detail = "Rate limit exceeded"


class ServiceUnavailable(MeetBotError):
    status_code = 503
    default_detail = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database refused or dropped the connection (restarting, failing over, out of connections)."""

    default_detail = "The database is unavailable; try again shortly"

    def __init__(self, detail: object = None) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class BrokerUnavailable(ServiceUnavailable):
    """Redis (queue, kill notices, shared rate limits) cannot be reached."""

    default_detail = "The work queue is unavailable; try again shortly"

    def __init__(self, detail: object = None) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class StorageUnavailable(ServiceUnavailable):
    """The object store cannot be reached or refused the operation; the caller may retry."""

    default_detail = "The recording store is unavailable; try again"


class ObjectMissing(NotFound):
    """The object store holds nothing under the key asked for."""

    default_detail = "Recording not found"


class TranscriptionError(MeetBotError):
    """A recording could not be transcribed (unreadable media, no audio, a model that is not available)."""

    status_code = 422
    default_detail = "The recording could not be transcribed"


class SummaryError(MeetBotError):
    """A transcript could not be summarized (nothing to summarize, an LLM endpoint that failed)."""

    status_code = 422
    default_detail = "The transcript could not be summarized"


class BotError(MeetBotError):
    """Raised inside a bot runner; sub_code is the event sub_code the bot ends with."""

    sub_code = "internal_error"

    def __init__(self, detail: Any = None, sub_code: str | None = None) -> None:
        super().__init__(detail)
        if sub_code:
            self.sub_code = sub_code
