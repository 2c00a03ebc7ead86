"""The caller's bot events: the aggregated feed, and the reads by id behind the live streams (always owner-scoped)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from meetbot.db.pages import count_and_page
from meetbot.db.tables import bot_events, bots
from meetbot.schemas.events import EventFeedQuery


def _scope(user_id: int, bot_id: int | None) -> sa.ColumnElement[bool]:
    """The events a stream or feed may show: the user's bots' (or one of them, already known to be the user's)."""
    if bot_id is not None:
        return bot_events.c.bot_id == bot_id
    return bot_events.c.bot_id.in_(sa.select(bots.c.id).where(bots.c.user_id == user_id))


def feed(conn: sa.Connection, user_id: int, query: EventFeedQuery) -> tuple[list[sa.Row], int]:
    """One page of the user's events over all their bots, newest first."""
    where = [bots.c.user_id == user_id]
    if query.bot_id is not None:
        where.append(bot_events.c.bot_id == query.bot_id)
    if query.type is not None:
        where.append(bot_events.c.type == query.type)
    if query.since is not None:
        where.append(bot_events.c.created_at >= query.since)
    if query.until is not None:
        where.append(bot_events.c.created_at < query.until)
    select = sa.select(bot_events).join(bots, bots.c.id == bot_events.c.bot_id).where(*where)
    return count_and_page(conn, select, bot_events.c.id.desc(), query)


def latest_id(conn: sa.Connection) -> int:
    """The newest event id of all: a stream that starts "now" starts after it."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(bot_events.c.id), 0))).scalar_one())


def events_after(conn: sa.Connection, user_id: int, bot_id: int | None, after: int, limit: int) -> list[sa.Row]:
    select = sa.select(bot_events).where(_scope(user_id, bot_id), bot_events.c.id > after)
    return list(conn.execute(select.order_by(bot_events.c.id).limit(limit)).all())


def ids_between(conn: sa.Connection, user_id: int, bot_id: int | None, low: int, high: int) -> list[int]:
    """Ids in (low, high]: a stream compares them with what it sent to find events that committed late."""
    select = sa.select(bot_events.c.id).where(_scope(user_id, bot_id), bot_events.c.id > low, bot_events.c.id <= high)
    return list(conn.execute(select).scalars())


def events_by_ids(conn: sa.Connection, user_id: int, bot_id: int | None, ids: Iterable[int]) -> list[sa.Row]:
    select = sa.select(bot_events).where(_scope(user_id, bot_id), bot_events.c.id.in_(list(ids)))
    return list(conn.execute(select.order_by(bot_events.c.id)).all())
