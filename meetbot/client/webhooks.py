"""Verifying the Standard Webhooks signature of a MeetBot webhook delivery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "verify_webhook"]


def verify_webhook(payload: bytes, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The delivery's event (`{"id", "type", "createdAt", "data"}`) once its signature checks out.

    payload: the request body exactly as received; headers: the request's headers (webhook-id,
    webhook-timestamp, webhook-signature; any case); secret: the webhook's `whsec_…` secret.
    Raises WebhookVerificationError for a wrong signature or secret, a changed body, or a timestamp
    more than 5 minutes off.
    """
    event = Webhook(secret).verify(payload, {str(name): str(value) for name, value in headers.items()})
    if not isinstance(event, dict):
        raise WebhookVerificationError("the payload is not a JSON object")
    return event
