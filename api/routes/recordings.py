"""/recordings: list, read, download, stream (HTTP Range), delete and share the caller's recordings."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import sqlalchemy as sa
from starlette.responses import Response

from api.media import file_signature, media_response, signature_valid
from api.routes.transcripts import transcript_response
from api.routing import Context, Router
from meetbot.domain import jobs
from meetbot.domain import recordings as rec_ops
from meetbot.errors import Forbidden, NotFound
from meetbot.schemas.common import page_envelope
from meetbot.schemas.recordings import (
    DownloadLink,
    FileQuery,
    RecordingList,
    RecordingListQuery,
    RecordingResource,
    ShareCreate,
    ShareLink,
)
from meetbot.schemas.transcripts import TranscriptQuery, TranscriptResource
from meetbot.storage.backend import RECORDING_EXTENSIONS

router = Router(not_found=rec_ops.RECORDING_NOT_FOUND)
TAG = "Recordings"
MEDIA = "video/mp4"  # what the media endpoints document; the actual type is the recording's


def public_base(ctx: Context) -> str:
    """The API's external origin: MEETBOT_PUBLIC_URL, else the origin this request came to."""
    configured = ctx.services.settings.public_url
    if configured:
        return configured.rstrip("/")
    return str(ctx.request.url.replace(path="", query="", fragment="")).rstrip("/")


def share_page_url(ctx: Context, token: str) -> str:
    return f"{public_base(ctx)}/api/v1/share/{token}"


def recording_filename(row: sa.Row) -> str:
    return f"meetbot-recording-{row.bot_id}.{RECORDING_EXTENSIONS.get(row.content_type, 'bin')}"


def _resource(ctx: Context, row: sa.Row) -> RecordingResource:
    url = share_page_url(ctx, row.share_token) if row.share_token is not None else None
    return RecordingResource.model_validate(rec_ops.recording_fields(row, url))


