"""Dramatiq actors of MeetBot's workers, declared on a given broker (no import-time global broker)."""

from __future__ import annotations

import dramatiq

from meetbot import queue
from workers.context import WorkerContext


def declare_actors(broker: dramatiq.Broker, ctx: WorkerContext) -> dict[str, dramatiq.Actor]:
    """Declare every actor on broker, bound to this process's context."""
    bot_time_limit_ms = int((ctx.settings.max_in_call_minutes + ctx.settings.join_timeout_seconds / 60 + 30) * 60_000)

    def run_bot(bot_id: int, attempt: int) -> None:
        from workers.bots.runner import run_bot as runner

        runner(ctx, bot_id, attempt)

    def reap_stale_bots() -> None:
        from workers.maintenance import reap_stale_bots as reap

        reap(ctx)

    def expire_recordings() -> None:
        from workers.maintenance import expire_recordings as expire

        expire(ctx)

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

    return {
        queue.ACTOR_RUN_BOT: dramatiq.actor(
            run_bot,
            actor_name=queue.ACTOR_RUN_BOT,
            queue_name=queue.QUEUE_BOTS,
            broker=broker,
            max_retries=0,  # a failed bot ends FATAL with its reason; it never rejoins on its own
            time_limit=bot_time_limit_ms,
        ),
        queue.ACTOR_REAP: dramatiq.actor(
            reap_stale_bots,
            actor_name=queue.ACTOR_REAP,
            queue_name=queue.QUEUE_MAINTENANCE,
            broker=broker,
            max_retries=0,
            time_limit=120_000,
        ),
        queue.ACTOR_EXPIRE_RECORDINGS: dramatiq.actor(
            expire_recordings,
            actor_name=queue.ACTOR_EXPIRE_RECORDINGS,
            queue_name=queue.QUEUE_MAINTENANCE,
            broker=broker,
            max_retries=0,  # the next pass picks up whatever this one left
            time_limit=600_000,
        ),
        # A job fails with its reason instead of being retried; a message whose worker died is redelivered by
        # the broker and claimed again (the job row's attempt number makes that safe).
        queue.ACTOR_TRANSCRIBE: dramatiq.actor(
            transcribe_recording,
            actor_name=queue.ACTOR_TRANSCRIBE,
            queue_name=queue.QUEUE_TRANSCRIBE,
            broker=broker,
            max_retries=0,
            time_limit=6 * 3600_000,
        ),
        queue.ACTOR_TRANSCRIBE_CHUNK: dramatiq.actor(
            transcribe_chunk,
            actor_name=queue.ACTOR_TRANSCRIBE_CHUNK,
            queue_name=queue.QUEUE_TRANSCRIBE,
            broker=broker,
            max_retries=0,
            time_limit=3600_000,
        ),
        queue.ACTOR_SUMMARIZE: dramatiq.actor(
            summarize_transcript,
            actor_name=queue.ACTOR_SUMMARIZE,
            queue_name=queue.QUEUE_SUMMARIZE,
            broker=broker,
            max_retries=0,
            time_limit=3600_000,
        ),
        # One attempt per message; retries are our own (the ledger and the schedule), never Dramatiq's.
        queue.ACTOR_DELIVER_WEBHOOK: dramatiq.actor(
            deliver_webhook,
            actor_name=queue.ACTOR_DELIVER_WEBHOOK,
            queue_name=queue.QUEUE_WEBHOOKS,
            broker=broker,
            max_retries=0,
            time_limit=int((ctx.settings.webhook_timeout_seconds + 60) * 1000),
        ),
        queue.ACTOR_SEND_DUE_WEBHOOKS: dramatiq.actor(
            send_due_webhooks,
            actor_name=queue.ACTOR_SEND_DUE_WEBHOOKS,
            queue_name=queue.QUEUE_MAINTENANCE,
            broker=broker,
            max_retries=0,  # the next pass picks up whatever this one left
            time_limit=120_000,
        ),
    }
