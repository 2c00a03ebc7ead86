"""The transcribe and summarize jobs as workers run them: recording → audio → faster-whisper → speakers → summary."""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from meetbot.db.tables import bot_events, bots, transcripts
from meetbot.domain import chunks, jobs
from meetbot.domain.recordings import find_recording
from meetbot.errors import MeetBotError, SummaryError, TranscriptionError
from meetbot.schemas.transcripts import TranscriptBody
from workers.context import WorkerContext

log = logging.getLogger("meetbot.transcription")
PROGRESS_EVERY_S = 1.0  # progress is written at most this often


def speaker_timeline(conn: sa.Connection, bot_id: int, zero: datetime | None) -> list[tuple[float, str | None]]:
    """(seconds from the recording's 0 s, who became the active speaker) from the bot's ACTIVE_SPEAKER events."""
    if zero is None:
        return []
    rows = conn.execute(
        sa.select(bot_events.c.created_at, bot_events.c.data)
        .where(bot_events.c.bot_id == bot_id, bot_events.c.type == "ACTIVE_SPEAKER")
        .order_by(bot_events.c.id)
    ).all()
    return [((row.created_at - zero).total_seconds(), (row.data or {}).get("name") or None) for row in rows]


def request_and_send(
    ctx: WorkerContext, kind: jobs.JobKind, user_id: int, bot_id: int, options: dict[str, Any]
) -> None:
    """Start a job from a worker (automatic transcripts and summaries); one already pending is left alone."""
    try:
        with ctx.engine.begin() as conn:
            _, message = jobs.request_job(conn, kind, user_id, bot_id, options)
    except MeetBotError as exc:
        log.info("automatic job not started", extra={"bot_id": bot_id, "reason": str(exc.detail)})
        return
    ctx.broker.enqueue(message)


def start_automatic_jobs(ctx: WorkerContext, user_id: int, bot_id: int) -> None:
    """After a recording lands: the transcript when the bot asked for transcription.auto.

    A live (chunked) transcript its bot could not finish is dropped first: the whole recording is transcribed.
    """
    with ctx.engine.begin() as conn:
        config = conn.execute(sa.select(bots.c.config).where(bots.c.id == bot_id)).scalar_one()
        stale_keys = _drop_live_job(conn, bot_id)
    ctx.store.delete_leftovers(stale_keys)
    transcription = config.get("transcription") or {}
    if transcription.get("auto"):
        request_and_send(ctx, jobs.TRANSCRIPT, user_id, bot_id, {"language": transcription.get("language")})


def _drop_live_job(conn: sa.Connection, bot_id: int) -> list[str]:
    if chunks.live_job(conn, bot_id) is None:
        return []
    conn.execute(transcripts.delete().where(transcripts.c.bot_id == bot_id))
    return chunks.drop_chunks(conn, bot_id)


class _Progress:
    """Writes a job's progress at most once a second; remembers whether the job is still ours."""

    def __init__(self, ctx: WorkerContext, bot_id: int, attempt: int) -> None:
        self.ctx, self.bot_id, self.attempt = ctx, bot_id, attempt
        self.last = 0.0
        self.still_ours = True

    def __call__(self, percent: float) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        with self.ctx.engine.begin() as conn:
            self.still_ours = jobs.report_progress(conn, jobs.TRANSCRIPT, self.bot_id, self.attempt, percent)


