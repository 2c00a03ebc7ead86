"""Live bot events as Server-Sent Events: the rows after Last-Event-ID, then each event as soon as it commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.routing import Context
from meetbot.domain import events as event_reads
from meetbot.errors import ValidationFailed
from meetbot.event_bus import Notice
from meetbot.schemas.bots import BotEvent
from meetbot.schemas.events import MAX_ID, EventStreamQuery

log = logging.getLogger("meetbot.api.sse")
BATCH = 200  # rows per database read; a stream behind by more reads again at once
# An id is drawn before its transaction commits, so on PostgreSQL events of different bots can commit out of id
# order. Ids sent within this window are kept, and the ids below them read again, to catch such a late one.
SETTLE_SECONDS = 10.0
SEND_TIMEOUT_SECONDS = 30.0  # a client that reads nothing for this long is dropped


@dataclass
class Cursor:
    """A stream's position: every event up to `floor` is settled; `sent` holds the ids above it and when."""

    floor: int
    high: int = 0
    sent: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.high = max(self.high, self.floor)

    def settle(self, now: float) -> None:
        """Ids sent SETTLE_SECONDS ago: anything below them has committed (or never will) by now."""
        cutoff = now - SETTLE_SECONDS
        while self.sent:  # oldest first: a dict keeps the order ids were sent in
            event_id, at = next(iter(self.sent.items()))
            if at > cutoff:
                break
            del self.sent[event_id]
            self.floor = max(self.floor, event_id)

    def mark(self, event_id: int, now: float) -> None:
        self.sent[event_id] = now
        self.high = max(self.high, event_id)


def start_after(ctx: Context, query: EventStreamQuery) -> int | None:
    """The Last-Event-ID header (a browser's reconnect), else ?lastEventId=, else None (the stream's own start)."""
    header = ctx.request.headers.get("last-event-id", "").strip()
    if header:
        if not (header.isascii() and header.isdigit() and len(header) <= 19 and int(header) <= MAX_ID):
            raise ValidationFailed(
                [{"loc": ["header", "Last-Event-ID"], "msg": "value is not a valid event id", "type": "type_error"}]
            )
        return int(header)
    return query.last_event_id


def _message(row: sa.Row, sse_id: int) -> ServerSentEvent:
    data = BotEvent.model_validate(row).model_dump_json(by_alias=True)
    return ServerSentEvent(data=data, event=row.type, id=str(sse_id))


def _read_late(engine: sa.Engine, user_id: int, bot_id: int | None, cursor: Cursor, sent: set[int]) -> list[sa.Row]:
    """Events below the cursor's high mark that were not sent: they committed after later ones."""
    with engine.connect() as conn:
        missing = set(event_reads.ids_between(conn, user_id, bot_id, cursor.floor, cursor.high)) - sent
        return event_reads.events_by_ids(conn, user_id, bot_id, missing) if missing else []


def _read_after(engine: sa.Engine, user_id: int, bot_id: int | None, after: int) -> list[sa.Row]:
    with engine.connect() as conn:
        return event_reads.events_after(conn, user_id, bot_id, after, BATCH)


@dataclass
class _SharedRead:
    started: float
    future: asyncio.Future[list[sa.Row]]


_reads: dict[tuple[Any, ...], _SharedRead] = {}  # in-flight reads, by event loop, engine, scope and start


async def _rows_after(engine: sa.Engine, user_id: int, bot_id: int | None, after: int, fresh: float) -> list[sa.Row]:
    """The events after `after`, read once for all the streams that want the same rows at the same moment.

    A stream joins a read under way only if it began at or after `fresh` (when the stream heard of its latest
    event, or started watching): a read begun earlier may not see that event yet.
    """
    key = (id(asyncio.get_running_loop()), id(engine), user_id, bot_id, after)
    read = _reads.get(key)
    if read is None or read.started < fresh:
        future = asyncio.ensure_future(run_in_threadpool(_read_after, engine, user_id, bot_id, after))
        read = _reads[key] = _SharedRead(time.monotonic(), future)

        def done(finished: asyncio.Future[list[sa.Row]], key: tuple[Any, ...] = key, read: _SharedRead = read) -> None:
            if _reads.get(key) is read:
                del _reads[key]
            if not finished.cancelled():
                finished.exception()  # retrieved here: every waiter may have gone

        future.add_done_callback(done)
    return await asyncio.shield(read.future)  # one stream's disconnect does not cancel the others' read


async def _stream(ctx: Context, user_id: int, bot_id: int | None, after: int) -> AsyncIterator[ServerSentEvent]:
    services = ctx.services
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    cursor = Cursor(after)
    behind = False  # a notice of an id at or below what was sent: look for late events now

    def noticed(event_id: int) -> None:
        nonlocal behind, fresh
        behind = behind or event_id <= cursor.high
        fresh = time.monotonic()
        wake.set()

    def on_notice(notice: Notice) -> None:  # on the notifying thread
        loop.call_soon_threadsafe(noticed, notice.event_id)

    watch = services.event_bus.watch(user_id, bot_id, on_notice)
    fresh = time.monotonic()  # when the stream last heard of an event (or began to watch)
    poll = services.settings.sse_poll_seconds
    last_look = time.monotonic()
    log.info("event stream opened", extra={"user_id": user_id, "bot_id": bot_id, "after": after})
    try:
        while True:
            wake.clear()
            now = time.monotonic()
            cursor.settle(now)
            look_back = behind or now - last_look >= poll
            behind = False
            if look_back:
                last_look = now
            late: list[sa.Row] = []
            try:
                if look_back and cursor.high > cursor.floor:
                    sent = set(cursor.sent)
                    late = await run_in_threadpool(_read_late, services.engine, user_id, bot_id, cursor, sent)
                rows = await _rows_after(services.engine, user_id, bot_id, cursor.high, fresh)
            except sa.exc.SQLAlchemyError as exc:  # the database away for a while: the stream waits for it
                log.warning("event stream cannot read the database: %s", exc.__class__.__name__)
                behind = look_back or behind
                await asyncio.sleep(poll)
                continue
            now = time.monotonic()
            for row in late:
                # Sent under the stream's position, not its own id: a resume from it must not repeat later events.
                yield _message(row, max(cursor.high, row.id))
                cursor.mark(row.id, now)
            for row in rows:
                yield _message(row, row.id)
                cursor.mark(row.id, now)
            if len(rows) == BATCH:
                continue
            with contextlib.suppress(TimeoutError):  # the poll: a safety net for a lost notice
                await asyncio.wait_for(wake.wait(), timeout=poll)
    finally:
        services.event_bus.unwatch(watch)
        log.info("event stream closed", extra={"user_id": user_id, "bot_id": bot_id, "last_id": cursor.high})


def event_stream(ctx: Context, user_id: int, bot_id: int | None, after: int) -> EventSourceResponse:
    """The streaming response; heartbeat comments every sse_heartbeat_seconds; ends on disconnect or shutdown."""
    return EventSourceResponse(
        _stream(ctx, user_id, bot_id, after),
        ping=ctx.services.settings.sse_heartbeat_seconds,
        send_timeout=SEND_TIMEOUT_SECONDS,
    )
