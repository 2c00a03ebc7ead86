"""The S3 object store (AWS S3, MinIO, SeaweedFS, …) through the minio SDK."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import certifi
import urllib3
from minio import Minio
from minio.credentials import ChainedProvider, EnvAWSProvider, EnvMinioProvider, IamAwsProvider
from minio.error import MinioException, S3Error

from meetbot.errors import MeetBotError, ObjectMissing, StorageUnavailable
from meetbot.storage.backend import CHUNK_SIZE, ObjectInfo, ObjectStore, safe_key

PART_SIZE = 16 * 1024 * 1024  # multipart upload parts: the most an upload holds in memory at once
# A player seeks with a burst of Range requests, each needing the object's size and validators: a short-lived
# stat cache spares one S3 round trip per request. Objects are written once; a rewrite or delete through this
# store clears its entry, another process's rewrite is seen within this many seconds.
STAT_CACHE_SECONDS = 5.0
STAT_CACHE_ENTRIES = 1024
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchVersion"})
BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def _http_client(secure: bool, verify: bool) -> urllib3.PoolManager:
    """Short connect timeouts and few retries: a store that is down gives a 503 in seconds, not minutes."""
    options: dict[str, Any] = {
        "timeout": urllib3.Timeout(connect=5, read=60),
        "retries": urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        "maxsize": 16,
    }
    if secure and verify:
        options.update(cert_reqs="CERT_REQUIRED", ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where())
    elif secure:
        options.update(cert_reqs="CERT_NONE")
    return urllib3.PoolManager(**options)


class S3Store(ObjectStore):
    presigns = True

    def __init__(self, client: Minio, bucket: str) -> None:
        if len(bucket) < 3:
            raise MeetBotError(f"S3 bucket names have 3 to 63 characters: {bucket!r}")
        self.client = client
        self.bucket = bucket
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()
        self._stats: dict[str, tuple[float, ObjectInfo]] = {}
        self._stats_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        """`s3://ACCESS:SECRET@host:port/bucket?secure=false&region=…&verify=true`.

        Without ACCESS:SECRET the credentials come from the environment (AWS_* or MINIO_* variables) or the
        instance's IAM role. Percent-encode a secret's '/', '@' or ':'.
        """
        parts = urlsplit(url)
        bucket = parts.path.strip("/")
        if not parts.hostname or not bucket or "/" in bucket:
            raise MeetBotError("S3 storage URL must be s3://[ACCESS:SECRET@]host[:port]/bucket")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        secure = query.get("secure", "true").lower() in TRUE_WORDS
        verify = query.get("verify", "true").lower() in TRUE_WORDS
        endpoint = parts.hostname + (f":{parts.port}" if parts.port else "")
        credentials: dict[str, Any] = {}
        if parts.username:
            credentials = {"access_key": unquote(parts.username), "secret_key": unquote(parts.password or "")}
        else:
            credentials = {"credentials": ChainedProvider([EnvAWSProvider(), EnvMinioProvider(), IamAwsProvider()])}
        client = Minio(
            endpoint,
            secure=secure,
            region=query.get("region") or None,
            http_client=_http_client(secure, verify),
            **credentials,
        )
        return cls(client, bucket)

    def __repr__(self) -> str:  # never shows credentials
        return f"S3Store(bucket={self.bucket!r})"

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._bucket_lock, _unavailable_on_error():
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in BUCKET_EXISTS_CODES:  # another process made it meanwhile
                        raise
            self._bucket_ready = True

    def put_file(self, key: str, source: Path, content_type: str) -> ObjectInfo:
        self._forget(key)
        self._ensure_bucket()
        with _unavailable_on_error():
            # Multipart above PART_SIZE, one part in flight: memory stays at one part whatever the file's size.
            self.client.fput_object(
                self.bucket,
                safe_key(key),
                str(source),
                content_type=content_type,
                part_size=PART_SIZE,
                num_parallel_uploads=1,
            )
        self._forget(key)
        return self.stat(key)

    def stat(self, key: str) -> ObjectInfo:
        now = time.monotonic()
        with self._stats_lock:
            cached = self._stats.get(key)
        if cached is not None and now - cached[0] < STAT_CACHE_SECONDS:
            return cached[1]
        info = self._stat_uncached(key)
        with self._stats_lock:
            if len(self._stats) >= STAT_CACHE_ENTRIES:
                self._stats.clear()
            self._stats[key] = (now, info)
        return info

    def _forget(self, key: str) -> None:
        with self._stats_lock:
            self._stats.pop(key, None)

    def _stat_uncached(self, key: str) -> ObjectInfo:
        with _unavailable_on_error():
            found = self.client.stat_object(self.bucket, safe_key(key))
        modified = found.last_modified or datetime.now(UTC)
        return ObjectInfo(
            key=key,
            size=int(found.size or 0),
            content_type=found.content_type or "application/octet-stream",
            etag=(found.etag or "").strip('"'),
            last_modified=modified.astimezone(UTC),
        )

    def read_range(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        if length == 0:
            return iter(())
        with _unavailable_on_error():
            response = self.client.get_object(self.bucket, safe_key(key), offset=start, length=length or 0)
        return _response_chunks(response)

    def delete(self, key: str) -> None:
        self._forget(key)
        with _unavailable_on_error():
            self.client.remove_object(self.bucket, safe_key(key))  # S3 answers 204 for a missing key too

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()

    def presigned_url(self, key: str, expires: timedelta, filename: str) -> str:
        self._ensure_bucket()
        with _unavailable_on_error():
            return self.client.presigned_get_object(
                self.bucket,
                safe_key(key),
                expires=expires,
                response_headers={"response-content-disposition": f'attachment; filename="{filename}"'},
            )


def _response_chunks(response: Any) -> Iterator[bytes]:
    try:
        with _unavailable_on_error():
            yield from response.stream(CHUNK_SIZE)
    finally:
        response.close()
        response.release_conn()


class _unavailable_on_error:
    """Maps the SDK's and urllib3's failures onto ObjectMissing / StorageUnavailable."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> bool:
        if exc is None or isinstance(exc, MeetBotError | GeneratorExit):
            return False
        if isinstance(exc, S3Error) and exc.code in MISSING_CODES:
            raise ObjectMissing() from exc
        if isinstance(exc, MinioException | urllib3.exceptions.HTTPError | OSError):
            detail = exc.code if isinstance(exc, S3Error) else type(exc).__name__
            raise StorageUnavailable(f"The recording store is unavailable ({detail}); try again") from exc
        return False
