"""/share/{token}: the public side of a share link: JSON for API clients, a player page for browsers, the media."""

from __future__ import annotations

import html
import json
import re
import secrets
from importlib.resources import files
from string import Template

import sqlalchemy as sa
from starlette.responses import HTMLResponse, Response

from api.media import media_response
from api.routes.recordings import public_base, recording_filename
from api.routes.transcripts import transcript_response
from api.routing import Context, Router
from meetbot.domain import jobs
from meetbot.domain import recordings as rec_ops
from meetbot.errors import NotFound
from meetbot.schemas.common import format_utc
from meetbot.schemas.recordings import SharedRecording
from meetbot.schemas.transcripts import TranscriptResource

router = Router(not_found=rec_ops.SHARE_NOT_FOUND)
TAG = "Share links (public)"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
PLATFORM_NAMES = {"google": "Google Meet", "zoom": "Zoom", "teams": "Microsoft Teams"}
PAGE = Template(files("api").joinpath("templates/share.html").read_text(encoding="utf-8"))
PUBLIC = {"auth": False, "text_params": ("token",), "redact_path": True, "errors": (404,)}


def _shared(conn: sa.Connection, token: str) -> sa.Row:
    if not TOKEN.match(token):
        raise NotFound(rec_ops.SHARE_NOT_FOUND)
    return rec_ops.resolve_share(conn, token)


def _title(row: sa.Row) -> str:
    return row.config.get("meetingTitle") or f"{PLATFORM_NAMES.get(row.platform, row.platform)} meeting"


def _duration_text(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _description(ctx: Context, row: sa.Row, token: str) -> SharedRecording:
    base = f"{public_base(ctx)}/api/v1/share/{token}"
    return SharedRecording(
        title=_title(row),
        platform=row.platform,
        duration_seconds=row.duration_seconds,
        created_at=row.created_at,
        content_type=row.content_type,
        audio_only=not any(stream.get("type") == "video" for stream in row.streams),
        stream_url=f"{base}/stream",
        transcript_url=f"{base}/transcript",
    )


def _wants_html(ctx: Context) -> bool:
    accept = ctx.request.headers.get("accept", "")
    return "text/html" in accept or "application/xhtml+xml" in accept


def _page(shared: SharedRecording) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    source = html.escape(shared.stream_url)
    kind = html.escape(shared.content_type)
    tag = "audio" if shared.audio_only else "video"
    player = (
        f'<{tag} id="media" controls preload="metadata" playsinline>'
        f'<source src="{source}" type="{kind}">Your browser cannot play this recording.</{tag}>'
    )
    body = PAGE.substitute(
        title=html.escape(shared.title),
        platform=html.escape(PLATFORM_NAMES.get(shared.platform, shared.platform)),
        created_iso=format_utc(shared.created_at),
        created_text=shared.created_at.strftime("%d %b %Y, %H:%M UTC"),
        duration_text=_duration_text(shared.duration_seconds),
        player=player,
        nonce=nonce,
        transcript_url_json=json.dumps(shared.transcript_url).replace("</", "<\\/"),
    )
    policy = (
        f"default-src 'none'; media-src 'self'; connect-src 'self'; img-src 'self' data:; "
        f"style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",  # the page's URL is the secret: never sent to another site
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    return HTMLResponse(body, headers=headers)


@router.route("GET", "/share/{token}", "A shared recording: JSON, or its player page for browsers", TAG,
              response=SharedRecording, **PUBLIC)  # fmt: skip
def shared_recording(ctx: Context, token: str) -> SharedRecording | Response:
    with ctx.transaction() as conn:
        row = _shared(conn, token)
        if ctx.request.method == "GET":
            rec_ops.count_view(conn, row.share_id)
    shared = _description(ctx, row, token)
    return _page(shared) if _wants_html(ctx) else shared


@router.route("GET", "/share/{token}/stream", "A shared recording's media, with HTTP Range", TAG,
              response_media="video/mp4", **{**PUBLIC, "errors": (404, 416, 503)})  # fmt: skip
def shared_stream(ctx: Context, token: str) -> Response:
    with ctx.transaction() as conn:
        row = _shared(conn, token)
    return media_response(ctx.request, ctx.services.store, row.storage_key, recording_filename(row))


@router.route("GET", "/share/{token}/transcript", "A shared recording's transcript, once done", TAG,
              response=TranscriptResource, **PUBLIC)  # fmt: skip
def shared_transcript(ctx: Context, token: str) -> TranscriptResource | Response:
    with ctx.transaction() as conn:
        row = _shared(conn, token)
        transcript = jobs.find_job(conn, jobs.TRANSCRIPT, row.bot_id)
    if transcript is None or transcript.status != jobs.DONE:
        raise NotFound("Transcript not found")
    return transcript_response(transcript, "json")
