"""The recordings API on both stores (a local folder and a real S3 server): list, get, download, stream, delete."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from api.app import create_app
from api.media import file_signature
from api.services import Services
from meetbot.db import now_utc
from meetbot.db.tables import recordings
from meetbot.domain import bot_states
from meetbot.schemas.bots import BotStatus as S
from meetbot.settings import Settings
from meetbot.signals import kill_signals_for
from meetbot.storage import ObjectStore
from tests.conftest import GOOGLE_BOT, Account, make_settings, register_and_login
from tests.support import free_port
from workers.bots.recording import store_recording
from workers.bots.reporting import BotReporter
from workers.context import WorkerContext


@dataclass
class Recorded:
    """The API, its store, and a way to give a user's finished bot a real stored recording."""

    client: TestClient
    services: Services

    @property
    def store(self) -> ObjectStore:
        return self.services.store

    def finished_bot(self, account: Account, media: Path, **settings: Any) -> int:
        response = self.client.post("/bots", json={**GOOGLE_BOT, **settings}, headers=account.headers)
        assert response.status_code == 201, response.text
        bot_id: int = response.json()["id"]
        engine = self.services.engine
        with engine.begin() as conn:
            bot_states.transition(conn, bot_id, S.CALL_ENDED, "meeting_ended", "test", left_at=now_utc())
            bot_states.transition(conn, bot_id, S.DONE, "meeting_ended", "test")
            user_id = conn.execute(sa.text("select user_id from bots where id = :id"), {"id": bot_id}).scalar_one()
        ctx = WorkerContext(self.services.settings, engine, self.store, self.services.broker, kill_signals_for(None))
        content_type = "audio/mp4" if media.suffix == ".m4a" else "video/mp4"
        store_recording(ctx, user_id, bot_id, media, BotReporter(engine, bot_id), content_type=content_type)
        return bot_id


@pytest.fixture
def rec_settings(tmp_path: Path, db_url: str, storage_url: str) -> Settings:
    return make_settings(tmp_path, db_url, storage_url=storage_url)


@pytest.fixture
def recorded(rec_settings: Settings) -> Iterator[Recorded]:
    services = Services.from_settings(rec_settings)
    with TestClient(create_app(rec_settings, services), base_url="http://testserver/api/v1") as client:
        yield Recorded(client, services)


@pytest.fixture
def owner(recorded: Recorded) -> Account:
    return register_and_login(recorded.client)


@pytest.fixture
def stranger(recorded: Recorded) -> Account:
    return register_and_login(recorded.client)


def test_a_recording_is_listed_described_downloaded_and_streamed(
    recorded: Recorded, owner: Account, recording_file: Path
) -> None:
    client = recorded.client
    bot_id = recorded.finished_bot(owner, recording_file, meetingTitle="Weekly sync")
    data = recording_file.read_bytes()

    listing = client.get("/recordings", headers=owner.headers).json()
    assert listing["total"] == 1 and listing["page"] == 1 and listing["page_size"] == 20
    assert [item["botId"] for item in listing["recordings"]] == [bot_id]

    body = client.get(f"/recordings/{bot_id}", headers=owner.headers).json()
    assert body["status"] == "DONE" and body["meetingTitle"] == "Weekly sync"
    assert (body["contentType"], body["sizeBytes"]) == ("video/mp4", len(data))
    assert 11.5 <= body["durationSeconds"] <= 12.5
    kinds = {stream["type"]: stream for stream in body["streams"]}
    assert kinds["video"]["codec"] == "h264" and (kinds["video"]["width"], kinds["video"]["height"]) == (320, 240)
    assert kinds["video"]["frameRate"] == 15
    assert kinds["audio"]["codec"] == "aac" and kinds["audio"]["sampleRate"] == 48000
    assert body["hasTranscript"] is False and body["hasSummary"] is False and body["shareUrl"] is None
    assert body["createdAt"].endswith("Z")

    link = client.get(f"/recordings/{bot_id}/download", headers=owner.headers).json()
    assert link["expiresAt"].endswith("Z")
    downloaded = fetch_download(client, link["url"])
    assert downloaded.status_code == 200
    assert hashlib.sha256(downloaded.content).digest() == hashlib.sha256(data).digest()

    streamed = client.get(f"/recordings/{bot_id}/stream", headers=owner.headers)
    assert streamed.status_code == 200 and streamed.content == data
    assert streamed.headers["accept-ranges"] == "bytes"
    assert streamed.headers["content-type"] == "video/mp4"
    assert streamed.headers["content-length"] == str(len(data))


