"""Transcript and summary jobs on a bot's recording: request, claim, progress, finish or fail, with events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq
import sqlalchemy as sa

from meetbot import queue
from meetbot.db import now_utc
from meetbot.db.tables import summaries, transcripts
from meetbot.domain import bot_states
from meetbot.errors import Conflict, NotFound

QUEUED, PROCESSING, DONE, FAILED = "queued", "processing", "done", "failed"
PENDING = (QUEUED, PROCESSING)


@dataclass(frozen=True)
class JobKind:
    table: sa.Table
    not_found: str
    ready_event: str
    failed_event: str
    queue: str
    actor: str


TRANSCRIPT = JobKind(
    transcripts, "Transcript not found", "TRANSCRIPT_READY", "TRANSCRIPT_FAILED",
    queue.QUEUE_TRANSCRIBE, queue.ACTOR_TRANSCRIBE,
)  # fmt: skip
SUMMARY = JobKind(
    summaries, "Summary not found", "SUMMARY_READY", "SUMMARY_FAILED", queue.QUEUE_SUMMARIZE, queue.ACTOR_SUMMARIZE
)


def find_job(conn: sa.Connection, kind: JobKind, bot_id: int) -> sa.Row | None:
    return conn.execute(sa.select(kind.table).where(kind.table.c.bot_id == bot_id)).first()


def get_job(conn: sa.Connection, kind: JobKind, user_id: int, bot_id: int) -> sa.Row:
    row = conn.execute(
        sa.select(kind.table).where(kind.table.c.bot_id == bot_id, kind.table.c.user_id == user_id)
    ).first()  # fmt: skip
    if row is None:
        raise NotFound(kind.not_found)
    return row


def request_job(
    conn: sa.Connection, kind: JobKind, user_id: int, bot_id: int, options: dict[str, Any]
) -> tuple[sa.Row, dramatiq.Message]:
    """(Re)start the job as queued with a new attempt number; 409 while one is queued or processing.

    The caller enqueues the returned message once the transaction commits.
    """
    table = kind.table
    now = now_utc()
    current = find_job(conn, kind, bot_id)
    if current is not None and current.status in PENDING:
        raise Conflict(f"A {kind.not_found.split()[0].lower()} job is already {current.status}")
    attempt = (current.attempt if current is not None else 0) + 1
    values = {"status": QUEUED, "progress": 0.0, "error": None, "result": None, "options": options, "updated_at": now}
    if current is None:
        conn.execute(table.insert().values(bot_id=bot_id, user_id=user_id, attempt=attempt, created_at=now, **values))
    else:
        moved = conn.execute(
            table.update()
            .where(table.c.bot_id == bot_id, table.c.attempt == current.attempt, table.c.status.not_in(PENDING))
            .values(attempt=attempt, **values)
        ).rowcount
        if not moved:
            raise Conflict(f"A {kind.not_found.split()[0].lower()} job was started meanwhile")
    row = conn.execute(sa.select(table).where(table.c.bot_id == bot_id)).one()
    return row, queue.message_for(kind.queue, kind.actor, bot_id, attempt)


def delete_job(conn: sa.Connection, kind: JobKind, user_id: int, bot_id: int) -> None:
    """Delete the job and its result; a worker still at it finds its row gone and drops its work."""
    get_job(conn, kind, user_id, bot_id)
    conn.execute(kind.table.delete().where(kind.table.c.bot_id == bot_id))


def claim(conn: sa.Connection, kind: JobKind, bot_id: int, attempt: int) -> sa.Row | None:
    """Take the job for this attempt (a redelivered message of a crashed worker takes it again)."""
    table = kind.table
    moved = conn.execute(
        table.update()
        .where(table.c.bot_id == bot_id, table.c.attempt == attempt, table.c.status.in_(PENDING))
        .values(status=PROCESSING, progress=0.0, updated_at=now_utc())
    ).rowcount
    return find_job(conn, kind, bot_id) if moved else None


def report_progress(conn: sa.Connection, kind: JobKind, bot_id: int, attempt: int, percent: float) -> bool:
    """Record progress; False when the job was deleted or restarted meanwhile (the worker should stop)."""
    table = kind.table
    return bool(
        conn.execute(
            table.update()
            .where(table.c.bot_id == bot_id, table.c.attempt == attempt, table.c.status == PROCESSING)
            .values(progress=round(min(max(percent, 0.0), 100.0), 1), updated_at=now_utc())
        ).rowcount
    )


def publish_partial(conn: sa.Connection, kind: JobKind, bot_id: int, attempt: int, result: dict[str, Any]) -> bool:
    """A processing job's result so far (a live transcript's first chunks), readable before it is done."""
    table = kind.table
    return bool(
        conn.execute(
            table.update()
            .where(table.c.bot_id == bot_id, table.c.attempt == attempt, table.c.status == PROCESSING)
            .values(result=result, updated_at=now_utc())
        ).rowcount
    )


def finish(conn: sa.Connection, kind: JobKind, bot_id: int, attempt: int, result: dict[str, Any]) -> bool:
    table = kind.table
    done = conn.execute(
        table.update()
        .where(table.c.bot_id == bot_id, table.c.attempt == attempt, table.c.status == PROCESSING)
        .values(status=DONE, progress=100.0, result=result, error=None, updated_at=now_utc())
    ).rowcount
    if done:
        bot_states.record_event(conn, bot_id, kind.ready_event, {"model": result.get("model")})
    return bool(done)


def fail(conn: sa.Connection, kind: JobKind, bot_id: int, attempt: int, reason: str) -> bool:
    table = kind.table
    failed = conn.execute(
        table.update()
        .where(table.c.bot_id == bot_id, table.c.attempt == attempt, table.c.status.in_(PENDING))
        .values(status=FAILED, error=reason[:2000], updated_at=now_utc())
    ).rowcount
    if failed:
        bot_states.record_event(conn, bot_id, kind.failed_event, {"reason": reason[:2000]})
    return bool(failed)


def transcribed_seconds(conn: sa.Connection, user_id: int) -> float:
    rows = conn.execute(
        sa.select(transcripts.c.result).where(transcripts.c.user_id == user_id, transcripts.c.status == DONE)
    ).scalars()
    return float(sum((result or {}).get("durationSeconds", 0) for result in rows))
