"""Serving stored media over HTTP: RFC 9110 byte ranges (206/416, If-Range), streamed in bounded chunks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from meetbot.storage import ObjectInfo, ObjectStore

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """The Range names no byte of the representation: 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to send, None for the whole body, or Unsatisfiable.

    A header that is malformed, names another unit, or asks for several ranges is ignored (RFC 9110 §14.2
    lets a server ignore Range): the whole body is sent with 200, which every client handles.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None  # "bytes=-" is not a range-spec
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid range-spec: ignored like any malformed header
    if start >= size:
        raise Unsatisfiable()
    return ByteRange(start, min(end, size - 1))


def _if_range_holds(value: str | None, info: ObjectInfo, etag: str) -> bool:
    """Whether the Range applies under If-Range: a strong ETag equal to ours, or our exact Last-Modified."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # weak tags never match (RFC 9110 §13.1.5)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return when is not None and int(when.timestamp()) == int(info.last_modified.timestamp())


def media_response(
    request: Request,
    store: ObjectStore,
    key: str,
    filename: str,
    attachment: bool = False,
) -> Response:
    """The object under key as a GET/HEAD response with full Range support (called in a worker thread)."""
    info = store.stat(key)
    etag = f'"{info.etag}"'
    disposition = "attachment" if attachment else "inline"
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": format_datetime(info.last_modified.replace(microsecond=0), usegmt=True),
        "Content-Type": info.content_type,
        "Content-Disposition": f"{disposition}; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}",
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    wanted: ByteRange | None = None
    if request.method in ("GET", "HEAD") and _if_range_holds(request.headers.get("if-range"), info, etag):
        try:
            wanted = parse_range(request.headers.get("range"), info.size)
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{info.size}"
            headers.pop("Content-Type")
            return Response(status_code=416, headers=headers)
    status, start, length = 200, 0, info.size
    if wanted is not None:
        status, start, length = 206, wanted.start, wanted.length
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{info.size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    chunks = store.read_range(key, start, length)  # opened here: a missing object is a 404, not a cut stream
    return StreamingResponse(_async_chunks(chunks), status_code=status, headers=headers)


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each chunk read in a worker thread; the file or connection is closed even when the client leaves."""
    done = object()
    try:
        while True:
            chunk = await run_in_threadpool(next, chunks, done)
            if chunk is done:
                return
            yield chunk  # type: ignore[misc]
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await run_in_threadpool(close)


# --- API-signed file URLs (stores that cannot presign) ------------------------------------------


def file_signature(secret: str, bot_id: int, key: str, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"recording-file\n{bot_id}\n{key}\n{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def signature_valid(secret: str, bot_id: int, key: str, expires: int, signature: str) -> bool:
    return hmac.compare_digest(file_signature(secret, bot_id, key, expires), signature)
