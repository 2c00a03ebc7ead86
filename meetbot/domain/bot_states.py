"""The bot state machine: allowed transitions, and the one function that moves a bot and records it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from meetbot import event_bus
from meetbot.db import now_utc
from meetbot.db.tables import bot_events, bot_logs, bots
from meetbot.schemas.bots import BotStatus as S
from meetbot.webhooks import outbox

ACTIVE = frozenset({S.DEPLOYING, S.JOINING_CALL, S.IN_WAITING_ROOM, S.IN_CALL, S.CALL_ENDED})
RUNNING = frozenset({S.JOINING_CALL, S.IN_WAITING_ROOM, S.IN_CALL, S.CALL_ENDED})
FINISHED = frozenset({S.DONE, S.FATAL})

ALLOWED: dict[S, frozenset[S]] = {
    S.DEPLOYING: frozenset({S.READY_TO_DEPLOY}),
    S.JOINING_CALL: frozenset({S.DEPLOYING}),
    S.IN_WAITING_ROOM: frozenset({S.JOINING_CALL}),
    S.IN_CALL: frozenset({S.JOINING_CALL, S.IN_WAITING_ROOM}),
    S.CALL_ENDED: frozenset({S.READY_TO_DEPLOY, S.DEPLOYING, S.JOINING_CALL, S.IN_WAITING_ROOM, S.IN_CALL}),
    S.DONE: frozenset({S.CALL_ENDED}),
    S.FATAL: frozenset(ACTIVE),
}

SUB_CODES = frozenset(
    {
        "meeting_ended",
        "removed_by_host",
        "join_denied",
        "waiting_room_timeout",
        "no_one_joined",
        "everyone_left",
        "silence_timeout",
        "bot_detected",
        "end_time_reached",
        "max_duration_reached",
        "killed",
        "meeting_not_found",
        "meeting_unreachable",
        "invalid_meeting_url",
        "sign_in_required",
        "worker_lost",
        "internal_error",
        "left",
        "worker_shutdown",
    }
)


def record_event(
    conn: sa.Connection,
    bot_id: int,
    event_type: str,
    data: dict[str, Any],
    status: S | None = None,
) -> int:
    # Locks the bot's row: one bot's events commit in id order, so a stream resumed after an id misses none.
    owner = conn.execute(sa.select(bots.c.user_id).where(bots.c.id == bot_id).with_for_update(key_share=True)).scalar()
    if status is None:
        status = conn.execute(sa.select(bots.c.status).where(bots.c.id == bot_id)).scalar()
    created_at = now_utc()
    event_id = conn.execute(
        bot_events.insert()
        .values(bot_id=bot_id, type=event_type, status=status, data=data, created_at=created_at)
        .returning(bot_events.c.id)
    ).scalar_one()
    outbox.record_bot_event(conn, bot_id, event_id, event_type, status, data, created_at)  # same transaction
    event_bus.note_event(conn, event_id, bot_id, owner)  # live streams hear of it once this commits
    return event_id


def record_log(conn: sa.Connection, bot_id: int, message: str, level: str = "INFO") -> None:
    conn.execute(bot_logs.insert().values(bot_id=bot_id, level=level, message=message[:4000], created_at=now_utc()))


def transition(
    conn: sa.Connection,
    bot_id: int,
    to: S,
    sub_code: str | None = None,
    description: str = "",
    **values: Any,
) -> bool:
    """Move bot_id to status `to` if its current status allows it; record the STATUS_CHANGE event.

    Atomic (a conditional UPDATE), so two writers racing (the runner, a kill, the reaper) cannot
    both win. Returns False, changing nothing, when the bot is not in an allowed status.
    """
    if sub_code is not None and sub_code not in SUB_CODES:
        raise ValueError(f"unknown sub_code {sub_code}")
    now = now_utc()
    previous = conn.execute(sa.select(bots.c.status).where(bots.c.id == bot_id)).scalar()
    if previous is None or S(previous) not in ALLOWED[to]:
        return False
    changed = conn.execute(
        bots.update().where(bots.c.id == bot_id, bots.c.status == previous).values(status=to, updated_at=now, **values)
    ).rowcount
    if changed != 1:
        return False
    data = {"sub_code": sub_code, "description": description, "from": previous, "to": str(to)}
    record_event(conn, bot_id, "STATUS_CHANGE", data, status=to)
    return True