def fetch_download(client: TestClient, url: str) -> httpx.Response:
    """A download URL, fetched without our credentials: through the app for API-signed ones, else directly."""
    parts = urlsplit(url)
    if parts.netloc == "testserver":
        return client.get(urlunsplit(("http", "testserver", parts.path, parts.query, "")))
    return httpx.get(url)


def test_an_audio_only_recording_says_so(recorded: Recorded, owner: Account, audio_recording_file: Path) -> None:
    bot_id = recorded.finished_bot(owner, audio_recording_file)
    body = recorded.client.get(f"/recordings/{bot_id}", headers=owner.headers).json()
    assert body["contentType"] == "audio/mp4"
    assert [stream["type"] for stream in body["streams"]] == ["audio"]
    streamed = recorded.client.get(f"/recordings/{bot_id}/stream", headers=owner.headers)
    assert streamed.headers["content-type"] == "audio/mp4"
    assert streamed.content == audio_recording_file.read_bytes()


def test_ranges_byte_for_byte(recorded: Recorded, owner: Account, recording_file: Path) -> None:
    client = recorded.client
    bot_id = recorded.finished_bot(owner, recording_file)
    data = recording_file.read_bytes()
    size = len(data)
    url = f"/recordings/{bot_id}/stream"

    def get(range_header: str | None = None, **headers: str) -> httpx.Response:
        if range_header is not None:
            headers["Range"] = range_header
        return client.get(url, headers={**owner.headers, **headers})

    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-500": (size - 500, size - 1),
        "bytes=0-0": (0, 0),
        f"bytes={size - 1}-": (size - 1, size - 1),
        f"bytes=10-{size + 1000}": (10, size - 1),  # an end past the last byte is the last byte
        f"bytes=-{size + 1000}": (0, size - 1),  # a suffix longer than the body is the whole body
        "Bytes = 5 - 9": (5, 9),
    }
    for header, (first, last) in cases.items():
        response = get(header)
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert response.headers["content-length"] == str(last - first + 1), header
        assert response.content == data[first : last + 1], header

    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        response = get(header)
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}", header

    # Ignored as RFC 9110 allows: malformed, other units, several ranges, last < first → the whole body.
    for header in ("bytes=abc", "items=0-5", "bytes=0-1,5-6", "bytes=9-2", "bytes=-", "bytes 0-5", ""):
        response = get(header)
        assert response.status_code == 200, header
        assert response.content == data, header

    etag = get().headers["etag"]
    modified = get().headers["last-modified"]
    assert get("bytes=0-9", **{"If-Range": etag}).status_code == 206
    assert get("bytes=0-9", **{"If-Range": modified}).status_code == 206
    stale = get("bytes=0-9", **{"If-Range": '"not-the-etag"'})
    assert stale.status_code == 200 and stale.content == data
    older = format_datetime(now_utc() - timedelta(days=3), usegmt=True)
    assert get("bytes=0-9", **{"If-Range": older}).status_code == 200
    assert get("bytes=0-9", **{"If-Range": "W/" + etag}).status_code == 200

    head = client.head(url, headers={**owner.headers, "Range": "bytes=10-19"})
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-length"] == "10" and head.headers["content-range"] == f"bytes 10-19/{size}"
    full_head = client.head(url, headers=owner.headers)
    assert full_head.status_code == 200 and full_head.headers["content-length"] == str(size)


