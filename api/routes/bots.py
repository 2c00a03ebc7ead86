"""/bots: the bot resource, deploy and kill, its events and logs."""

from __future__ import annotations

import logging

from api.routing import Context, Router
from meetbot import slots
from meetbot.domain import bots as bot_ops
from meetbot.errors import ServiceUnavailable
from meetbot.schemas.bots import (
    Bot,
    BotCreate,
    BotEvent,
    BotEventList,
    BotEventQuery,
    BotList,
    BotListQuery,
    BotLog,
    BotLogList,
    BotLogQuery,
    BotUpdate,
)
from meetbot.schemas.common import page_envelope

router = Router(not_found="Bot not found")
TAG = "Bots"
log = logging.getLogger("meetbot.api")


def _announce_queue_positions(ctx: Context, bot_id: int) -> None:
    try:
        slots.announce_queue_positions(ctx.services.engine, ctx.services.slot_registry)
    except Exception:  # the bot workers announce them again within seconds
        log.exception("queue positions not announced after a change to bot %s", bot_id)


@router.route("GET", "/bots", "List bots", TAG, query=BotListQuery, response=BotList, cached=True)
def list_bots(ctx: Context, query: BotListQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = bot_ops.list_bots(conn, ctx.user_id, query)
    return page_envelope("bots", Bot, [bot_ops.bot_fields(row) for row in rows], total, query)


@router.route("POST", "/bots", "Create a bot", TAG, body=BotCreate, response=Bot, status=201)
async def create_bot(ctx: Context, body: BotCreate) -> bytes:
    row = await ctx.services.new_bots.submit((ctx.user_id, body))  # with the other creations under way
    return bot_ops.bot_json(row)


@router.route("GET", "/bots/{id}", "Get a bot", TAG, response=Bot, errors=(404,), cached=True)
def get_bot(ctx: Context, id: int) -> bytes:
    with ctx.transaction() as conn:
        return bot_ops.bot_json(bot_ops.get_bot(conn, ctx.user_id, id))


@router.route(
    "PATCH",
    "/bots/{id}",
    "Change a bot's settings (before deploy)",
    TAG,
    body=BotUpdate,
    response=Bot,
    errors=(404, 409),
)
def update_bot(ctx: Context, id: int, body: BotUpdate) -> bytes:
    with ctx.transaction() as conn:
        secret_keys = ctx.services.settings.secret_keys(ctx.services.secret_key)
        row = bot_ops.update_bot(conn, ctx.user_id, id, body, ctx.services.settings.allow_simulator, secret_keys)
    return bot_ops.bot_json(row)


@router.route(
    "DELETE",
    "/bots/{id}",
    "Delete a bot that is not active, and its recording",
    TAG,
    status=204,
    errors=(404, 409, 503),
)
def delete_bot(ctx: Context, id: int) -> None:
    with ctx.transaction() as conn:
        key = bot_ops.deletable_bot_recording(conn, ctx.user_id, id)
    if key is not None:
        ctx.services.store.delete(key)  # the bytes first: a store that is down leaves the bot as it was
    with ctx.transaction() as conn:
        bot_ops.delete_bot(conn, ctx.user_id, id)


@router.route("POST", "/bots/{id}/deploy", "Send the bot to its meeting", TAG, response=Bot, errors=(404, 409, 503))
def deploy_bot(ctx: Context, id: int) -> bytes:
    with ctx.transaction() as conn:
        deployment = bot_ops.deploy_bot(conn, ctx.user_id, id)
    try:
        ctx.services.broker.enqueue(deployment.message, delay=deployment.delay_ms or None)
    except Exception as exc:
        log.exception("could not enqueue bot %s", id)
        with ctx.transaction() as conn:
            bot_ops.undo_deploy(conn, id, "The work queue is unavailable; deploy again")
        raise ServiceUnavailable("The work queue is unavailable; try again") from exc
    if not deployment.delay_ms:  # due now: if every bot slot is busy, its QUEUED event tells its place in line
        _announce_queue_positions(ctx, id)
    with ctx.transaction() as conn:
        return bot_ops.bot_json(bot_ops.get_bot(conn, ctx.user_id, id))


@router.route(
    "POST",
    "/bots/{id}/kill",
    "Make the bot leave now (keeps its recording)",
    TAG,
    response=Bot,
    errors=(404, 409),
)
def kill_bot(ctx: Context, id: int) -> bytes:
    with ctx.transaction() as conn:
        running = bot_ops.kill_bot(conn, ctx.user_id, id)
    if running:
        try:
            ctx.services.kill_signals.notify(id)
        except Exception:  # the runner also sees the database flag within a second
            log.exception("kill notice for bot %s not published", id)
    else:  # a bot that was waiting for a slot left the line: those behind it move up now
        _announce_queue_positions(ctx, id)
    with ctx.transaction() as conn:
        return bot_ops.bot_json(bot_ops.get_bot(conn, ctx.user_id, id))


@router.route(
    "GET",
    "/bots/{id}/events",
    "The bot's events, oldest first",
    TAG,
    query=BotEventQuery,
    response=BotEventList,
    errors=(404,),
)
def bot_events(ctx: Context, id: int, query: BotEventQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = bot_ops.list_events(conn, ctx.user_id, id, query)
    return page_envelope("events", BotEvent, rows, total, query)


@router.route(
    "GET",
    "/bots/{id}/logs",
    "The bot's log lines, oldest first",
    TAG,
    query=BotLogQuery,
    response=BotLogList,
    errors=(404,),
)
def bot_logs(ctx: Context, id: int, query: BotLogQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = bot_ops.list_logs(conn, ctx.user_id, id, query)
    return page_envelope("logs", BotLog, rows, total, query)
