"""Dramatiq actors of MeetBot's workers, declared on a given broker (no import-time global broker)."""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from meetbot import queue
from workers.context import WorkerContext


def declare_actors(broker: dramatiq.Broker, ctx: WorkerContext) -> dict[str, dramatiq.Actor]:
    """Declare every actor on broker, bound to this process's context."""
    bot_time_limit_ms = int((ctx.settings.max_in_call_minutes + ctx.settings.join_timeout_seconds / 60 + 30) * 60_000)

    def run_bot(bot_id: int, attempt: int) -> None:
        from workers.bots.runner import run_bot as runner

        if ctx.draining.is_set():  # taken in the instant the worker began to drain: for another worker
            ctx.broker.enqueue(queue.run_bot_message(bot_id, attempt))
            return
        with ctx.bot_slot():
            runner(ctx, bot_id, attempt)

    def reap_stale_bots() -> None:
        from workers.maintenance import reap_stale_bots as reap

        reap(ctx)

    def expire_recordings() -> None:
        from workers.maintenance import retention_pass

        retention_pass(ctx)  # recordings, then request logs, bot logs and events past their retention

    def transcribe_recording(bot_id: int, attempt: int) -> None:
        from workers.transcription import run_transcription

        run_transcription(ctx, bot_id, attempt)

    def transcribe_chunk(bot_id: int, idx: int) -> None:
        from workers.transcription import run_chunk

        run_chunk(ctx, bot_id, idx)

    def summarize_transcript(bot_id: int, attempt: int) -> None:
        from workers.transcription import run_summary

        run_summary(ctx, bot_id, attempt)

    def deliver_webhook(delivery_id: int) -> None:
        from workers.webhooks import deliver

        deliver(ctx, delivery_id)

    def send_due_webhooks() -> None:
        from workers.webhooks import send_due

        send_due(ctx)

    # Every actor runs its message once (max_retries=0): a bot ends FATAL with its reason and never rejoins on its
    # own; a job fails with its reason, and a message whose worker died is redelivered by the broker and claimed
    # again (the row's attempt number makes that safe); webhook retries are our own schedule and ledger; a
    # maintenance pass leaves what it did not finish to the next one. Only the queue and the time limit differ.
    webhook_limit_ms = int((ctx.settings.webhook_timeout_seconds + 60) * 1000)
    table: list[tuple[str, str, Callable[..., None], int]] = [
        (queue.ACTOR_RUN_BOT, queue.QUEUE_BOTS, run_bot, bot_time_limit_ms),
        (queue.ACTOR_REAP, queue.QUEUE_MAINTENANCE, reap_stale_bots, 120_000),
        (queue.ACTOR_EXPIRE_RECORDINGS, queue.QUEUE_MAINTENANCE, expire_recordings, 600_000),
        (queue.ACTOR_TRANSCRIBE, queue.QUEUE_TRANSCRIBE, transcribe_recording, 6 * 3600_000),
        (queue.ACTOR_TRANSCRIBE_CHUNK, queue.QUEUE_TRANSCRIBE, transcribe_chunk, 3600_000),
        (queue.ACTOR_SUMMARIZE, queue.QUEUE_SUMMARIZE, summarize_transcript, 3600_000),
        (queue.ACTOR_DELIVER_WEBHOOK, queue.QUEUE_WEBHOOKS, deliver_webhook, webhook_limit_ms),
        (queue.ACTOR_SEND_DUE_WEBHOOKS, queue.QUEUE_MAINTENANCE, send_due_webhooks, 120_000),
    ]
    return {
        name: dramatiq.actor(fn, actor_name=name, queue_name=queue_name, broker=broker, max_retries=0, time_limit=limit)
        for name, queue_name, fn, limit in table
    }
