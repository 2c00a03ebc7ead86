"""A user's webhooks and their deliveries: create, read, change, delete, ping, retry (the API's side)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from meetbot import outbound
from meetbot.db import now_utc
from meetbot.db.pages import fetch_page
from meetbot.db.tables import webhook_attempts, webhook_deliveries, webhooks
from meetbot.domain.bots import get_bot
from meetbot.errors import Conflict, NotFound, ValidationFailed
from meetbot.schemas.common import PageQuery
from meetbot.schemas.webhooks import DeliveryQuery, WebhookCreate, WebhookUpdate
from meetbot.webhooks import envelope, outbox, signing

WEBHOOK_NOT_FOUND = "Webhook not found"
DELIVERY_NOT_FOUND = "Delivery not found"


def check_url(url: str, allow_private: bool) -> None:
    """422 on body.url unless the guard would fetch it; no connection is made."""
    try:
        outbound.check_target(url, outbound.PRIVATE_OK if allow_private else outbound.PUBLIC)
    except outbound.OutboundRefused as exc:
        raise ValidationFailed([{"loc": ["body", "url"], "msg": str(exc.detail), "type": "value_error.url"}]) from exc


def get_webhook(conn: sa.Connection, user_id: int, webhook_id: int) -> sa.Row:
    row = conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.user_id == user_id)).first()
    if row is None:
        raise NotFound(WEBHOOK_NOT_FOUND)
    return row


def list_webhooks(conn: sa.Connection, user_id: int, query: PageQuery) -> tuple[list[sa.Row], int]:
    return fetch_page(conn, webhooks, [webhooks.c.user_id == user_id], webhooks.c.id, query)


def create_webhook(conn: sa.Connection, user_id: int, body: WebhookCreate, max_per_user: int) -> tuple[sa.Row, str]:
    """The new webhook and its secret (shown once). The URL must have been checked (check_url) before."""
    if body.bot_id is not None:
        get_bot(conn, user_id, body.bot_id)  # another user's bot: 404, as for any of their resources
    count = conn.execute(sa.select(sa.func.count()).where(webhooks.c.user_id == user_id)).scalar_one()
    if count >= max_per_user:
        raise Conflict(f"Webhook limit reached ({max_per_user} per user)")
    now = now_utc()
    secret = signing.new_secret()
    row = conn.execute(
        webhooks.insert()
        .values(
            user_id=user_id,
            url=body.url,
            events=body.events,
            description=body.description,
            active=body.active,
            bot_id=body.bot_id,
            secret=secret,
            created_at=now,
            updated_at=now,
        )
        .returning(*webhooks.c)
    ).one()
    return row, secret


def update_webhook(
    conn: sa.Connection, user_id: int, webhook_id: int, body: WebhookUpdate
) -> tuple[sa.Row, str | None]:
    """Apply the fields sent; the new secret when one was asked for. A new URL must have been checked before."""
    current = get_webhook(conn, user_id, webhook_id)
    sent = body.model_fields_set
    values: dict[str, Any] = {"updated_at": now_utc()}
    for field in ("url", "description", "active"):
        if field in sent and getattr(body, field) is None:
            raise ValidationFailed([{"loc": ["body", field], "msg": "may not be null", "type": "type_error.none"}])
        if field in sent:
            values[field] = getattr(body, field)
    if "events" in sent:
        values["events"] = body.events
    if "bot_id" in sent:
        if body.bot_id is not None:
            get_bot(conn, user_id, body.bot_id)
        values["bot_id"] = body.bot_id
    if values.get("active") and not current.active:  # re-enabled: its failure clock starts again
        values.update(failing_since=None, disabled_at=None, disabled_event=None)
    secret = signing.new_secret() if body.rotate_secret else None
    if secret is not None:
        values["secret"] = secret
    row = conn.execute(webhooks.update().where(webhooks.c.id == webhook_id).values(**values).returning(*webhooks.c))
    return row.one(), secret


def delete_webhook(conn: sa.Connection, user_id: int, webhook_id: int) -> None:
    get_webhook(conn, user_id, webhook_id)
    conn.execute(webhooks.delete().where(webhooks.c.id == webhook_id))  # deliveries and attempts cascade


def attempts_of(conn: sa.Connection, delivery_ids: list[int]) -> dict[int, list[sa.Row]]:
    found: dict[int, list[sa.Row]] = {delivery_id: [] for delivery_id in delivery_ids}
    if delivery_ids:
        rows = conn.execute(
            sa.select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id.in_(delivery_ids))
            .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.id)
        )
        for row in rows:
            found[row.delivery_id].append(row)
    return found


def delivery_fields(row: sa.Row, attempts: list[sa.Row]) -> dict[str, Any]:
    """A delivery row and its attempts in the resource's shape (the column `attempts` is the count)."""
    fields = dict(row._mapping)
    fields["attempt_count"] = fields.pop("attempts")
    fields["attempts"] = [dict(attempt._mapping) for attempt in attempts]
    if row.status != outbox.PENDING:
        fields["next_attempt_at"] = None
    return fields


