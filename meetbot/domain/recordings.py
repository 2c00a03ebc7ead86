"""Recording and share-link operations: saving a stored recording, listing, retention, sharing, forgetting."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.pages import count_and_page
from meetbot.db.tables import bots, recordings, share_links, summaries, transcript_chunks, transcripts
from meetbot.domain import bot_states
from meetbot.errors import Conflict, NotFound
from meetbot.schemas.bots import Recording
from meetbot.schemas.recordings import RecordingListQuery

RECORDING_NOT_FOUND = "Recording not found"
SHARE_NOT_FOUND = "Share link not found"
SHARE_TOKEN_BYTES = 24  # 192 random bits, 32 URL-safe characters


@dataclass(frozen=True)
class StoredRecording:
    """What a worker knows of a recording it has just put in the store."""

    key: str
    content_type: str
    size_bytes: int
    duration_seconds: float
    streams: list[dict[str, Any]]
    started_at: datetime | None


def retention_days_of(config: dict[str, Any], default_days: float | None) -> float | None:
    days = (config.get("recordingSettings") or {}).get("retentionDays")
    return days if days is not None else default_days


def save_recording(
    conn: sa.Connection, bot_id: int, user_id: int, stored: StoredRecording, default_retention_days: float | None
) -> Recording:
    """The recording's row (replacing an earlier one), the bot's summary of it, and RECORDING_READY."""
    now = now_utc()
    config = conn.execute(sa.select(bots.c.config).where(bots.c.id == bot_id)).scalar_one()
    days = retention_days_of(config, default_retention_days)
    values = {
        "storage_key": stored.key,
        "content_type": stored.content_type,
        "size_bytes": stored.size_bytes,
        "duration_seconds": stored.duration_seconds,
        "streams": stored.streams,
        "started_at": stored.started_at,
        "created_at": now,
        "expires_at": now + timedelta(days=days) if days else None,
    }
    conn.execute(recordings.delete().where(recordings.c.bot_id == bot_id))
    conn.execute(recordings.insert().values(bot_id=bot_id, user_id=user_id, **values))
    summary = Recording(
        key=stored.key,
        size_bytes=stored.size_bytes,
        duration_seconds=stored.duration_seconds,
        content_type=stored.content_type,
        has_audio=any(stream["type"] == "audio" for stream in stored.streams),
        has_video=any(stream["type"] == "video" for stream in stored.streams),
        started_at=stored.started_at,
        created_at=now,
    )
    payload = summary.model_dump(mode="json", by_alias=True)
    conn.execute(bots.update().where(bots.c.id == bot_id).values(recording=payload, updated_at=now))
    bot_states.record_event(conn, bot_id, "RECORDING_READY", payload)
    return summary


def _joined() -> sa.Select[Any]:
    return sa.select(
        recordings,
        bots.c.status,
        bots.c.platform,
        bots.c.config,
        _done(transcripts).label("has_transcript"),
        _done(summaries).label("has_summary"),
        _active_share_token().label("share_token"),
    ).join(bots, bots.c.id == recordings.c.bot_id)


def _active_share_token() -> sa.ScalarSelect[str]:
    """The recording's active share token, read with the recording (a list page needs no query per row)."""
    return (
        sa.select(share_links.c.token)
        .where(share_links.c.bot_id == recordings.c.bot_id, *_active(now_utc()))
        .limit(1)
        .correlate_except(share_links)  # the share-link lookup joins share_links too: never correlate them
        .scalar_subquery()
    )


def get_recording(conn: sa.Connection, user_id: int, bot_id: int) -> sa.Row:
    row = conn.execute(_joined().where(recordings.c.bot_id == bot_id, recordings.c.user_id == user_id)).first()
    if row is None:
        raise NotFound(RECORDING_NOT_FOUND)
    return row


def find_recording(conn: sa.Connection, bot_id: int) -> sa.Row | None:
    """The recording of a bot whoever owns it: only for callers that proved their right another way."""
    return conn.execute(sa.select(recordings).where(recordings.c.bot_id == bot_id)).first()


def list_recordings(conn: sa.Connection, user_id: int, query: RecordingListQuery) -> tuple[list[sa.Row], int]:
    where = [recordings.c.user_id == user_id]
    if query.status:
        where.append(bots.c.status == query.status)
    if query.since:
        where.append(recordings.c.created_at >= query.since)
    if query.until:
        where.append(recordings.c.created_at < query.until)
    return count_and_page(conn, _joined().where(*where), recordings.c.created_at.desc(), query)


