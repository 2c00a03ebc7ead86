"""Storing a finished (or crash-left) spool recording: probe it, upload it, and tell the bot resource."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.tables import bots
from meetbot.domain import bot_states
from meetbot.schemas.bots import Recording
from meetbot.storage import recording_key
from workers.bots.recorder import probe_media
from workers.bots.reporting import BotReporter
from workers.context import WorkerContext


def store_recording(
    ctx: WorkerContext,
    user_id: int,
    bot_id: int,
    path: Path,
    report: BotReporter,
    started_at: float | None = None,
) -> Recording:
    info = probe_media(path)
    key = recording_key(user_id, bot_id)
    size = ctx.store.put_file(key, path, "video/mp4")
    recording = Recording(
        key=key,
        size_bytes=size,
        duration_seconds=round(info.duration_s, 2),
        has_audio=info.has_audio,
        has_video=info.has_video,
        started_at=datetime.fromtimestamp(started_at, UTC) if started_at else None,
        created_at=now_utc(),
    )
    payload = recording.model_dump(mode="json", by_alias=True)
    with ctx.engine.begin() as conn:
        conn.execute(bots.update().where(bots.c.id == bot_id).values(recording=payload, updated_at=now_utc()))
        bot_states.record_event(conn, bot_id, "RECORDING_READY", payload)
    report.log(f"recording stored: {info.duration_s:.1f} s, {size} bytes")
    return recording


def recover_spooled_recordings(ctx: WorkerContext) -> int:
    """Store recordings a crashed runner left in this machine's spool for bots that ended without one."""
    spool = ctx.settings.spool_dir
    if not spool.is_dir():
        return 0
    stored = 0
    for folder in spool.iterdir():
        file = folder / "recording.mp4"
        if not (folder.name.isdigit() and file.is_file() and file.stat().st_size > 0):
            continue
        bot_id = int(folder.name)
        with ctx.engine.connect() as conn:
            row = conn.execute(
                sa.select(bots.c.user_id, bots.c.status, bots.c.recording).where(bots.c.id == bot_id)
            ).first()
        if row is None or row.recording is not None or row.status not in ("FATAL", "DONE"):
            continue
        try:
            store_recording(ctx, row.user_id, bot_id, file, BotReporter(ctx.engine, bot_id))
        except Exception:  # a damaged file stays in the spool for a person to look at
            continue
        file.unlink(missing_ok=True)
        stored += 1
    return stored