def test_nobody_else_reaches_a_recording(
    recorded: Recorded, owner: Account, stranger: Account, recording_file: Path
) -> None:
    client = recorded.client
    bot_id = recorded.finished_bot(owner, recording_file)
    assert client.get("/recordings", headers=stranger.headers).json()["total"] == 0
    for method, path in [
        ("GET", f"/recordings/{bot_id}"),
        ("GET", f"/recordings/{bot_id}/download"),
        ("GET", f"/recordings/{bot_id}/stream"),
        ("HEAD", f"/recordings/{bot_id}/stream"),
        ("GET", f"/recordings/{bot_id}/transcription"),
        ("DELETE", f"/recordings/{bot_id}"),
        ("POST", f"/recordings/{bot_id}/share"),
        ("GET", f"/recordings/{bot_id}/share"),
        ("DELETE", f"/recordings/{bot_id}/share"),
    ]:
        response = client.request(method, path, headers=stranger.headers)
        assert response.status_code == 404, (method, path)
        if method != "HEAD":
            assert response.json() == {"detail": "Recording not found"}, (method, path)
    assert client.get(f"/recordings/{bot_id}/stream").status_code == 401
    assert client.get(f"/recordings/{bot_id}/stream", headers=owner.headers).status_code == 200


def test_a_bot_without_a_recording_has_none(recorded: Recorded, owner: Account) -> None:
    bot_id = recorded.client.post("/bots", json=GOOGLE_BOT, headers=owner.headers).json()["id"]
    for path in ("", "/download", "/stream", "/transcription"):
        response = recorded.client.get(f"/recordings/{bot_id}{path}", headers=owner.headers)
        assert response.status_code == 404 and response.json() == {"detail": "Recording not found"}, path
    assert recorded.client.get("/recordings/99999999999", headers=owner.headers).status_code == 404


def test_transcription_is_not_found_until_transcripts_exist(
    recorded: Recorded, owner: Account, recording_file: Path
) -> None:
    bot_id = recorded.finished_bot(owner, recording_file)
    response = recorded.client.get(f"/recordings/{bot_id}/transcription", headers=owner.headers)
    assert response.status_code == 404 and response.json() == {"detail": "Transcript not found"}


def test_delete_removes_the_bytes_and_the_share_link(recorded: Recorded, owner: Account, recording_file: Path) -> None:
    client = recorded.client
    bot_id = recorded.finished_bot(owner, recording_file)
    key = client.get(f"/bots/{bot_id}", headers=owner.headers).json()["recording"]["key"]
    token = client.post(f"/recordings/{bot_id}/share", json={}, headers=owner.headers).json()["token"]
    usage = client.get("/users/me/usage", headers=owner.headers).json()
    assert usage["storageBytes"] == recording_file.stat().st_size and 0.19 < usage["recordedMinutes"] < 0.21

    assert client.delete(f"/recordings/{bot_id}", headers=owner.headers).status_code == 204

    assert not recorded.store.exists(key)
    assert client.get(f"/recordings/{bot_id}", headers=owner.headers).status_code == 404
    assert client.get(f"/share/{token}").status_code == 404
    assert client.get(f"/bots/{bot_id}", headers=owner.headers).json()["recording"] is None
    events = client.get(f"/bots/{bot_id}/events", params={"type": "RECORDING_DELETED"}, headers=owner.headers)
    assert events.json()["total"] == 1
    usage = client.get("/users/me/usage", headers=owner.headers).json()
    assert (usage["storageBytes"], usage["recordedMinutes"]) == (0, 0)
    assert client.delete(f"/recordings/{bot_id}", headers=owner.headers).status_code == 404


def test_deleting_a_finished_bot_deletes_its_recording(
    recorded: Recorded, owner: Account, recording_file: Path
) -> None:
    client = recorded.client
    bot_id = recorded.finished_bot(owner, recording_file)
    key = client.get(f"/bots/{bot_id}", headers=owner.headers).json()["recording"]["key"]
    assert recorded.store.exists(key)
    assert client.delete(f"/bots/{bot_id}", headers=owner.headers).status_code == 204
    assert not recorded.store.exists(key)
    with recorded.services.engine.connect() as conn:
        assert conn.execute(sa.select(recordings).where(recordings.c.bot_id == bot_id)).first() is None