def run_transcription(ctx: WorkerContext, bot_id: int, attempt: int) -> None:
    with ctx.engine.begin() as conn:
        job = jobs.claim(conn, jobs.TRANSCRIPT, bot_id, attempt)
        recording = find_recording(conn, bot_id)
    if job is None:
        log.info("transcribe message ignored: job not awaiting it", extra={"bot_id": bot_id, "attempt": attempt})
        return
    started = time.monotonic()
    try:
        if recording is None:
            raise TranscriptionError("The recording no longer exists")
        body = _transcribe(ctx, recording, job.options, _Progress(ctx, bot_id, attempt))
        with ctx.engine.begin() as conn:
            timeline = speaker_timeline(conn, bot_id, recording.started_at)
        from meetbot.transcription.speakers import attribute_speakers

        body = body.model_copy(update={"segments": attribute_speakers(body.segments, timeline)})
        result = {**body.model_dump(mode="json", by_alias=True), "text": body.text}
        with ctx.engine.begin() as conn:
            finished = jobs.finish(conn, jobs.TRANSCRIPT, bot_id, attempt, result)
            config = conn.execute(sa.select(bots.c.config).where(bots.c.id == bot_id)).scalar_one()
    except MeetBotError as exc:
        _fail(ctx, jobs.TRANSCRIPT, bot_id, attempt, str(exc.detail))
        return
    except Exception as exc:
        log.exception("transcription failed", extra={"bot_id": bot_id})
        _fail(ctx, jobs.TRANSCRIPT, bot_id, attempt, f"Internal error: {type(exc).__name__}")
        return
    elapsed = time.monotonic() - started
    log.info(
        "transcript done",
        extra={"bot_id": bot_id, "audio_s": body.duration_seconds, "wall_s": round(elapsed, 2), "model": body.model},
    )
    if finished and (config.get("summary") or {}).get("auto"):
        request_and_send(ctx, jobs.SUMMARY, job.user_id, bot_id, {"style": "brief", "prompt": None})


def _transcribe(ctx: WorkerContext, recording: sa.Row, options: dict[str, Any], progress: _Progress) -> TranscriptBody:
    from meetbot.transcription.audio import extract_audio
    from meetbot.transcription.engine import engine_for

    settings = ctx.settings
    if options.get("model"):
        settings = settings.model_copy(update={"whisper_model": options["model"]})
    engine = engine_for(settings)
    work = settings.data_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        media = ctx.store.download_to(recording.storage_key, Path(tmp) / "recording")
        wav = extract_audio(media, Path(tmp) / "audio.wav")
        body = engine.transcribe(wav, language=options.get("language"), progress=progress)
    if not body.segments:
        raise TranscriptionError("No speech found in the recording")
    return body


def _fail(ctx: WorkerContext, kind: jobs.JobKind, bot_id: int, attempt: int, reason: str) -> None:
    log.warning("job failed", extra={"bot_id": bot_id, "job": kind.actor, "reason": reason})
    with ctx.engine.begin() as conn:
        jobs.fail(conn, kind, bot_id, attempt, reason)


def run_summary(ctx: WorkerContext, bot_id: int, attempt: int) -> None:
    from meetbot.summaries.backend import summarizer_for

    with ctx.engine.begin() as conn:
        job = jobs.claim(conn, jobs.SUMMARY, bot_id, attempt)
        transcript = jobs.find_job(conn, jobs.TRANSCRIPT, bot_id)
    if job is None:
        return
    try:
        if transcript is None or transcript.status != jobs.DONE:
            raise SummaryError("The transcript is not ready")
        body = TranscriptBody.model_validate(transcript.result)
        summary = summarizer_for(ctx.settings).summarize(
            body, job.options.get("style", "brief"), job.options.get("prompt")
        )
        with ctx.engine.begin() as conn:
            jobs.finish(conn, jobs.SUMMARY, bot_id, attempt, summary.model_dump(mode="json", by_alias=True))
    except MeetBotError as exc:
        _fail(ctx, jobs.SUMMARY, bot_id, attempt, str(exc.detail))
    except Exception as exc:
        log.exception("summary failed", extra={"bot_id": bot_id})
        _fail(ctx, jobs.SUMMARY, bot_id, attempt, f"Internal error: {type(exc).__name__}")


# --- live transcripts: one chunk at a time, joined once the final one is done ----------------------------------


