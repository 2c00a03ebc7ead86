"""The MeetBot Python SDK: typed sync and async API clients, event streams, and webhook verification."""

from meetbot.client._core import RetryPolicy
from meetbot.client.aio import AsyncMeetBotClient
from meetbot.client.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    MeetBotAPIError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    TranscriptFailedError,
    ValidationError,
)
from meetbot.client.streams import AsyncEventStream, EventStream
from meetbot.client.sync import MeetBotClient
from meetbot.client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "AsyncEventStream",
    "AsyncMeetBotClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "EventStream",
    "MeetBotAPIError",
    "MeetBotClient",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "TranscriptFailedError",
    "ValidationError",
    "WebhookVerificationError",
    "verify_webhook",
]
