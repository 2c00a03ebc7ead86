"""Standard Webhooks signing (the standardwebhooks library): secrets, and the webhook-id, -timestamp, -signature."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """whsec_ + base64 of 24 random bytes, the form every Standard Webhooks verifier accepts."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign_headers(secret: str, message_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    """The three headers of a signed request: v1,base64(HMAC-SHA256(key, id.timestamp.body))."""
    at = at or datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }


def verify(secret: str, body: bytes | str, headers: dict[str, str]) -> Any:
    """The parsed JSON body when the headers sign it with secret (5 min tolerance); raises WebhookVerificationError."""
    return Webhook(secret).verify(body, headers)
