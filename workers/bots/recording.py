"""Storing a finished (or crash-left) spool recording: probe it, upload it with retries, and record it."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ffmpeg
import sqlalchemy as sa

from meetbot.db.tables import bots
from meetbot.domain import bot_states
from meetbot.domain.recordings import StoredRecording, save_recording
from meetbot.errors import BotError, StorageUnavailable
from meetbot.schemas.bots import BotStatus as S
from meetbot.schemas.bots import Recording
from meetbot.storage import ObjectInfo, ObjectStore, recording_key
from workers.bots.media import find_spooled_recording
from workers.bots.processes import kill_all, processes_matching, processes_owned_by
from workers.bots.reporting import BotReporter
from workers.context import WorkerContext

log = logging.getLogger("meetbot.bot")


def describe_media(path: Path) -> tuple[float, list[dict[str, Any]]]:
    """(duration in seconds, one dict per audio/video stream) read with ffprobe through ffmpeg-python."""
    try:
        probe = ffmpeg.probe(str(path))
    except ffmpeg.Error as exc:
        stderr = (exc.stderr or b"").decode(errors="replace")[-500:]
        raise BotError(f"ffprobe could not read the recording: {stderr}", sub_code="internal_error") from exc
    streams = [_stream(raw) for raw in probe.get("streams", []) if raw.get("codec_type") in ("audio", "video")]
    durations = [_number(probe.get("format", {}).get("duration"))]
    durations += [stream["durationSeconds"] or 0.0 for stream in streams]
    return round(max(durations), 2), streams


def _stream(raw: dict[str, Any]) -> dict[str, Any]:
    video = raw["codec_type"] == "video"
    return {
        "type": raw["codec_type"],
        "codec": raw.get("codec_name"),
        "width": raw.get("width") if video else None,
        "height": raw.get("height") if video else None,
        "frameRate": _rate(raw.get("avg_frame_rate") or raw.get("r_frame_rate")) if video else None,
        "sampleRate": int(raw["sample_rate"]) if not video and str(raw.get("sample_rate", "")).isdigit() else None,
        "channels": raw.get("channels") if not video else None,
        "durationSeconds": _number(raw.get("duration")) or None,
    }


def _number(value: object) -> float:
    try:
        return round(float(value), 3)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _rate(value: str | None) -> float | None:
    numerator, _, denominator = (value or "").partition("/")
    try:
        return round(float(numerator) / float(denominator or 1), 3) or None
    except (ValueError, ZeroDivisionError):
        return None


def upload_with_retries(
    store: ObjectStore, key: str, path: Path, content_type: str, delays: list[float], stop: threading.Event
) -> ObjectInfo:
    """Put the file in the store, retrying a store that is unavailable after each delay in turn.

    A shutdown cuts the waits short (one last attempt follows); the file stays where it is either way.
    """
    for attempt, delay in enumerate([*delays, None], start=1):
        try:
            return store.put_file(key, path, content_type)
        except StorageUnavailable as exc:
            if delay is None:
                raise
            log.warning(
                "recording upload failed; retrying",
                extra={"key": key, "attempt": attempt, "retry_in_s": delay, "error": str(exc.detail)},
            )
            if stop.wait(delay):
                delays = []  # shutting down: one more try, no more waits
    raise AssertionError("unreachable")


def store_recording(
    ctx: WorkerContext,
    user_id: int,
    bot_id: int,
    path: Path,
    report: BotReporter,
    started_at: float | None = None,
    content_type: str = "video/mp4",
    automatic_jobs: bool = True,
) -> Recording:
    """Upload the spooled recording (retrying a store that is down), record it, and start the jobs it asked for.

    automatic_jobs=False when the bot transcribed live and finishes that itself.
    """
    duration, streams = describe_media(path)
    key = recording_key(user_id, bot_id, content_type)
    delays = ctx.settings.upload_retry_delays
    stored = upload_with_retries(ctx.store, key, path, content_type, delays, ctx.shutdown)
    recording = StoredRecording(
        key=key,
        content_type=content_type,
        size_bytes=stored.size,
        duration_seconds=duration,
        streams=streams,
        started_at=datetime.fromtimestamp(started_at, UTC) if started_at else None,
    )
    with ctx.engine.begin() as conn:
        summary = save_recording(conn, bot_id, user_id, recording, ctx.settings.recording_retention_days)
    report.log(f"recording stored: {duration:.1f} s, {stored.size} bytes")
    if automatic_jobs:
        from workers.transcription import start_automatic_jobs

        start_automatic_jobs(ctx, user_id, bot_id)
    return summary


def _runner_alive(worker_id: str | None) -> bool:
    """Whether the worker process that ran a bot (worker_id "host:pid") still lives on this machine."""
    host, _, pid = (worker_id or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) == os.getpid() or Path(f"/proc/{pid}").exists()


def recover_spooled_recordings(ctx: WorkerContext) -> int:
    """Store what this machine's spool still holds: recordings of crashed runners, and failed uploads.

    A bot still marked running whose worker process is gone is ended at once (FATAL/worker_lost, no need to
    wait for its heartbeat to go stale); whatever it left running (browser, ffmpeg) is stopped, so it also
    leaves the meeting; the fragmented MP4 it was writing is stored as its recording. A finished bot whose
    upload failed (the store was down) gets it retried here, on every reaper pass, until it lands.
    """
    spool = ctx.settings.spool_dir
    if not spool.is_dir():
        return 0
    stored = 0
    for folder in spool.iterdir():
        if folder.name.isdigit() and _recover_one(ctx, folder):
            stored += 1
    return stored


def _recover_one(ctx: WorkerContext, folder: Path) -> bool:
    bot_id = int(folder.name)
    with ctx.engine.connect() as conn:
        row = conn.execute(
            sa.select(bots.c.user_id, bots.c.status, bots.c.recording, bots.c.worker_id).where(bots.c.id == bot_id)
        ).first()
    if row is None or row.recording is not None:
        return False
    status = S(row.status)
    alive = _runner_alive(row.worker_id)
    if status not in bot_states.FINISHED and alive:
        return False  # its runner is still at work (in call, or uploading itself)
    if not alive:  # what a dead runner left running (browser, ffmpeg) leaves the meeting now
        kill_all([*processes_matching(str(folder)), *processes_owned_by(str(folder))])
    if status in bot_states.RUNNING:
        with ctx.engine.begin() as conn:
            reason = "Its worker process died"
            bot_states.transition(conn, bot_id, S.FATAL, "worker_lost", reason, left_at=datetime.now(UTC))
        status = S.FATAL
    found = find_spooled_recording(folder)
    if found is None or status not in bot_states.FINISHED:
        return False
    path, content_type = found
    try:
        store_recording(ctx, row.user_id, bot_id, path, BotReporter(ctx.engine, bot_id), content_type=content_type)
    except StorageUnavailable:
        log.warning("spooled recording not stored yet: the store is unavailable", extra={"bot_id": bot_id})
        return False
    except Exception:  # a damaged file stays in the spool for a person to look at
        log.exception("spooled recording could not be stored", extra={"bot_id": bot_id})
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True
