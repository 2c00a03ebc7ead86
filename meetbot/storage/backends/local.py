"""The local-directory object store: the embedded default, one file per key under a root folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from meetbot.errors import ObjectMissing, StorageUnavailable
from meetbot.storage.backend import CHUNK_SIZE, ObjectInfo, ObjectStore, safe_key

CONTENT_TYPE_SUFFIX = ".content-type"  # a sidecar file keeps each object's content type


class LocalStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @classmethod
    def from_url(cls, url: str) -> LocalStore:
        return cls(Path(unquote(urlsplit(url).path)))

    def _path(self, key: str) -> Path:
        return self.root / safe_key(key)

    def put_file(self, key: str, source: Path, content_type: str) -> ObjectInfo:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
            try:
                shutil.copyfile(source, partial)  # copies in bounded chunks (sendfile where the OS has it)
                self._type_file(target).write_text(content_type)
                partial.replace(target)  # readers never see a half-written object
            finally:
                partial.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"Could not write to the recording store: {exc.strerror}") from exc
        return self.stat(key)

    @staticmethod
    def _type_file(target: Path) -> Path:
        return target.with_name(f".{target.name}{CONTENT_TYPE_SUFFIX}")

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise ObjectMissing() from exc
        try:
            content_type = self._type_file(path).read_text().strip()
        except OSError:
            content_type = "application/octet-stream"
        # Same-size rewrites within one mtime tick are told apart by the inode (a new file each put).
        tag = hashlib.sha256(f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}".encode()).hexdigest()[:32]
        return ObjectInfo(key, st.st_size, content_type, tag, datetime.fromtimestamp(st.st_mtime, UTC))

    def read_range(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing() from exc
        return _file_chunks(handle, start, length)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._type_file(path).unlink(missing_ok=True)
        for parent in path.parents:  # drop folders left empty, never the root
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise StorageUnavailable(f"The recording store {self.root} is not writable")
        except OSError as exc:
            raise StorageUnavailable(f"The recording store is unavailable: {exc.strerror}") from exc


def _file_chunks(handle: BinaryIO, start: int, length: int | None) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            chunk = handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
