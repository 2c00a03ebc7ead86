"""/events: the caller's bot events aggregated (the feed), and the live streams of them (Server-Sent Events)."""

from __future__ import annotations

from sse_starlette import EventSourceResponse

from api.routing import Context, Router
from api.sse import event_stream, start_after
from meetbot.domain import bots as bot_ops
from meetbot.domain import events as event_reads
from meetbot.schemas.bots import BotEvent, BotEventList
from meetbot.schemas.common import page_envelope
from meetbot.schemas.events import EventFeedQuery, EventStreamQuery

router = Router(not_found="Bot not found")
TAG = "Events"
SSE = "text/event-stream"


@router.route(
    "GET",
    "/events",
    "The caller's events over all their bots, newest first (filters: bot_id, type, since, until)",
    TAG,
    query=EventFeedQuery,
    response=BotEventList,
)
def list_events(ctx: Context, query: EventFeedQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = event_reads.feed(conn, ctx.user_id, query)
    return page_envelope("events", BotEvent, rows, total, query)


@router.route(
    "GET",
    "/events/stream",
    "Live stream (Server-Sent Events) of the caller's events from now on, or after Last-Event-ID. "
    "Each message: id = the event id, event = its type, data = the event as in GET /events; "
    "a comment line every 15 s as a heartbeat",
    TAG,
    query=EventStreamQuery,
    response_media=SSE,
)
def stream_events(ctx: Context, query: EventStreamQuery) -> EventSourceResponse:
    after = start_after(ctx, query)
    if after is None:
        with ctx.transaction() as conn:
            after = event_reads.latest_id(conn)
    return event_stream(ctx, ctx.user_id, None, after)


@router.route(
    "GET",
    "/bots/{id}/events/stream",
    "Live stream (Server-Sent Events) of one bot's events: all of them from the first, or those after "
    "Last-Event-ID, then each new one as it happens. Messages as in GET /events/stream",
    TAG,
    query=EventStreamQuery,
    response_media=SSE,
    errors=(404,),
)
def stream_bot_events(ctx: Context, id: int, query: EventStreamQuery) -> EventSourceResponse:
    after = start_after(ctx, query)
    with ctx.transaction() as conn:
        bot_ops.get_bot(conn, ctx.user_id, id)  # another user's bot: 404
    return event_stream(ctx, ctx.user_id, id, after or 0)
