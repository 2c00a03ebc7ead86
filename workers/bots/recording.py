"""Storing a finished (or crash-left) spool recording: probe it, upload it, and tell the bot resource."""

from __future__ import annotations

import os
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.tables import bots
from meetbot.domain import bot_states
from meetbot.schemas.bots import BotStatus as S
from meetbot.schemas.bots import Recording
from meetbot.storage import recording_key
from workers.bots.media import SPOOL_RECORDING
from workers.bots.processes import kill_all, processes_matching, processes_owned_by
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


def _runner_alive(worker_id: str | None) -> bool:
    """Whether the worker process that ran a bot (worker_id "host:pid") still lives on this machine."""
    host, _, pid = (worker_id or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) == os.getpid() or Path(f"/proc/{pid}").exists()


def recover_spooled_recordings(ctx: WorkerContext) -> int:
    """Finish what crashed runners left in this machine's spool: end their bots and store their recordings.

    A bot still marked running whose worker process is gone is ended at once (FATAL/worker_lost, no need to
    wait for its heartbeat to go stale); whatever it left running (browser, ffmpeg) is stopped, so it also
    leaves the meeting; the fragmented MP4 it was writing is stored as its recording.
    """
    spool = ctx.settings.spool_dir
    if not spool.is_dir():
        return 0
    stored = 0
    for folder in spool.iterdir():
        if not folder.name.isdigit():
            continue
        bot_id = int(folder.name)
        with ctx.engine.connect() as conn:
            row = conn.execute(
                sa.select(bots.c.user_id, bots.c.status, bots.c.recording, bots.c.worker_id).where(bots.c.id == bot_id)
            ).first()
        if row is None or row.recording is not None or _runner_alive(row.worker_id):
            continue
        kill_all([*processes_matching(str(folder)), *processes_owned_by(str(folder))])
        if S(row.status) in bot_states.RUNNING:
            with ctx.engine.begin() as conn:
                reason = "Its worker process died"
                bot_states.transition(conn, bot_id, S.FATAL, "worker_lost", reason, left_at=now_utc())
        file = folder / SPOOL_RECORDING
        if (
            not (file.is_file() and file.stat().st_size > 0)
            or S(row.status) not in bot_states.FINISHED | bot_states.RUNNING
        ):
            continue
        try:
            store_recording(ctx, row.user_id, bot_id, file, BotReporter(ctx.engine, bot_id))
        except Exception:  # a damaged file stays in the spool for a person to look at
            continue
        shutil.rmtree(folder, ignore_errors=True)
        stored += 1
    return stored
