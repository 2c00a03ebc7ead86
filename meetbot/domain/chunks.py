"""Transcript chunks: the pieces of a recording a bot hands to the transcribers while its meeting goes on."""

from __future__ import annotations

from typing import Any

import dramatiq
import sqlalchemy as sa

from meetbot import queue
from meetbot.db import now_utc
from meetbot.db.tables import transcript_chunks, transcripts
from meetbot.domain import jobs

chunks = transcript_chunks


def live_job(conn: sa.Connection, bot_id: int) -> sa.Row | None:
    """The bot's transcript job when it is being built from chunks and not finished yet."""
    row = jobs.find_job(conn, jobs.TRANSCRIPT, bot_id)
    if row is None or row.status not in jobs.PENDING or not (row.options or {}).get("chunked"):
        return None
    return row


def add_chunk(
    conn: sa.Connection,
    bot_id: int,
    user_id: int,
    idx: int,
    span: tuple[float, float],
    storage_key: str,
    final: bool,
    options: dict[str, Any],
) -> dramatiq.Message:
    """Record a chunk (starting the chunked transcript job with the first one); the caller enqueues the message."""
    now = now_utc()
    if jobs.find_job(conn, jobs.TRANSCRIPT, bot_id) is None:
        conn.execute(
            transcripts.insert().values(
                bot_id=bot_id, user_id=user_id, status=jobs.PROCESSING, progress=0.0, attempt=1,
                options={**options, "chunked": True}, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    conn.execute(
        chunks.insert().values(
            bot_id=bot_id, idx=idx, start_seconds=span[0], end_seconds=span[1], final=final,
            storage_key=storage_key, status=jobs.QUEUED, created_at=now, updated_at=now,
        )
    )  # fmt: skip
    return queue.message_for(queue.QUEUE_TRANSCRIBE, queue.ACTOR_TRANSCRIBE_CHUNK, bot_id, idx)


def claim_chunk(conn: sa.Connection, bot_id: int, idx: int) -> sa.Row | None:
    """Take a chunk (again, when its first worker died) while its transcript job still wants it."""
    if live_job(conn, bot_id) is None:
        return None
    moved = conn.execute(
        chunks.update()
        .where(chunks.c.bot_id == bot_id, chunks.c.idx == idx, chunks.c.status.in_(jobs.PENDING))
        .values(status=jobs.PROCESSING, attempt=chunks.c.attempt + 1, updated_at=now_utc())
    ).rowcount
    if not moved:
        return None
    return conn.execute(sa.select(chunks).where(chunks.c.bot_id == bot_id, chunks.c.idx == idx)).one()


def finish_chunk(conn: sa.Connection, bot_id: int, idx: int, result: dict[str, Any] | None, error: str | None) -> None:
    conn.execute(
        chunks.update()
        .where(chunks.c.bot_id == bot_id, chunks.c.idx == idx, chunks.c.status == jobs.PROCESSING)
        .values(
            status=jobs.FAILED if error else jobs.DONE, result=result, error=error, updated_at=now_utc()
        )
    )  # fmt: skip


def all_chunks(conn: sa.Connection, bot_id: int) -> list[sa.Row]:
    return list(conn.execute(sa.select(chunks).where(chunks.c.bot_id == bot_id).order_by(chunks.c.idx)).all())


def complete(rows: list[sa.Row]) -> bool:
    """Whether the final chunk is in and every chunk is transcribed (or failed)."""
    return any(row.final for row in rows) and all(row.status in (jobs.DONE, jobs.FAILED) for row in rows)


def drop_chunks(conn: sa.Connection, bot_id: int) -> list[str]:
    """Forget the bot's chunks; returns their storage keys for the caller to delete."""
    keys = [row.storage_key for row in all_chunks(conn, bot_id)]
    conn.execute(chunks.delete().where(chunks.c.bot_id == bot_id))
    return keys