def test_list_filters_and_pages_newest_first(recorded: Recorded, owner: Account, recording_file: Path) -> None:
    client = recorded.client
    first = recorded.finished_bot(owner, recording_file)
    second = recorded.finished_bot(owner, recording_file)
    with recorded.services.engine.begin() as conn:  # the first one failed instead
        conn.execute(sa.text("update bots set status = 'FATAL' where id = :id"), {"id": first})

    def ids(**params: Any) -> list[int]:
        response = client.get("/recordings", params=params, headers=owner.headers)
        assert response.status_code == 200, response.text
        return [item["botId"] for item in response.json()["recordings"]]

    assert ids() == [second, first]
    assert ids(page_size=1, page=2) == [first]
    assert ids(status="FATAL") == [first]
    assert ids(status="DONE") == [second]
    assert ids(since="2000-01-01T00:00:00Z") == [second, first]
    assert ids(until="2000-01-01T00:00:00Z") == []
    bad = client.get("/recordings", params={"status": "NOPE"}, headers=owner.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "status"]


def test_download_links_are_checked(recorded: Recorded, owner: Account, recording_file: Path) -> None:
    """API-signed (local store) or S3-presigned: the link works alone, and a changed one does not."""
    client = recorded.client
    bot_id = recorded.finished_bot(owner, recording_file)
    url = client.get(f"/recordings/{bot_id}/download", headers=owner.headers).json()["url"]
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    get = client.get if parts.netloc == "testserver" else httpx.get
    ranged = get(base, params=query, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == recording_file.read_bytes()[:10]
    assert "attachment" in ranged.headers["content-disposition"]
    signature = "signature" if "signature" in query else "X-Amz-Signature"
    tampered = {**query, signature: query[signature][:-2] + ("AA" if query[signature][-2:] != "AA" else "BB")}
    assert get(base, params=tampered).status_code == 403
    if recorded.store.presigns:
        return
    later = {**query, "expires": str(int(query["expires"]) + 10)}
    assert get(base, params=later).status_code == 403
    other = recorded.finished_bot(owner, recording_file)
    assert get(base.replace(f"/{bot_id}/", f"/{other}/"), params=query).status_code == 403
    key = client.get(f"/bots/{bot_id}", headers=owner.headers).json()["recording"]["key"]
    past = int(time.time()) - 1
    stale = {"expires": str(past), "signature": file_signature(recorded.services.secret_key, bot_id, key, past)}
    assert get(base, params=stale).status_code == 403  # correctly signed, but expired


def test_a_store_that_is_down_gives_503(tmp_path: Path, db_url: str, recording_file: Path) -> None:
    """The database knows the recording, the store does not answer: 503 with the error shape, nothing lost."""
    up = make_settings(tmp_path / "up", db_url)
    up_services = Services.from_settings(up)
    with TestClient(create_app(up, up_services), base_url="http://testserver/api/v1") as client:
        owner = register_and_login(client)
        bot_id = Recorded(client, up_services).finished_bot(owner, recording_file)
    down_url = f"s3://key:secret@127.0.0.1:{free_port()}/meetbot?secure=false&region=us-east-1"
    down = make_settings(tmp_path / "up", db_url, storage_url=down_url)
    with TestClient(create_app(down, Services.from_settings(down)), base_url="http://testserver/api/v1") as client:
        for method, path in [
            ("GET", f"/recordings/{bot_id}/stream"),
            ("GET", f"/recordings/{bot_id}/download"),
            ("DELETE", f"/recordings/{bot_id}"),
            ("DELETE", f"/bots/{bot_id}"),
        ]:
            response = client.request(method, path, headers=owner.headers)
            assert response.status_code == 503, (method, path, response.text)
            assert isinstance(response.json()["detail"], str)
        assert client.get(f"/recordings/{bot_id}", headers=owner.headers).status_code == 200  # nothing lost
        assert client.get(f"/bots/{bot_id}", headers=owner.headers).status_code == 200
