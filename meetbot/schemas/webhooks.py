"""Request and response models of /webhooks: webhooks, their deliveries and each delivery's attempts."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import Field, StrictBool, field_validator

from meetbot.schemas.bots import HOST_PATTERN
from meetbot.schemas.common import ApiModel, OptionalJsonInt, Page, PageQuery, ResponseModel, UTCTimestamp
from meetbot.webhooks.envelope import SUBSCRIBABLE

EventName = Literal[SUBSCRIBABLE]  # type: ignore[valid-type]
DeliveryStatus = Literal["pending", "delivered", "failed"]
URL_MAX = 2048
# What the document promises a webhook URL looks like: http(s), a plain host, an optional port, path and query (the
# server takes any absolute http(s) URL with a host and no fragment).
URL_PATTERN = rf"^https?://{HOST_PATTERN}(?::[1-9][0-9]{{0,3}})?(?:/[A-Za-z0-9._~-]*)*(?:\?[A-Za-z0-9._~=&-]*)?$"


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host; where it points is checked apart (meetbot.outbound)."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise ValueError("URL scheme must be http or https")
    if not url.raw_host:
        raise ValueError("URL must have a host")
    if url.fragment:
        raise ValueError("URL must not have a fragment")
    return value


def _unique(events: list[str] | None) -> list[str] | None:
    return None if events is None else list(dict.fromkeys(events))


class WebhookCreate(ApiModel):
    url: str = Field(
        min_length=8,
        max_length=URL_MAX,
        json_schema_extra={"pattern": URL_PATTERN},
        description="http(s) URL that receives signed POSTs",
    )
    events: list[EventName] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, max_length=len(SUBSCRIBABLE), description="event types to send; null or omitted: all"
    )
    description: str = Field("", max_length=500)
    active: StrictBool = True
    bot_id: OptionalJsonInt = Field(None, ge=1, le=2**31 - 1, description="only this bot's events; null: every bot")

    _url = field_validator("url")(_http_url)
    _events = field_validator("events")(_unique)


class WebhookUpdate(ApiModel):
    """Only the fields sent change; `botId: null` and `events: null` mean every bot and every event. url, description
    and active cannot be null (omitted: kept), as the document says."""

    url: str = Field(None, min_length=8, max_length=URL_MAX, json_schema_extra={"pattern": URL_PATTERN})  # type: ignore[assignment]
    events: list[EventName] | None = Field(None, min_length=1, max_length=len(SUBSCRIBABLE))  # type: ignore[valid-type]
    description: str = Field(None, max_length=500)  # type: ignore[assignment]
    active: StrictBool = Field(None, description="true also re-enables a webhook that was disabled")  # type: ignore[assignment]
    bot_id: OptionalJsonInt = Field(None, ge=1, le=2**31 - 1)
    rotate_secret: StrictBool = Field(False, description="replace the signing secret; the new one is returned once")

    @field_validator("url")
    @classmethod
    def _url_ok(cls, value: str) -> str:
        return _http_url(value)

    _events = field_validator("events")(_unique)


class Webhook(ResponseModel):
    id: int
    url: str
    events: list[str] | None = Field(description="event types sent; null: all")
    description: str
    active: bool
    bot_id: int | None
    created_at: UTCTimestamp
    updated_at: UTCTimestamp
    failing_since: UTCTimestamp | None = Field(None, description="first failed attempt since the last success")
    disabled_at: UTCTimestamp | None = Field(None, description="when it was disabled for failing too long")
    disabled_event: dict[str, Any] | None = Field(None, description="the webhook.disabled event, when disabled")


class WebhookCreated(Webhook):
    secret: str = Field(description="whsec_…: shown only now (and on rotation); verifies webhook-signature")


class WebhookUpdated(Webhook):
    secret: str | None = Field(None, description="the new secret when rotateSecret was asked, else null")


class WebhookList(Page):
    webhooks: list[Webhook]


class Attempt(ResponseModel):
    attempt: int
    created_at: UTCTimestamp
    status_code: int | None = Field(None, description="null when no HTTP response came (see error)")
    duration_ms: float
    response_excerpt: str | None = Field(None, description="at most 1 KiB of the response body")
    error: str | None = None


class Delivery(ResponseModel):
    id: int
    webhook_id: int
    event_id: str = Field(description="the envelope's id: the webhook-id header of every attempt")
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: UTCTimestamp | None = Field(None, description="when pending: the next attempt")
    last_status_code: int | None = None
    created_at: UTCTimestamp
    updated_at: UTCTimestamp
    delivered_at: UTCTimestamp | None = None
    payload: dict[str, Any] = Field(description="the envelope sent")
    attempts: list[Attempt] = Field(description="every attempt, oldest first")


class DeliveryList(Page):
    deliveries: list[Delivery]


class DeliveryQuery(PageQuery):
    status: DeliveryStatus | None = None


class WebhookTest(ResponseModel):
    delivery: Delivery
    attempt: Attempt | None = Field(description="the ping's attempt; null when no worker made it within the timeout")
