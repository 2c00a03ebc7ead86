"""What the sync and async clients share: URLs, request bodies and queries, retry waits, parsing, Range resume."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from meetbot.client.errors import error_from_response
from meetbot.schemas.common import format_utc

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 30.0
STREAM_READ_TIMEOUT = 60.0  # the event streams send a heartbeat every 15 s: a minute of silence is a dead link
CHUNK_SIZE = 1 << 20
M = TypeVar("M", bound=BaseModel)
Body = BaseModel | Mapping[str, Any] | None


def api_base(base_url: str) -> str:
    """The API root under the server's base URL (`http://host:8000` → `http://host:8000/api/v1`)."""
    base = base_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else base + API_PREFIX


def default_headers(user_agent: str = "meetbot-python") -> dict[str, str]:
    return {"User-Agent": user_agent, "Accept": "application/json"}


def camelize(value: Any) -> Any:
    """Keyword arguments (snake_case, at any depth) as the API's camelCase JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, Mapping):
        return {to_camel(str(key)): camelize(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [camelize(item) for item in value]
    return jsonable(value)


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, Enum):
        return value.value
    return value


def body_of(body: Body, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON body: a request model (by alias) or a mapping sent as given, then keyword fields camelCased."""
    if isinstance(body, BaseModel):
        data: dict[str, Any] = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    else:
        data = dict(body or {})
    data.update(camelize(dict(fields)))
    return data


def query_of(**params: Any) -> dict[str, Any]:
    """Query parameters without the ones left out (None), dates as ISO 8601 UTC."""
    return {name: jsonable(value) for name, value in params.items() if value is not None}


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Retry-After as seconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """How a client answers 429: wait for Retry-After and send again, at most max_retries times."""

    max_retries: int = 3
    max_wait: float = 120.0  # a longer Retry-After is not waited for: RateLimitError at once
    default_wait: float = 1.0  # when a 429 carries no Retry-After

    def wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending again, or None to give up (raising the error)."""
        if response.status_code != 429 or attempt >= self.max_retries:
            return None
        seconds = retry_after_seconds(response.headers)
        seconds = self.default_wait if seconds is None else seconds
        return seconds if seconds <= self.max_wait else None


def check(response: httpx.Response) -> httpx.Response:
    """The response when it succeeded (2xx); else its typed MeetBotAPIError."""
    if response.is_success:
        return response
    if not response.is_closed:
        response.read()
    raise error_from_response(response)


def parse(response: httpx.Response, model: type[M]) -> M:
    return model.model_validate(check(response).json())


def page_done(page: int, page_size: int, total: int, count: int) -> bool:
    """Whether a list has no page after this one."""
    return count == 0 or page * page_size >= total


class FileSink:
    """The destination of a media download: appends to what is there when resuming a Range."""

    def __init__(self, dest: str | os.PathLike[str], resume: bool) -> None:
        self.path = Path(dest)
        self.offset = self.path.stat().st_size if resume and self.path.exists() else 0
        if not resume:
            self.path.unlink(missing_ok=True)
        self.expected: int | None = None
        self.handle: BinaryIO | None = None
        self.validator: str | None = None  # the ETag of the first answer: later ranges must be of the same bytes

    def request_headers(self) -> dict[str, str]:
        if self.offset == 0:
            return {}
        headers = {"Range": f"bytes={self.offset}-"}
        if self.validator:
            headers["If-Range"] = self.validator
        return headers

    def begin(self, response: httpx.Response) -> bool:
        """Open the file for this answer; False when the file is already complete (416 past its end)."""
        if response.status_code == 416 and self.offset > 0:
            total = response.headers.get("content-range", "").rpartition("/")[2]
            if total.isdigit() and int(total) == self.offset:
                return False
            self.offset, self.validator = 0, None  # dest holds more than the file has: fetch it whole, again
            raise httpx.RemoteProtocolError(f"{self.path} is larger than the file; downloading it again")
        check(response)
        etag = response.headers.get("etag")
        if etag and not etag.startswith("W/"):
            self.validator = etag
        if response.status_code == 206:
            start = response.headers.get("content-range", "").removeprefix("bytes ").partition("-")[0]
            if start != str(self.offset):
                raise httpx.RemoteProtocolError(f"asked for bytes from {self.offset}, got a range from {start}")
        else:  # the whole body: start over
            self.offset = 0
        self.expected = _total_size(response)
        self.handle = self.path.open("r+b" if self.offset else "wb")
        self.handle.seek(self.offset)
        self.handle.truncate()
        return True

    def write(self, chunk: bytes) -> None:
        assert self.handle is not None
        self.handle.write(chunk)
        self.offset += len(chunk)

    def complete(self) -> bool:
        """Whether every byte has arrived (a body cut short is resumed from where it stopped)."""
        return self.expected is None or self.offset >= self.expected

    def end(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _total_size(response: httpx.Response) -> int | None:
    """The size of the whole representation: from Content-Range on a 206, else Content-Length."""
    if response.status_code == 206:
        total = response.headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None