@router.route(
    "GET", "/recordings", "List recordings, newest first", TAG, query=RecordingListQuery, response=RecordingList
)
def list_recordings(ctx: Context, query: RecordingListQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = rec_ops.list_recordings(conn, ctx.user_id, query)
        items = [_resource(ctx, row) for row in rows]
    return page_envelope("recordings", RecordingResource, items, total, query)


@router.route("GET", "/recordings/{bot_id}", "A bot's recording", TAG, response=RecordingResource, errors=(404,))
def get_recording(ctx: Context, bot_id: int) -> RecordingResource:
    with ctx.transaction() as conn:
        return _resource(ctx, rec_ops.get_recording(conn, ctx.user_id, bot_id))


@router.route(
    "DELETE",
    "/recordings/{bot_id}",
    "Delete a recording (its share links stop working)",
    TAG,
    status=204,
    errors=(404, 503),
)
def delete_recording(ctx: Context, bot_id: int) -> None:
    with ctx.transaction() as conn:
        row = rec_ops.get_recording(conn, ctx.user_id, bot_id)
    ctx.services.store.delete(row.storage_key)  # the bytes first: a store that is down leaves everything as it was
    with ctx.transaction() as conn:
        rec_ops.forget_recording(conn, bot_id, "deleted")


@router.route(
    "GET",
    "/recordings/{bot_id}/download",
    "A short-lived URL that downloads the recording",
    TAG,
    response=DownloadLink,
    errors=(404, 503),
)
def download_link(ctx: Context, bot_id: int) -> DownloadLink:
    with ctx.transaction() as conn:
        row = rec_ops.get_recording(conn, ctx.user_id, bot_id)
    store = ctx.services.store
    ttl = ctx.services.settings.download_url_ttl_seconds
    expires = int(time.time()) + ttl
    if store.presigns:
        url = store.presigned_url(row.storage_key, timedelta(seconds=ttl), recording_filename(row))
    else:
        signature = file_signature(ctx.services.secret_key, bot_id, row.storage_key, expires)
        query = urlencode({"expires": expires, "signature": signature})
        url = f"{public_base(ctx)}/api/v1/recordings/{bot_id}/file?{query}"
    return DownloadLink(url=url, expires_at=datetime.fromtimestamp(expires, UTC))


@router.route(
    "GET",
    "/recordings/{bot_id}/file",
    "The recording's bytes through a signed download URL (no token needed)",
    TAG,
    query=FileQuery,
    auth=False,
    errors=(403, 404, 416, 503),
    response_media=MEDIA,
)
def download_file(ctx: Context, bot_id: int, query: FileQuery) -> Response:
    with ctx.transaction() as conn:
        row = rec_ops.find_recording(conn, bot_id)
    valid = row is not None and signature_valid(
        ctx.services.secret_key, bot_id, row.storage_key, query.expires, query.signature
    )
    if not valid or query.expires < time.time():
        raise Forbidden("Download link invalid or expired")
    assert row is not None
    return media_response(ctx.request, ctx.services.store, row.storage_key, recording_filename(row), attachment=True)


@router.route(
    "GET",
    "/recordings/{bot_id}/stream",
    "The recording's media, with HTTP Range (206) for seeking; HEAD gives its headers",
    TAG,
    errors=(404, 416, 503),
    response_media=MEDIA,
)
def stream_recording(ctx: Context, bot_id: int) -> Response:
    with ctx.transaction() as conn:
        row = rec_ops.get_recording(conn, ctx.user_id, bot_id)
    return media_response(ctx.request, ctx.services.store, row.storage_key, recording_filename(row))


@router.route(
    "GET",
    "/recordings/{bot_id}/transcription",
    "The recording's transcript (as GET /transcripts/{bot_id})",
    TAG,
    query=TranscriptQuery,
    response=TranscriptResource,
    errors=(404, 409),
)
def recording_transcription(ctx: Context, bot_id: int, query: TranscriptQuery) -> TranscriptResource | Response:
    with ctx.transaction() as conn:
        rec_ops.get_recording(conn, ctx.user_id, bot_id)
        row = jobs.find_job(conn, jobs.TRANSCRIPT, bot_id)
    if row is None:
        raise NotFound(jobs.TRANSCRIPT.not_found)
    return transcript_response(row, query.format)


# --- share links ----------------------------------------------------------------------------------


def _share(ctx: Context, row: sa.Row) -> ShareLink:
    return ShareLink.model_validate({**row._mapping, "url": share_page_url(ctx, row.token)})


@router.route(
    "POST",
    "/recordings/{bot_id}/share",
    "Create a public link to the recording's player page",
    TAG,
    body=ShareCreate,
    response=ShareLink,
    status=201,
    errors=(404, 409),
)
def create_share(ctx: Context, bot_id: int, body: ShareCreate) -> ShareLink:
    with ctx.transaction() as conn:
        return _share(ctx, rec_ops.create_share(conn, ctx.user_id, bot_id, body.expires_in))


@router.route("GET", "/recordings/{bot_id}/share", "The active share link", TAG, response=ShareLink, errors=(404,))
def get_share(ctx: Context, bot_id: int) -> ShareLink:
    with ctx.transaction() as conn:
        rec_ops.get_recording(conn, ctx.user_id, bot_id)
        share = rec_ops.active_share(conn, bot_id)
    if share is None:
        raise NotFound(rec_ops.SHARE_NOT_FOUND)
    return _share(ctx, share)


@router.route("DELETE", "/recordings/{bot_id}/share", "Revoke the share link", TAG, status=204, errors=(404,))
def revoke_share(ctx: Context, bot_id: int) -> None:
    with ctx.transaction() as conn:
        rec_ops.get_recording(conn, ctx.user_id, bot_id)
        if not rec_ops.revoke_shares(conn, bot_id):
            raise NotFound(rec_ops.SHARE_NOT_FOUND)