def _done(table: sa.Table) -> sa.ScalarSelect[bool]:
    return (
        sa.select(sa.func.count() > 0)
        .where(table.c.bot_id == recordings.c.bot_id, table.c.status == "done")
        .scalar_subquery()
    )


def recording_fields(row: sa.Row, share_url: str | None) -> dict[str, Any]:
    return {
        **row._mapping,
        "meeting_title": row.config.get("meetingTitle"),
        "share_url": share_url,
    }


def forget_recording(conn: sa.Connection, bot_id: int, reason: str) -> bool:
    """Remove what the database knows of a recording whose objects are gone; revokes its share links."""
    now = now_utc()
    removed = conn.execute(recordings.delete().where(recordings.c.bot_id == bot_id)).rowcount
    revoke_shares(conn, bot_id)
    for derived in (transcripts, summaries, transcript_chunks):  # what was made from the recording goes too
        conn.execute(derived.delete().where(derived.c.bot_id == bot_id))
    conn.execute(bots.update().where(bots.c.id == bot_id).values(recording=None, updated_at=now))
    if removed:
        bot_states.record_event(conn, bot_id, "RECORDING_DELETED", {"reason": reason})
    return bool(removed)


def expired_recordings(conn: sa.Connection, now: datetime, limit: int = 100) -> list[sa.Row]:
    return list(
        conn.execute(
            sa.select(recordings.c.bot_id, recordings.c.storage_key)
            .where(recordings.c.expires_at.is_not(None), recordings.c.expires_at <= now)
            .order_by(recordings.c.expires_at)
            .limit(limit)
        ).all()
    )


def recording_totals(conn: sa.Connection, user_id: int) -> tuple[float, int]:
    """(seconds recorded, bytes stored) over the user's recordings."""
    seconds, size = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(recordings.c.duration_seconds), 0),
            sa.func.coalesce(sa.func.sum(recordings.c.size_bytes), 0),
        ).where(recordings.c.user_id == user_id)
    ).one()
    return float(seconds), int(size)


# --- share links ---------------------------------------------------------------------------------


def _active(now: datetime) -> list[sa.ColumnElement[bool]]:
    return [
        share_links.c.revoked_at.is_(None),
        sa.or_(share_links.c.expires_at.is_(None), share_links.c.expires_at > now),
    ]


def active_share(conn: sa.Connection, bot_id: int) -> sa.Row | None:
    return conn.execute(
        sa.select(share_links).where(share_links.c.bot_id == bot_id, *_active(now_utc()))
    ).first()  # fmt: skip


def create_share(conn: sa.Connection, user_id: int, bot_id: int, expires_in: int | None) -> sa.Row:
    """A new share link for the caller's recording; one link at a time (409 while one is active)."""
    get_recording(conn, user_id, bot_id)
    conn.execute(sa.select(bots.c.id).where(bots.c.id == bot_id).with_for_update()).first()  # one creator at a time
    if active_share(conn, bot_id) is not None:
        raise Conflict("Recording already shared: revoke the link first (DELETE …/share)")
    now = now_utc()
    return conn.execute(
        share_links.insert()
        .values(
            bot_id=bot_id,
            user_id=user_id,
            token=secrets.token_urlsafe(SHARE_TOKEN_BYTES),
            created_at=now,
            expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
        )
        .returning(*share_links.c)
    ).one()


def revoke_shares(conn: sa.Connection, bot_id: int) -> int:
    return conn.execute(
        share_links.update()
        .where(share_links.c.bot_id == bot_id, share_links.c.revoked_at.is_(None))
        .values(revoked_at=now_utc())
    ).rowcount


def resolve_share(conn: sa.Connection, token: str) -> sa.Row:
    """The recording behind an active share token, or 404 (unknown, expired, revoked, or recording gone)."""
    row = conn.execute(
        _joined()
        .add_columns(share_links.c.id.label("share_id"))
        .join(share_links, share_links.c.bot_id == recordings.c.bot_id)
        .where(share_links.c.token == token, *_active(now_utc()))
    ).first()
    if row is None:
        raise NotFound(SHARE_NOT_FOUND)
    return row


def count_view(conn: sa.Connection, share_id: int) -> None:
    conn.execute(
        share_links.update().where(share_links.c.id == share_id).values(view_count=share_links.c.view_count + 1)
    )