def list_deliveries(
    conn: sa.Connection, user_id: int, webhook_id: int, query: DeliveryQuery
) -> tuple[list[dict[str, Any]], int]:
    """The webhook's deliveries, newest first, each with its attempts."""
    get_webhook(conn, user_id, webhook_id)
    where = [webhook_deliveries.c.webhook_id == webhook_id]
    if query.status:
        where.append(webhook_deliveries.c.status == query.status)
    rows, total = fetch_page(conn, webhook_deliveries, where, webhook_deliveries.c.id.desc(), query)
    attempts = attempts_of(conn, [row.id for row in rows])
    return [delivery_fields(row, attempts[row.id]) for row in rows], total


def get_delivery(conn: sa.Connection, user_id: int, webhook_id: int, delivery_id: int) -> dict[str, Any]:
    get_webhook(conn, user_id, webhook_id)
    row = conn.execute(
        sa.select(webhook_deliveries).where(
            webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.webhook_id == webhook_id
        )
    ).first()
    if row is None:
        raise NotFound(DELIVERY_NOT_FOUND)
    return delivery_fields(row, attempts_of(conn, [row.id])[row.id])


def create_ping(conn: sa.Connection, user_id: int, webhook_id: int) -> int:
    """A ping delivery for the webhook, sent once (no retries), even when the webhook is inactive."""
    webhook = get_webhook(conn, user_id, webhook_id)
    now = now_utc()
    return outbox.insert_delivery(conn, webhook.id, user_id, envelope.ping(webhook.id, now), now, max_attempts=1)


def retry_delivery(conn: sa.Connection, user_id: int, webhook_id: int, delivery_id: int) -> dict[str, Any]:
    """Send the delivery again now: a pending one sooner, a finished one once more (one attempt, no retries)."""
    current = get_delivery(conn, user_id, webhook_id, delivery_id)
    now = now_utc()
    table = webhook_deliveries
    values: dict[str, Any] = {"status": outbox.PENDING, "next_attempt_at": now, "updated_at": now}
    if current["status"] != outbox.PENDING:
        values["max_attempts"] = current["attempt_count"] + 1
    moved = conn.execute(
        table.update()
        .where(
            table.c.id == delivery_id,
            table.c.attempts == current["attempt_count"],
            sa.or_(table.c.locked_until.is_(None), table.c.locked_until < now),
        )
        .values(**values)
    ).rowcount
    if not moved:
        raise Conflict("The delivery is being sent right now")
    return get_delivery(conn, user_id, webhook_id, delivery_id)


def attempt_after(conn: sa.Connection, delivery_id: int, attempts_before: int) -> sa.Row | None:
    """The delivery's first attempt numbered above attempts_before, once a worker recorded it."""
    return conn.execute(
        sa.select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id == delivery_id, webhook_attempts.c.attempt > attempts_before)
        .order_by(webhook_attempts.c.id)
        .limit(1)
    ).first()
