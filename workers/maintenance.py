"""Maintenance jobs: the reaper (lost workers, lost deploys, spooled recordings), recording and log retention."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from meetbot import queue
from meetbot.db import now_utc
from meetbot.db.tables import api_request_logs, bot_events, bot_logs, bots
from meetbot.domain import bot_states
from meetbot.domain import recordings as rec_ops
from meetbot.domain.bots import scheduled_start
from meetbot.errors import StorageUnavailable
from meetbot.schemas.bots import BotStatus as S
from workers.bots.recording import heartbeat_stale_after, recover_spooled_recordings
from workers.context import WorkerContext

log = logging.getLogger("meetbot.reaper")
MAX_DEPLOY_ATTEMPTS = 3


def reap_stale_bots(ctx: WorkerContext) -> dict[str, int]:
    """One pass of the reaper; safe to run from several processes at once (every change is conditional)."""
    now = now_utc()
    requeued, failed = resend_lost_deploys(ctx, now)
    result = {
        "ended": end_lost_runners(ctx, now),
        "requeued": requeued,
        "failed": failed,
        "recovered": recover_spooled_recordings(ctx),
    }
    if any(result.values()):
        log.info("reaper pass", extra=result)
    return result


def end_lost_runners(ctx: WorkerContext, now: datetime) -> int:
    """FATAL/worker_lost for running bots whose heartbeat is older than 3 intervals (at least the minimum)."""
    settings = ctx.settings
    with ctx.engine.connect() as conn:
        running = conn.execute(
            sa.select(bots.c.id, bots.c.config, bots.c.last_heartbeat, bots.c.updated_at).where(
                bots.c.status.in_([str(s) for s in bot_states.RUNNING])
            )
        ).all()
    ended = 0
    for row in running:
        threshold = heartbeat_stale_after(row.config, settings)
        if now - (row.last_heartbeat or row.updated_at) <= timedelta(seconds=threshold):
            continue
        with ctx.engine.begin() as conn:
            reason = f"No heartbeat for {threshold:g} s: its worker is gone"
            if bot_states.transition(conn, row.id, S.FATAL, "worker_lost", reason, left_at=now):
                ended += 1
    return ended


def resend_lost_deploys(ctx: WorkerContext, now: datetime) -> tuple[int, int]:
    """DEPLOYING bots past their start + grace whose message the broker no longer holds: send again, or fail.

    A message still in the broker is only waiting for a free bot slot and is left alone.
    """
    with ctx.engine.connect() as conn:
        deploying = conn.execute(
            sa.select(bots.c.id, bots.c.config, bots.c.deployed_at, bots.c.deploy_attempt, bots.c.deploy_message_id)
            .where(bots.c.status == S.DEPLOYING)
        ).all()  # fmt: skip
    requeued = failed = 0
    grace = timedelta(seconds=ctx.settings.deploying_grace_seconds)
    for row in deploying:
        start = scheduled_start(row.config)
        due = max(row.deployed_at or now, start) if start else (row.deployed_at or now)
        if now - due < grace:
            continue
        if row.deploy_message_id and queue.message_pending(ctx.broker, queue.QUEUE_BOTS, row.deploy_message_id):
            continue
        with ctx.engine.begin() as conn:
            if row.deploy_attempt >= MAX_DEPLOY_ATTEMPTS:
                reason = "No worker picked the bot up"
                failed += bot_states.transition(conn, row.id, S.FATAL, "internal_error", reason, left_at=now)
                continue
            message = queue.run_bot_message(row.id, row.deploy_attempt + 1)
            moved = conn.execute(
                bots.update()
                .where(bots.c.id == row.id, bots.c.status == S.DEPLOYING, bots.c.deploy_attempt == row.deploy_attempt)
                .values(
                    deploy_attempt=row.deploy_attempt + 1,
                    deploy_message_id=message.message_id,
                    deployed_at=now,
                    updated_at=now,
                )
            ).rowcount
        if moved:
            ctx.broker.enqueue(message)
            requeued += 1
    return requeued, failed


def expire_recordings(ctx: WorkerContext, batch: int = 100) -> int:
    """Delete recordings past their retention (the bytes, then the row and share links), with an event each.

    A store that is down stops the pass; the next pass takes up where this one stopped.
    """
    deleted = 0
    while True:
        with ctx.engine.connect() as conn:
            expired = rec_ops.expired_recordings(conn, now_utc(), batch)
        for row in expired:
            try:
                ctx.store.delete(row.storage_key)
            except StorageUnavailable:
                log.warning("retention pass stopped: the store is unavailable", extra={"deleted": deleted})
                return deleted
            with ctx.engine.begin() as conn:
                deleted += rec_ops.forget_recording(conn, row.bot_id, "retention")
        if len(expired) < batch:
            break
    if deleted:
        log.info("expired recordings deleted", extra={"count": deleted})
    return deleted


LOG_TABLES = (api_request_logs, bot_logs, bot_events)


def prune_old_logs(ctx: WorkerContext, batch: int = 5000) -> dict[str, int]:
    """Delete request logs, bot logs and bot events older than MEETBOT_LOG_RETENTION_DAYS, a batch per transaction
    (short transactions: the API and the bots write these tables all the time)."""
    cutoff = now_utc() - timedelta(days=ctx.settings.log_retention_days)
    pruned: dict[str, int] = {}
    for table in LOG_TABLES:
        total = 0
        while True:
            with ctx.engine.begin() as conn:
                ids = sa.select(table.c.id).where(table.c.created_at < cutoff).order_by(table.c.id).limit(batch)
                deleted = conn.execute(table.delete().where(table.c.id.in_(ids.scalar_subquery()))).rowcount
            total += deleted
            if deleted < batch:
                break
        pruned[table.name] = total
    if any(pruned.values()):
        log.info("old logs pruned", extra=pruned)
    return pruned


def retention_pass(ctx: WorkerContext) -> None:
    """The scheduled retention job: recordings past their retention, then logs past theirs."""
    try:
        expire_recordings(ctx)
    finally:  # a failing recording pass does not keep the logs from their pruning
        prune_old_logs(ctx)
