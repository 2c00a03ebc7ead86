"""The outbox: a bot event's deliveries, one per matching active webhook, written in the event's own transaction.

No event is lost if the process dies after the event commits: its deliveries committed with it. They are
enqueued on the `webhooks` queue once the transaction commits (meetbot.db.after_commit); should that message
be lost, the maintenance sweep sends every delivery that is due.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import dramatiq
import sqlalchemy as sa

from meetbot import queue
from meetbot.db.after_commit import after_commit
from meetbot.db.tables import bots, webhook_deliveries, webhooks
from meetbot.webhooks import envelope

log = logging.getLogger("meetbot.webhooks")
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_broker: dramatiq.Broker | None = None  # where deliveries recorded in this process are enqueued


def use_broker(broker: dramatiq.Broker | None) -> None:
    """The broker that after-commit enqueues go to (queue.build_broker sets the process's own)."""
    global _broker
    _broker = broker


def message(delivery_id: int) -> dramatiq.Message:
    return queue.message_for(queue.QUEUE_WEBHOOKS, queue.ACTOR_DELIVER_WEBHOOK, delivery_id)


def enqueue(broker: dramatiq.Broker, delivery_ids: Iterable[int], delay_ms: int | None = None) -> None:
    for delivery_id in delivery_ids:
        broker.enqueue(message(delivery_id), delay=delay_ms or None)


def enqueue_after_commit(conn: sa.Connection, delivery_ids: list[int], broker: dramatiq.Broker | None = None) -> None:
    """Send the deliveries' messages once conn's transaction commits (nothing when it rolls back)."""

    def send() -> None:
        target = broker or _broker
        if target is None:  # a process without a broker: the sweep of a worker sends them
            return
        try:
            enqueue(target, delivery_ids)
        except Exception:
            log.warning("deliveries not enqueued; the sweep sends them", extra={"deliveries": len(delivery_ids)})

    after_commit(conn, send)


def insert_delivery(
    conn: sa.Connection,
    webhook_id: int,
    user_id: int,
    event: dict[str, Any],
    now: datetime,
    max_attempts: int | None = None,
) -> int:
    return conn.execute(
        webhook_deliveries.insert()
        .values(
            webhook_id=webhook_id,
            user_id=user_id,
            event_id=event["id"],
            event_type=event["type"],
            payload=event,
            status=PENDING,
            attempts=0,
            max_attempts=max_attempts,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        .returning(webhook_deliveries.c.id)
    ).scalar_one()


def record_bot_event(
    conn: sa.Connection,
    bot_id: int,
    event_row_id: int,
    event_type: str,
    status: str | None,
    data: dict[str, Any],
    created_at: datetime,
) -> list[int]:
    """Pending deliveries of the event for the bot owner's active webhooks that want it; their ids."""
    kind = envelope.BOT_EVENT_TYPES.get(event_type)
    if kind is None:
        return []
    targets = conn.execute(
        sa.select(webhooks.c.id, webhooks.c.events, webhooks.c.user_id)
        .select_from(webhooks.join(bots, bots.c.user_id == webhooks.c.user_id))
        .where(
            bots.c.id == bot_id,
            webhooks.c.active.is_(True),
            sa.or_(webhooks.c.bot_id.is_(None), webhooks.c.bot_id == bot_id),
        )
    ).all()
    targets = [row for row in targets if row.events is None or kind in row.events]
    if not targets:
        return []
    event = envelope.bot_event(
        bot_id, event_row_id, event_type, None if status is None else str(status), data, created_at
    )
    assert event is not None
    ids = [insert_delivery(conn, row.id, row.user_id, event, created_at) for row in targets]
    enqueue_after_commit(conn, ids)
    return ids