def run_chunk(ctx: WorkerContext, bot_id: int, idx: int) -> None:
    """Transcribe one chunk the bot handed over; the last one to finish joins them into the transcript."""
    from meetbot.transcription.engine import engine_for

    with ctx.engine.begin() as conn:
        chunk = chunks.claim_chunk(conn, bot_id, idx)
        job = chunks.live_job(conn, bot_id)
    if chunk is None or job is None:
        log.info("chunk message ignored: not awaited", extra={"bot_id": bot_id, "chunk": idx})
        return
    result, error = None, None
    try:
        work = ctx.settings.data_dir / "work"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            wav = ctx.store.download_to(chunk.storage_key, Path(tmp) / "chunk.wav")
            language = (job.options or {}).get("language")
            body = engine_for(ctx.settings).transcribe(wav, language=language, offset_s=chunk.start_seconds)
        result = body.model_dump(mode="json", by_alias=True)
    except MeetBotError as exc:
        error = str(exc.detail)
    except Exception as exc:
        log.exception("chunk transcription failed", extra={"bot_id": bot_id, "chunk": idx})
        error = f"Internal error: {type(exc).__name__}"
    with ctx.engine.begin() as conn:
        chunks.finish_chunk(conn, bot_id, idx, result, error)
        _publish_partial(conn, bot_id, job.attempt)
    _join_if_complete(ctx, bot_id)


def _publish_partial(conn: sa.Connection, bot_id: int, attempt: int) -> None:
    """What the chunks transcribed so far say, in order, readable through the API while the meeting goes on."""
    segments = []
    covered = 0.0
    for row in chunks.all_chunks(conn, bot_id):
        if row.status != jobs.DONE:
            break  # only an unbroken run from the start: the partial transcript never has holes
        part = TranscriptBody.model_validate(row.result)
        segments.extend(part.segments)
        covered = max(covered, row.end_seconds)
    if not segments:
        return
    partial = TranscriptBody(language=None, duration_seconds=covered, model=part.model, segments=segments)
    result = {**partial.model_dump(mode="json", by_alias=True), "text": partial.text}
    jobs.publish_partial(conn, jobs.TRANSCRIPT, bot_id, attempt, result)


def _join_if_complete(ctx: WorkerContext, bot_id: int) -> None:
    """Once the final chunk is in and all are transcribed: one transcript with times from the recording's 0 s."""
    with ctx.engine.begin() as conn:
        job = chunks.live_job(conn, bot_id)
        rows = chunks.all_chunks(conn, bot_id)
        recording = find_recording(conn, bot_id)
        if job is None or recording is None or not chunks.complete(rows):
            return
        done = _join(conn, bot_id, job, rows, recording)
        keys = chunks.drop_chunks(conn, bot_id)
        config = conn.execute(sa.select(bots.c.config).where(bots.c.id == bot_id)).scalar_one()
    ctx.store.delete_leftovers(keys)
    if done and (config.get("summary") or {}).get("auto"):
        request_and_send(ctx, jobs.SUMMARY, job.user_id, bot_id, {"style": "brief", "prompt": None})


def _join(conn: sa.Connection, bot_id: int, job: sa.Row, rows: list[sa.Row], recording: sa.Row) -> bool:
    from meetbot.transcription.speakers import attribute_speakers

    failed = [row for row in rows if row.status == jobs.FAILED]
    if failed:
        jobs.fail(conn, jobs.TRANSCRIPT, bot_id, job.attempt, f"Chunk {failed[0].idx}: {failed[0].error}")
        return False
    parts = [TranscriptBody.model_validate(row.result) for row in rows]
    segments = [segment for part in parts for segment in part.segments]
    if not segments:
        jobs.fail(conn, jobs.TRANSCRIPT, bot_id, job.attempt, "No speech found in the recording")
        return False
    body = TranscriptBody(
        language=next((part.language for part in parts if part.language), None),
        duration_seconds=recording.duration_seconds,
        model=parts[0].model,
        segments=attribute_speakers(segments, speaker_timeline(conn, bot_id, recording.started_at)),
    )
    return jobs.finish(conn, jobs.TRANSCRIPT, bot_id, job.attempt, {**body.model_dump(mode="json", by_alias=True),
                                                                   "text": body.text})  # fmt: skip
