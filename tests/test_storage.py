"""The object stores behind one interface: a local folder and a real S3 server (SeaweedFS), same behaviour."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from meetbot.errors import ObjectMissing, StorageUnavailable
from meetbot.storage import CHUNK_SIZE, ObjectStore, store_from_url
from meetbot.storage.backends.s3 import PART_SIZE, S3Store
from tests.support import SeaweedFS, free_port, running_seaweedfs, wait_for
from workers.bots.recording import upload_with_retries


@pytest.fixture
def store(storage_url: str) -> ObjectStore:
    return store_from_url(storage_url)


def big_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        out.write(os.urandom(size))
    return path


def read_all(store: ObjectStore, key: str, start: int = 0, length: int | None = None) -> bytes:
    return b"".join(store.read_range(key, start, length))


def test_put_stat_read_ranges_and_delete(store: ObjectStore, tmp_path: Path) -> None:
    size = PART_SIZE + CHUNK_SIZE * 2 + 12345  # past one multipart part and several read chunks
    source = big_file(tmp_path / "object.bin", size)
    data = source.read_bytes()

    info = store.put_file("users/1/bots/2/recording.mp4", source, "video/mp4")

    assert (info.size, info.content_type) == (size, "video/mp4")
    assert store.stat("users/1/bots/2/recording.mp4").etag == info.etag
    assert store.exists("users/1/bots/2/recording.mp4")
    chunks = list(store.read_range("users/1/bots/2/recording.mp4"))
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()
    assert read_all(store, "users/1/bots/2/recording.mp4", 100, 1000) == data[100:1100]
    assert read_all(store, "users/1/bots/2/recording.mp4", size - 10) == data[-10:]
    assert read_all(store, "users/1/bots/2/recording.mp4", 5, 0) == b""
    copy = store.download_to("users/1/bots/2/recording.mp4", tmp_path / "copy.bin")
    assert copy.read_bytes() == data

    store.delete("users/1/bots/2/recording.mp4")
    assert not store.exists("users/1/bots/2/recording.mp4")
    with pytest.raises(ObjectMissing):
        store.stat("users/1/bots/2/recording.mp4")
    with pytest.raises(ObjectMissing):
        list(store.read_range("users/1/bots/2/recording.mp4"))
    store.delete("users/1/bots/2/recording.mp4")  # deleting nothing is fine


def test_rewriting_a_key_changes_its_etag(store: ObjectStore, tmp_path: Path) -> None:
    first = store.put_file("a/b.bin", big_file(tmp_path / "1", 1000), "video/mp4").etag
    second = store.put_file("a/b.bin", big_file(tmp_path / "2", 1000), "video/mp4").etag
    assert first != second


@pytest.mark.parametrize("key", ["", "/", "../escape", "a/../../b", "a/./b"])
def test_keys_cannot_escape_the_store(store: ObjectStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        store.put_file(key, big_file(tmp_path / "x", 10), "video/mp4")


def test_s3_bucket_is_created_and_presigned_urls_download(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    bucket = f"fresh-{uuid.uuid4().hex[:10]}"
    store = store_from_url(seaweedfs.server.url(bucket))
    assert isinstance(store, S3Store)
    assert not store.client.bucket_exists(bucket)
    source = big_file(tmp_path / "object.bin", 300_000)
    store.put_file("k/recording.mp4", source, "video/mp4")
    assert store.client.bucket_exists(bucket)

    url = store.presigned_url("k/recording.mp4", timedelta(minutes=5), "meeting.mp4")
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == source.read_bytes()
    assert 'filename="meeting.mp4"' in response.headers["content-disposition"]
    assert seaweedfs.server.secret_key not in repr(store)


def test_credentials_come_from_the_environment_when_the_url_has_none(
    seaweedfs: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.server.secret_key)
    server = seaweedfs.server
    store = store_from_url(f"s3://{server.host}:{server.port}/env-creds-{uuid.uuid4().hex[:6]}?secure=false")
    assert store.put_file("x", big_file(tmp_path / "x", 10), "text/plain").size == 10


def test_a_store_that_is_down_is_unavailable_not_an_error(tmp_path: Path) -> None:
    store = store_from_url(f"s3://key:secret@127.0.0.1:{free_port()}/meetbot?secure=false&region=us-east-1")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.stat("anything")
    with pytest.raises(StorageUnavailable):
        store.put_file("anything", big_file(tmp_path / "x", 10), "video/mp4")
    with pytest.raises(StorageUnavailable):
        store.check()
    assert time.monotonic() - started < 10, "a store that is down must fail fast"


def test_an_upload_retries_until_the_server_is_back(tmp_path: Path) -> None:
    """S3 stopped before an upload: the upload keeps trying with backoff and lands once S3 is back."""
    with running_seaweedfs(tmp_path / "weed") as weed:
        store = store_from_url(weed.server.url("retry-bucket"))
        source = big_file(tmp_path / "recording.mp4", 2_000_000)
        weed.stop()
        result: dict[str, object] = {}

        def upload() -> None:
            try:
                result["info"] = upload_with_retries(
                    store, "r/recording.mp4", source, "video/mp4", [1] * 30, threading.Event()
                )
            except Exception as exc:
                result["error"] = exc

        uploader = threading.Thread(target=upload)
        uploader.start()
        time.sleep(2.5)
        assert not result, "the upload cannot have landed while the server is down"
        weed.start()
        uploader.join(60)
        assert "error" not in result, result
        assert read_all(store, "r/recording.mp4") == source.read_bytes()
        assert source.exists(), "the spool file stays until the caller removes it"


def test_an_upload_gives_up_after_its_schedule(tmp_path: Path) -> None:
    store = store_from_url(f"s3://key:secret@127.0.0.1:{free_port()}/meetbot?secure=false&region=us-east-1")
    source = big_file(tmp_path / "recording.mp4", 10)
    with pytest.raises(StorageUnavailable):
        upload_with_retries(store, "r/x", source, "video/mp4", [0.1, 0.1], threading.Event())
    wait_for(source.exists, 1, "the spool file to stay")
