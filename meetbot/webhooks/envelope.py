"""The event envelope every webhook receives: {"id": "evt_…", "type", "createdAt", "data"} (DESIGN.md §5)."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from meetbot.schemas.common import format_utc

# Bot event types (bot_events.type) and the webhook event type each becomes; LOG and unknown types are not sent.
BOT_EVENT_TYPES = {
    "STATUS_CHANGE": "bot.status_changed",
    "PARTICIPANT_JOIN": "bot.participant_joined",
    "PARTICIPANT_LEAVE": "bot.participant_left",
    "ACTIVE_SPEAKER": "bot.active_speaker",
    "RECORDING_READY": "recording.ready",
    "RECORDING_DELETED": "recording.deleted",
    "TRANSCRIPT_READY": "transcript.ready",
    "TRANSCRIPT_FAILED": "transcript.failed",
    "SUMMARY_READY": "summary.ready",
    "SUMMARY_FAILED": "summary.failed",
}
PING = "ping"
WEBHOOK_DISABLED = "webhook.disabled"
# What a webhook may subscribe to (its `events`); ping goes to one webhook on request, webhook.disabled nowhere.
SUBSCRIBABLE = tuple(BOT_EVENT_TYPES.values())
ALL_TYPES = (*SUBSCRIBABLE, WEBHOOK_DISABLED, PING)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def bot_event_id(bot_id: int, event_row_id: int) -> str:
    """Deterministic per (bot, event row): every webhook and every attempt carries the same id, to de-duplicate."""
    return f"evt_{bot_id}_{event_row_id}"


def bot_event(
    bot_id: int, event_row_id: int, event_type: str, status: str | None, data: dict[str, Any], created_at: datetime
) -> dict[str, Any] | None:
    """The envelope of one bot event, or None for events that are not delivered (LOG)."""
    kind = BOT_EVENT_TYPES.get(event_type)
    if kind is None:
        return None
    body: dict[str, Any] = {"botId": bot_id, "status": status, "subCode": data.get("sub_code")}
    for key, value in data.items():
        if key in ("sub_code", "to"):  # to: the status itself
            continue
        body["previousStatus" if key == "from" else _camel(key)] = value
    return {"id": bot_event_id(bot_id, event_row_id), "type": kind, "createdAt": format_utc(created_at), "data": body}


def ping(webhook_id: int, created_at: datetime) -> dict[str, Any]:
    """A test event for one webhook (POST /webhooks/{id}/test); each ping has its own id."""
    return {
        "id": f"evt_ping_{webhook_id}_{secrets.token_hex(6)}",
        "type": PING,
        "createdAt": format_utc(created_at),
        "data": {"webhookId": webhook_id, "message": "MeetBot webhook test"},
    }


def webhook_disabled(
    webhook_id: int, failing_since: datetime, created_at: datetime, hours: float, last_error: str | None
) -> dict[str, Any]:
    return {
        "id": f"evt_webhook_disabled_{webhook_id}_{int(created_at.timestamp())}",
        "type": WEBHOOK_DISABLED,
        "createdAt": format_utc(created_at),
        "data": {
            "webhookId": webhook_id,
            "failingSince": format_utc(failing_since),
            "reason": f"every delivery attempt failed for {hours:g} hours",
            "lastError": last_error,
        },
    }


def body(envelope: dict[str, Any]) -> bytes:
    """The bytes sent (and signed): compact JSON in the envelope's own key order, whatever the store kept."""
    ordered = {key: envelope.get(key) for key in ("id", "type", "createdAt", "data")}
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
