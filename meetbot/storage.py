"""Object storage behind one interface: a local directory (embedded) now; S3 stores plug in by URL scheme."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

from meetbot.errors import MeetBotError, NotFound


class ObjectStore(ABC):
    @abstractmethod
    def put_file(self, key: str, source: Path, content_type: str) -> int:
        """Store source under key; returns the stored size in bytes."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def open_path(self, key: str) -> Path:
        """A local path to read the object from (downloaded first by remote stores)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...


def _safe_key(key: str) -> str:
    parts = [part for part in key.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}")
    return "/".join(parts)


class LocalStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def put_file(self, key: str, source: Path, content_type: str) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        partial.replace(target)  # readers never see a half-written object
        return target.stat().st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        if not self.exists(key):
            raise NotFound("Object not found")
        return self._path(key).stat().st_size

    def open_path(self, key: str) -> Path:
        if not self.exists(key):
            raise NotFound("Object not found")
        return self._path(key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def store_from_url(url: str) -> ObjectStore:
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStore(Path(parts.path))
    raise MeetBotError(f"unsupported storage URL scheme {parts.scheme!r} (file:// is supported)")


def recording_key(user_id: int, bot_id: int) -> str:
    return f"users/{user_id}/bots/{bot_id}/recording.mp4"
