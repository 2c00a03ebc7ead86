"""Share links: created, shown, revoked and expired; the public JSON, player page and stream; retention."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import now_utc
from meetbot.db.tables import recordings, share_links
from meetbot.signals import kill_signals_for
from tests.conftest import Account, make_settings, register_and_login
from tests.test_recordings_api import Recorded, owner, rec_settings, recorded, stranger
from workers.context import WorkerContext
from workers.maintenance import expire_recordings

__all__ = ["owner", "rec_settings", "recorded", "stranger"]  # fixtures shared with the recordings API tests


def share(recorded: Recorded, account: Account, bot_id: int, **body: int) -> dict[str, object]:
    response = recorded.client.post(f"/recordings/{bot_id}/share", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_share_link_opens_the_recording_to_anyone_who_has_it(
    recorded: Recorded, owner: Account, recording_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = recorded.client
    bot_id = recorded.finished_bot(owner, recording_file, meetingTitle="Design review <Q3>")
    caplog.set_level(logging.INFO)

    link = share(recorded, owner, bot_id)
    token = str(link["token"])
    assert len(token) >= 22  # ≥ 128 random bits in URL-safe base64
    assert link["url"] == f"http://testserver/api/v1/share/{token}" and link["expiresAt"] is None
    assert client.get(f"/recordings/{bot_id}", headers=owner.headers).json()["shareUrl"] == link["url"]

    public = client.get(f"/share/{token}")  # no credentials
    assert public.status_code == 200
    body = public.json()
    assert body["title"] == "Design review <Q3>" and body["platform"] == "google" and body["audioOnly"] is False
    assert 11.5 < body["durationSeconds"] < 12.5 and body["contentType"] == "video/mp4"
    assert body["streamUrl"] == f"http://testserver/api/v1/share/{token}/stream"

    streamed = client.get(f"/share/{token}/stream", headers={"Range": "bytes=100-199"})
    assert streamed.status_code == 206 and streamed.content == recording_file.read_bytes()[100:200]
    assert client.get(f"/share/{token}/transcript").json() == {"detail": "Transcript not found"}

    page = client.get(f"/share/{token}", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Design review &lt;Q3&gt;" in page.text and "<Q3>" not in page.text  # escaped
    assert f'src="http://testserver/api/v1/share/{token}/stream"' in page.text and "<video" in page.text
    assert "http" not in page.headers["content-security-policy"]  # nothing from a CDN or any other host
    assert page.headers["referrer-policy"] == "no-referrer"

    shown = client.get(f"/recordings/{bot_id}/share", headers=owner.headers).json()
    assert shown["token"] == token and shown["viewCount"] == 2  # the JSON and the page; not the stream

    ours = [record for record in caplog.records if record.name.startswith("meetbot")]  # not the test's own client
    assert any(getattr(record, "path", "") == "/api/v1/share/{token}/stream" for record in ours)
    assert not [record for record in ours if token in str(record.__dict__)], "a share token reached our logs"


def test_one_active_link_revoke_and_expiry(
    recorded: Recorded, owner: Account, stranger: Account, recording_file: Path
) -> None:
    client = recorded.client
    bot_id = recorded.finished_bot(owner, recording_file)
    assert client.get(f"/recordings/{bot_id}/share", headers=owner.headers).status_code == 404
    token = str(share(recorded, owner, bot_id, expiresIn=3600)["token"])
    again = client.post(f"/recordings/{bot_id}/share", json={}, headers=owner.headers)
    assert again.status_code == 409
    assert client.post(f"/recordings/{bot_id}/share", json={}, headers=stranger.headers).status_code == 404

    assert client.delete(f"/recordings/{bot_id}/share", headers=owner.headers).status_code == 204
    for path in ("", "/stream", "/transcript"):
        gone = client.get(f"/share/{token}{path}")
        assert gone.status_code == 404 and gone.json() == {"detail": "Share link not found"}, path
    assert client.get(f"/recordings/{bot_id}", headers=owner.headers).json()["shareUrl"] is None
    assert client.delete(f"/recordings/{bot_id}/share", headers=owner.headers).status_code == 404

    token = str(share(recorded, owner, bot_id, expiresIn=60)["token"])
    assert client.get(f"/share/{token}").status_code == 200
    with recorded.services.engine.begin() as conn:
        conn.execute(share_links.update().values(expires_at=now_utc() - timedelta(seconds=1)))
    assert client.get(f"/share/{token}").status_code == 404
    assert client.get(f"/recordings/{bot_id}/share", headers=owner.headers).status_code == 404
    share(recorded, owner, bot_id)  # an expired link does not block a new one


@pytest.mark.parametrize("body", [{"expiresIn": 59}, {"expiresIn": "3600"}, {"expiresIn": 10**9}, {"other": 1}])
def test_bad_share_requests_are_422(recorded: Recorded, owner: Account, recording_file: Path, body: dict) -> None:
    bot_id = recorded.finished_bot(owner, recording_file)
    response = recorded.client.post(f"/recordings/{bot_id}/share", json=body, headers=owner.headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("token", ["x", "a" * 40, "../../etc/passwd", "%00", "a" * 65])
def test_unknown_or_malformed_tokens_are_404(recorded: Recorded, token: str) -> None:
    response = recorded.client.get(f"/share/{token}")
    assert response.status_code == 404


def test_audio_only_share_page_has_an_audio_player(
    recorded: Recorded, owner: Account, audio_recording_file: Path
) -> None:
    bot_id = recorded.finished_bot(owner, audio_recording_file)
    token = share(recorded, owner, bot_id)["token"]
    page = recorded.client.get(f"/share/{token}", headers={"Accept": "text/html"})
    assert "<audio" in page.text and "<video" not in page.text
    assert recorded.client.get(f"/share/{token}").json()["audioOnly"] is True


def test_retention_deletes_expired_recordings_and_keeps_the_others(
    recorded: Recorded, owner: Account, recording_file: Path
) -> None:
    client = recorded.client
    keep = recorded.finished_bot(owner, recording_file)
    expire = recorded.finished_bot(owner, recording_file, recordingSettings={"retentionDays": 7})
    keys = {bot: client.get(f"/bots/{bot}", headers=owner.headers).json()["recording"]["key"] for bot in (keep, expire)}
    token = share(recorded, owner, expire)["token"]
    with recorded.services.engine.begin() as conn:
        rows = dict(conn.execute(sa.select(recordings.c.bot_id, recordings.c.expires_at)).all())
        assert rows[keep] is None  # no retention configured: kept until deleted
        assert timedelta(days=6.99) < rows[expire] - now_utc() < timedelta(days=7)
        conn.execute(
            recordings.update().where(recordings.c.bot_id == expire).values(expires_at=now_utc() - timedelta(1))
        )
    services = recorded.services
    ctx = WorkerContext(services.settings, services.engine, services.store, services.broker, kill_signals_for(None))

    assert expire_recordings(ctx) == 1

    assert not services.store.exists(keys[expire]) and services.store.exists(keys[keep])
    assert client.get(f"/recordings/{expire}", headers=owner.headers).status_code == 404
    assert client.get(f"/recordings/{keep}", headers=owner.headers).status_code == 200
    assert client.get(f"/share/{token}").status_code == 404
    events = client.get(f"/bots/{expire}/events", params={"type": "RECORDING_DELETED"}, headers=owner.headers)
    assert [event["data"] for event in events.json()["events"]] == [{"reason": "retention"}]
    assert expire_recordings(ctx) == 0


def test_default_retention_comes_from_settings(tmp_path: Path, db_url: str, recording_file: Path) -> None:
    settings = make_settings(tmp_path, db_url, recording_retention_days=30)
    services = Services.from_settings(settings)
    with TestClient(create_app(settings, services), base_url="http://testserver/api/v1") as client:
        account = register_and_login(client)
        recorded = Recorded(client, services)
        default = recorded.finished_bot(account, recording_file)
        own = recorded.finished_bot(account, recording_file, recordingSettings={"retentionDays": 2})
        body = {bot: client.get(f"/recordings/{bot}", headers=account.headers).json() for bot in (default, own)}
    for bot, days in ((default, 30), (own, 2)):
        assert body[bot]["expiresAt"] is not None
        with services.engine.connect() as conn:
            expires = conn.execute(sa.select(recordings.c.expires_at).where(recordings.c.bot_id == bot)).scalar_one()
        assert timedelta(days=days) - timedelta(minutes=1) < expires - now_utc() <= timedelta(days=days)
