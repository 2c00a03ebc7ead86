"""Storing a finished (or crash-left) spool recording: probe it, upload it with retries, and record it."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ffmpeg
import psutil
import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.tables import bots
from meetbot.domain import bot_states
from meetbot.domain.recordings import StoredRecording, save_recording
from meetbot.errors import BotError, StorageUnavailable
from meetbot.schemas.bots import BotStatus as S
from meetbot.schemas.bots import Recording
from meetbot.settings import Settings
from meetbot.storage import ObjectInfo, ObjectStore, recording_key
from workers.bots.media import find_spooled_recording
from workers.bots.processes import kill_all, processes_matching, processes_of_bot, processes_owned_by
from workers.bots.reporting import BotReporter
from workers.bots.spool import SPOOL_LOCK_SPACE, SpoolFolder, move_aside, spool_folders
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


def heartbeat_stale_after(config: dict[str, Any], settings: Settings) -> float:
    """Seconds without a heartbeat after which a running bot's worker counts as gone: 3 intervals, at least the
    minimum (MEETBOT_STALE_HEARTBEAT_MIN_SECONDS)."""
    interval_s = int(config.get("heartbeatInterval") or settings.default_heartbeat_interval_ms) / 1000
    return max(3 * interval_s, settings.stale_heartbeat_min_seconds)


def _runner_alive_here(worker_id: str | None, host: str) -> bool:
    """Whether the worker process that ran a bot (worker_id "host:pid") still lives on this host."""
    worker_host, _, pid = (worker_id or "").rpartition(":")
    if worker_host != host or not pid.isdigit():
        return False
    return int(pid) == os.getpid() or psutil.pid_exists(int(pid))


def _quiet_for(folder: Path) -> float:
    """Seconds since anything at the top of `folder` changed (a bot in a call writes its recording all the time)."""
    newest = 0.0
    try:
        entries = [folder, *folder.iterdir()]
    except OSError:  # gone meanwhile: nothing to say it is quiet
        return 0.0
    for path in entries:
        with contextlib.suppress(OSError):
            newest = max(newest, path.stat().st_mtime)
    return time.time() - newest


def recover_spooled_recordings(ctx: WorkerContext) -> int:
    """Store what the spool still holds: recordings of crashed runners, and failed uploads.

    This host's folders (spool/<host>/<bot id>): a bot still marked running whose worker process is gone is ended
    at once (FATAL/worker_lost, no need to wait for its heartbeat to go stale); whatever it left running (browser,
    ffmpeg, Xvfb, found by their bot tag) is stopped, so it also leaves the meeting; the fragmented MP4 it was
    writing is stored as its recording. A finished bot whose upload failed (the store was down) gets it retried
    here, on every reaper pass, until it lands.
    Another host's folders (a shared volume) are left alone while their bot is alive by the database: running with
    a fresh heartbeat, or its folder still being written; once it is finished or its heartbeat went stale (that
    host is gone), its recording is stored from here. Its processes are that host's, never touched from here.
    A folder that cannot be recovered (its bot deleted, nothing or a damaged file in it) is moved aside once, to
    spool/<host>/failed/<bot id>, for a person to look at. Old-layout folders (spool/<bot id>) are recovered by
    the host their bot's worker id names.
    """
    stored = 0
    for folder in spool_folders(ctx.settings.spool_root):
        try:
            with _recovery_claim(ctx, folder.bot_id) as claimed:
                if claimed and _recover_one(ctx, folder):
                    stored += 1
        except Exception:  # one folder's trouble (the database, the disk) does not stop the others
            log.exception("spool folder not recovered", extra={"bot_id": folder.bot_id, "folder": str(folder.path)})
    return stored


@contextmanager
def _recovery_claim(ctx: WorkerContext, bot_id: int) -> Iterator[bool]:
    """One worker at a time recovers a bot's folder (hosts sharing a spool, or a bot and a maintenance worker on one
    host): a PostgreSQL advisory lock, released by the database should this worker die. SQLite: one process."""
    if ctx.engine.dialect.name != "postgresql":
        yield True
        return
    with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        lock = (SPOOL_LOCK_SPACE, bot_id)
        claimed = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(*lock))).scalar())
        try:
            yield claimed
        finally:
            if claimed:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(*lock)))


def _recover_one(ctx: WorkerContext, folder: SpoolFolder) -> bool:
    settings = ctx.settings
    me = settings.effective_worker_host
    bot_id = folder.bot_id
    with ctx.engine.connect() as conn:
        row = conn.execute(
            sa.select(
                bots.c.user_id, bots.c.status, bots.c.recording, bots.c.worker_id, bots.c.config,
                bots.c.last_heartbeat, bots.c.updated_at,
            ).where(bots.c.id == bot_id)
        ).first()  # fmt: skip
    if row is None:
        if folder.host is not None:  # an old-layout name might be a host's folder: never moved on a guess
            move_aside(settings.spool_root, folder, folder.host, "its bot no longer exists")
        return False
    writer = folder.host or (row.worker_id or "").rpartition(":")[0] or me
    status = S(row.status)
    stale_after = heartbeat_stale_after(row.config, settings)
    if writer == me:
        alive = _runner_alive_here(row.worker_id, me)
        if alive and _quiet_for(folder.path) <= stale_after:
            return False  # its runner is at work, or finishing (it removes the folder itself right after)
    else:  # another host's runner: known only through the database, and the folder it keeps writing
        beat = row.last_heartbeat or row.updated_at
        alive = status in bot_states.RUNNING and now_utc() - beat <= timedelta(seconds=stale_after)
        if alive or _quiet_for(folder.path) <= stale_after:
            return False
    if status not in bot_states.FINISHED and alive:
        return False  # its runner is still at work (in call, or uploading itself)
    if writer == me and not alive:  # what a dead runner left running (browser, ffmpeg) leaves the meeting now
        path = str(folder.path)
        kill_all([*processes_of_bot(me, bot_id), *processes_matching(path), *processes_owned_by(path)])
    if status in bot_states.RUNNING:
        with ctx.engine.begin() as conn:
            reason = "Its worker process died"
            bot_states.transition(conn, bot_id, S.FATAL, "worker_lost", reason, left_at=datetime.now(UTC))
        status = S.FATAL
    if status not in bot_states.FINISHED:
        return False  # not started yet (a folder of a bot still deploying): nothing to recover
    if row.recording is not None:  # stored already: what is left is only the runner's leftovers
        shutil.rmtree(folder.path, ignore_errors=True)
        return False
    found = find_spooled_recording(folder.path)
    if found is None and alive:
        return False  # its runner, finishing, removes the folder itself
    if found is None:
        move_aside(settings.spool_root, folder, writer, "it holds no recording")
        return False
    path, content_type = found
    try:
        store_recording(ctx, row.user_id, bot_id, path, BotReporter(ctx.engine, bot_id), content_type=content_type)
    except StorageUnavailable:
        log.warning("spooled recording not stored yet: the store is unavailable", extra={"bot_id": bot_id})
        return False
    except Exception:  # a damaged file is kept aside for a person to look at, not tried again every pass
        log.exception("spooled recording could not be stored", extra={"bot_id": bot_id})
        move_aside(settings.spool_root, folder, writer, "its recording could not be stored")
        return False
    shutil.rmtree(folder.path, ignore_errors=True)
    return True
