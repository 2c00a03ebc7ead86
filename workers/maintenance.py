"""The reaper: ends bots whose worker vanished, and re-queues or fails deploys whose message was lost."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from meetbot import queue
from meetbot.db import now_utc
from meetbot.db.tables import bots
from meetbot.domain import bot_states
from meetbot.domain.bots import scheduled_start
from meetbot.schemas.bots import BotStatus as S
from workers.bots.recording import recover_spooled_recordings
from workers.context import WorkerContext

log = logging.getLogger("meetbot.reaper")
MAX_DEPLOY_ATTEMPTS = 3


def reap_stale_bots(ctx: WorkerContext) -> dict[str, int]:
    """One pass of the reaper; safe to run from several processes at once (every change is conditional)."""
    now = now_utc()
    settings = ctx.settings
    ended = requeued = failed = 0
    with ctx.engine.connect() as conn:
        running = conn.execute(
            sa.select(bots.c.id, bots.c.config, bots.c.last_heartbeat, bots.c.updated_at).where(
                bots.c.status.in_([str(s) for s in bot_states.RUNNING])
            )
        ).all()
        deploying = conn.execute(
            sa.select(bots.c.id, bots.c.config, bots.c.deployed_at, bots.c.deploy_attempt).where(
                bots.c.status == S.DEPLOYING
            )
        ).all()
    for row in running:
        interval_s = int(row.config.get("heartbeatInterval") or settings.default_heartbeat_interval_ms) / 1000
        threshold = max(3 * interval_s, settings.stale_heartbeat_min_seconds)
        seen = row.last_heartbeat or row.updated_at
        if now - seen > timedelta(seconds=threshold):
            with ctx.engine.begin() as conn:
                if bot_states.transition(
                    conn, row.id, S.FATAL, "worker_lost", f"No heartbeat for {threshold:g} s: its worker is gone"
                ):
                    conn.execute(bots.update().where(bots.c.id == row.id).values(left_at=now))
                    ended += 1
    for row in deploying:
        # Due when its (possibly scheduled) start came; a message can wait in the queue a while.
        start = scheduled_start(row.config)
        due = max(row.deployed_at or now, start) if start else (row.deployed_at or now)
        if now - due < timedelta(seconds=settings.deploying_grace_seconds):
            continue
        with ctx.engine.begin() as conn:
            if row.deploy_attempt >= MAX_DEPLOY_ATTEMPTS:
                if bot_states.transition(
                    conn, row.id, S.FATAL, "internal_error", "No worker picked the bot up", left_at=now
                ):
                    failed += 1
                continue
            moved = conn.execute(
                bots.update()
                .where(bots.c.id == row.id, bots.c.status == S.DEPLOYING, bots.c.deploy_attempt == row.deploy_attempt)
                .values(deploy_attempt=row.deploy_attempt + 1, deployed_at=now, updated_at=now)
            ).rowcount
        if moved:
            queue.send(ctx.broker, queue.QUEUE_BOTS, queue.ACTOR_RUN_BOT, row.id, row.deploy_attempt + 1)
            requeued += 1
    recovered = recover_spooled_recordings(ctx)
    result = {"ended": ended, "requeued": requeued, "failed": failed, "recovered": recovered}
    if any(result.values()):
        log.info("reaper pass", extra=result)
    return result
