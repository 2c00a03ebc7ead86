"""/transcripts and /summaries: start, read (json, txt, srt, vtt), follow and delete a recording's derived texts."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from starlette.responses import Response

from api.routing import Context, Router
from meetbot.domain import chunks, jobs
from meetbot.domain.recordings import get_recording
from meetbot.errors import Conflict, ServiceUnavailable
from meetbot.schemas.transcripts import (
    JobState,
    SummarizeRequest,
    SummaryResource,
    TranscribeRequest,
    TranscriptBody,
    TranscriptQuery,
    TranscriptResource,
)

router = Router(not_found=jobs.TRANSCRIPT.not_found)
TAG_T, TAG_S = "Transcripts", "Summaries"
log = logging.getLogger("meetbot.api")


def transcript_resource(row: sa.Row) -> TranscriptResource:
    return TranscriptResource.model_validate({**row._mapping, **(row.result or {})})


def transcript_response(row: sa.Row, fmt: str) -> TranscriptResource | Response:
    """The transcript as JSON (whatever its status), or rendered as txt/srt/vtt once it is done."""
    if fmt == "json":
        return transcript_resource(row)
    if row.status != jobs.DONE:
        raise Conflict(f"Transcript not ready (status {row.status})")
    from meetbot.transcription.formats import render

    body, content_type = render(TranscriptBody.model_validate(row.result), fmt)  # type: ignore[arg-type]
    return Response(body, media_type=content_type)


def _start(ctx: Context, kind: jobs.JobKind, bot_id: int, options: dict[str, Any]) -> JobState:
    with ctx.transaction() as conn:
        get_recording(conn, ctx.user_id, bot_id)
        if kind is jobs.SUMMARY:
            transcript = jobs.find_job(conn, jobs.TRANSCRIPT, bot_id)
            if transcript is None or transcript.status != jobs.DONE:
                raise Conflict("Transcript not ready: transcribe the recording first")
        row, message = jobs.request_job(conn, kind, ctx.user_id, bot_id, options)
    try:
        ctx.services.broker.enqueue(message)
    except Exception as exc:
        log.exception("could not enqueue a job", extra={"bot_id": bot_id, "job": kind.actor})
        with ctx.transaction() as conn:
            jobs.fail(conn, kind, bot_id, row.attempt, "The work queue was unavailable; request it again")
        raise ServiceUnavailable("The work queue is unavailable; try again") from exc
    return JobState.model_validate(row)


@router.route("POST", "/transcripts/{bot_id}/transcribe", "Transcribe the bot's recording", TAG_T,
              body=TranscribeRequest, response=JobState, status=202, errors=(404, 409, 503),
              not_found="Recording not found")  # fmt: skip
def transcribe(ctx: Context, bot_id: int, body: TranscribeRequest) -> JobState:
    return _start(ctx, jobs.TRANSCRIPT, bot_id, body.model_dump())


@router.route("GET", "/transcripts/{bot_id}", "The transcript (?format=json|txt|srt|vtt)", TAG_T,
              query=TranscriptQuery, response=TranscriptResource, errors=(404, 409))  # fmt: skip
def get_transcript(ctx: Context, bot_id: int, query: TranscriptQuery) -> TranscriptResource | Response:
    with ctx.transaction() as conn:
        row = jobs.get_job(conn, jobs.TRANSCRIPT, ctx.user_id, bot_id)
    return transcript_response(row, query.format)


@router.route("GET", "/transcripts/{bot_id}/status", "The transcript job's status and progress", TAG_T,
              response=JobState, errors=(404,))  # fmt: skip
def transcript_status(ctx: Context, bot_id: int) -> JobState:
    with ctx.transaction() as conn:
        return JobState.model_validate(jobs.get_job(conn, jobs.TRANSCRIPT, ctx.user_id, bot_id))


@router.route("DELETE", "/transcripts/{bot_id}", "Delete the transcript", TAG_T, status=204, errors=(404,))
def delete_transcript(ctx: Context, bot_id: int) -> None:
    with ctx.transaction() as conn:
        jobs.delete_job(conn, jobs.TRANSCRIPT, ctx.user_id, bot_id)
        keys = chunks.drop_chunks(conn, bot_id)  # a live transcript's pieces go with it
    ctx.services.store.delete_leftovers(keys)


@router.route("POST", "/summaries/{bot_id}/summarize", "Summarize the bot's transcript", TAG_S,
              body=SummarizeRequest, response=JobState, status=202, errors=(404, 409, 503),
              not_found="Recording not found")  # fmt: skip
def summarize(ctx: Context, bot_id: int, body: SummarizeRequest) -> JobState:
    return _start(ctx, jobs.SUMMARY, bot_id, body.model_dump())


@router.route("GET", "/summaries/{bot_id}", "The summary, key points and action items", TAG_S,
              response=SummaryResource, errors=(404,), not_found=jobs.SUMMARY.not_found)  # fmt: skip
def get_summary(ctx: Context, bot_id: int) -> SummaryResource:
    with ctx.transaction() as conn:
        row = jobs.get_job(conn, jobs.SUMMARY, ctx.user_id, bot_id)
    return SummaryResource.model_validate({**row._mapping, **(row.result or {})})


@router.route("GET", "/summaries/{bot_id}/status", "The summary job's status", TAG_S,
              response=JobState, errors=(404,), not_found=jobs.SUMMARY.not_found)  # fmt: skip
def summary_status(ctx: Context, bot_id: int) -> JobState:
    with ctx.transaction() as conn:
        return JobState.model_validate(jobs.get_job(conn, jobs.SUMMARY, ctx.user_id, bot_id))


@router.route("DELETE", "/summaries/{bot_id}", "Delete the summary", TAG_S, status=204, errors=(404,),
              not_found=jobs.SUMMARY.not_found)  # fmt: skip
def delete_summary(ctx: Context, bot_id: int) -> None:
    with ctx.transaction() as conn:
        jobs.delete_job(conn, jobs.SUMMARY, ctx.user_id, bot_id)
