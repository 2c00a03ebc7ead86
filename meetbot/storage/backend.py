"""The object-store interface every storage back-end implements, and the choice of one by URL."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from meetbot.errors import MeetBotError, ObjectMissing, StorageUnavailable

log = logging.getLogger("meetbot.storage")

CHUNK_SIZE = 1024 * 1024  # ranged reads are streamed in pieces of this size: bounded memory, few hops


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows of one object without reading it."""

    key: str
    size: int
    content_type: str
    etag: str  # a strong validator: changes whenever the bytes may have changed
    last_modified: datetime


class ObjectStore(ABC):
    """A flat key → bytes store. Keys are '/'-separated relative paths without '.' or '..' parts.

    Every method raises meetbot.errors.ObjectMissing for a key that holds nothing and
    meetbot.errors.StorageUnavailable when the store cannot be reached.
    """

    #: whether presigned_url() gives a URL that clients can use directly (S3); otherwise the API signs its own.
    presigns: bool = False

    @abstractmethod
    def put_file(self, key: str, source: Path, content_type: str) -> ObjectInfo:
        """Store the file at `source` under `key`, streamed (never the whole file in memory).

        Readers never see a half-written object.
        """

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def read_range(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The bytes [start, start + length) (to the end when length is None), in chunks of at most CHUNK_SIZE.

        The iterator holds an open file or connection: close it (or exhaust it) when done.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a key that holds nothing is not an error."""

    @abstractmethod
    def check(self) -> None:
        """Raise StorageUnavailable unless the store answers (readiness probes)."""

    def presigned_url(self, key: str, expires: timedelta, filename: str) -> str:
        """A URL that downloads the object without our API until `expires` from now (stores that presign)."""
        raise NotImplementedError(f"{type(self).__name__} does not presign URLs")

    def delete_leftovers(self, keys: list[str]) -> None:
        """Delete objects nothing refers to any more (e.g. live transcript chunks); a failure is logged, not raised."""
        for key in keys:
            try:
                self.delete(key)
            except StorageUnavailable:
                log.warning("leftover object not deleted", extra={"key": key})

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectMissing:
            return False
        return True

    def download_to(self, key: str, target: Path) -> Path:
        """Copy the object into a local file (for workers that need a path, e.g. ffmpeg)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        chunks = self.read_range(key)
        try:
            with target.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return target


def safe_key(key: str) -> str:
    """The key normalised, or ValueError for one that could escape its store (empty, '.' or '..' parts)."""
    parts = [part for part in key.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}")
    return "/".join(parts)


def store_from_url(url: str) -> ObjectStore:
    """`file:///path` → a local directory; `s3://ACCESS:SECRET@host:port/bucket?secure=false&region=…` → S3."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from meetbot.storage.backends.local import LocalStore

        return LocalStore.from_url(url)
    if scheme == "s3":
        from meetbot.storage.backends.s3 import S3Store

        return S3Store.from_url(url)
    raise MeetBotError(f"unsupported storage URL scheme {scheme!r} (file:// and s3:// are supported)")


RECORDING_EXTENSIONS = {"video/mp4": "mp4", "audio/mp4": "m4a", "audio/ogg": "ogg", "audio/webm": "webm"}


def recording_key(user_id: int, bot_id: int, content_type: str = "video/mp4") -> str:
    return f"users/{user_id}/bots/{bot_id}/recording.{RECORDING_EXTENSIONS.get(content_type, 'bin')}"
