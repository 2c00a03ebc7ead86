"""The bot resource through the API: validation, CRUD, ownership, deploy and kill bookkeeping (no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.services import Services
from meetbot.db.tables import bots
from meetbot.domain.bots import opened_config
from meetbot.queue import QUEUE_BOTS
from tests.conftest import GOOGLE_BOT, Account


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


def create(client: TestClient, account: Account, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/bots", json=body or GOOGLE_BOT, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def queued(services: Services, name: str = QUEUE_BOTS) -> int:
    return services.broker.queues[name].qsize()


def test_seed_example_creates_a_ready_bot(client: TestClient, alice: Account) -> None:
    bot = create(client, alice)
    assert bot["id"] >= 1 and bot["status"] == "READY_TO_DEPLOY"
    assert bot["meetingInfo"] == {
        **GOOGLE_BOT["meetingInfo"],
        **{k: None for k in ("meetingId", "meetingPassword", "organizerId", "tenantId", "messageId", "threadId")},
    }
    for field in ("deploymentError", "recording", "lastHeartbeat"):
        assert bot[field] is None
    assert bot["createdAt"].endswith("Z") and bot["updatedAt"].endswith("Z")
    assert bot["heartbeatInterval"] == 5000 and bot["botDisplayName"] == "MeetBot"


def test_missing_platform_gets_the_seed_error(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/bots", json={"meetingInfo": {"meetingUrl": "https://meet.google.com/abc-defg-hij"}}, headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"loc": ["body", "meetingInfo", "platform"], "msg": "field required", "type": "value_error.missing"}]
    }


@pytest.mark.parametrize(
    ("meeting_info", "loc"),
    [
        ({"platform": "skype", "meetingUrl": "https://meet.google.com/abc-defg-hij"}, "platform"),
        ({"platform": "google", "meetingUrl": "https://evil.example.com/abc-defg-hij"}, "meetingUrl"),
        ({"platform": "zoom", "meetingUrl": "https://meet.google.com/abc-defg-hij"}, "meetingUrl"),
        ({"platform": "teams", "meetingUrl": "https://zoom.us/j/1234567890"}, "meetingUrl"),
        ({"platform": "google", "meetingUrl": "http://meet.google.com/abc-defg-hij"}, "meetingUrl"),
        ({"platform": "google", "meetingUrl": 42}, "meetingUrl"),
    ],
)
def test_meeting_url_must_match_platform(client: TestClient, alice: Account, meeting_info: dict, loc: str) -> None:
    response = client.post("/bots", json={"meetingInfo": meeting_info}, headers=alice.headers)
    assert response.status_code == 422
    assert ["body", "meetingInfo", loc] in [item["loc"] for item in response.json()["detail"]]


@pytest.mark.parametrize(
    "url",
    [
        ("zoom", "https://us02web.zoom.us/j/81234567890?pwd=abc"),
        ("teams", "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%7d"),
        ("teams", "https://teams.live.com/meet/9876543210123?p=xyz"),
        ("google", "http://127.0.0.1:8100/google/abc-defg-hij"),
    ],
)
def test_real_platform_and_simulator_urls_are_accepted(client: TestClient, alice: Account, url: tuple) -> None:
    platform, meeting_url = url
    create(client, alice, {"meetingInfo": {"platform": platform, "meetingUrl": meeting_url}})


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"heartbeatInterval": 10}, ["body", "heartbeatInterval"]),
        ({"heartbeatInterval": "often"}, ["body", "heartbeatInterval"]),
        ({"botDisplayName": ""}, ["body", "botDisplayName"]),
        ({"botDisplayName": "x" * 101}, ["body", "botDisplayName"]),
        ({"botImage": "ftp://example.com/a.png"}, ["body", "botImage"]),
        ({"unknownField": 1}, ["body", "unknownField"]),
        ({"automaticLeave": {"waitingRoomTimeout": -5}}, ["body", "automaticLeave", "waitingRoomTimeout"]),
        (
            {"automaticLeave": {"silenceDetection": {"timeout": 10**12}}},
            ["body", "automaticLeave", "silenceDetection", "timeout"],
        ),
        ({"startTime": "yesterday"}, ["body", "startTime"]),
        ({"startTime": "2030-01-01T10:00:00"}, ["body", "startTime"]),
        ({"startTime": iso(timedelta(hours=2)), "endTime": iso(timedelta(hours=1))}, ["body"]),
        ({"endTime": iso(timedelta(hours=-1))}, ["body"]),
    ],
)
def test_bot_settings_are_bounded(client: TestClient, alice: Account, extra: dict, loc: list) -> None:
    response = client.post("/bots", json={**GOOGLE_BOT, **extra}, headers=alice.headers)
    assert response.status_code == 422, response.text
    items = response.json()["detail"]
    assert loc in [item["loc"] for item in items]
    assert all(set(item) == {"loc", "msg", "type"} for item in items)


def test_malformed_and_oversized_bodies(client: TestClient, alice: Account) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}
    bad = client.post("/bots", content=b'{"meetingInfo": ', headers=headers)
    assert bad.status_code == 400 and bad.json() == {"detail": "Malformed JSON body"}
    assert client.post("/bots", content=b"\xff\xfe", headers=headers).status_code == 400
    not_object = client.post("/bots", json=[1, 2], headers=alice.headers)
    assert not_object.status_code == 422 and not_object.json()["detail"][0]["loc"] == ["body"]
    huge = client.post("/bots", content=b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}', headers=headers)
    assert huge.status_code == 413 and "detail" in huge.json()


def test_pagination_and_filters(client: TestClient, alice: Account) -> None:
    for _ in range(3):
        create(client, alice)
    create(client, alice, {"meetingInfo": {"platform": "zoom", "meetingUrl": "https://zoom.us/j/1234567890"}})
    page = client.get("/bots", params={"page": 2, "page_size": 3}, headers=alice.headers).json()
    assert page["total"] == 4 and page["page"] == 2 and page["page_size"] == 3 and len(page["bots"]) == 1
    zoom = client.get("/bots", params={"platform": "zoom"}, headers=alice.headers).json()
    assert zoom["total"] == 1 and zoom["bots"][0]["meetingInfo"]["platform"] == "zoom"
    ready = client.get("/bots", params={"status": "READY_TO_DEPLOY"}, headers=alice.headers).json()
    assert ready["total"] == 4
    bad = ({"page_size": 101}, {"page": 0}, {"page": -1}, {"page": "x"}, {"status": "SLEEPING"}, {"pagesize": 5})
    for params in bad:
        response = client.get("/bots", params=params, headers=alice.headers)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["loc"][0] == "query"


def test_invalid_ids(client: TestClient, alice: Account) -> None:
    for bot_id in ("abc", "0", "-1", "99999999999999999999999"):
        response = client.get(f"/bots/{bot_id}", headers=alice.headers)
        assert response.status_code == 422, bot_id
        assert response.json()["detail"][0]["loc"] == ["path", "id"]
    assert client.get("/bots/424242", headers=alice.headers).json() == {"detail": "Bot not found"}


def test_cross_user_access_is_404(client: TestClient, alice: Account, bob: Account) -> None:
    bot = create(client, alice)
    for method, path in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/deploy"),
        ("POST", "/kill"),
        ("GET", "/events"),
        ("GET", "/logs"),
    ):
        kwargs: dict[str, Any] = {"json": {"meetingTitle": "x"}} if method == "PATCH" else {}
        response = client.request(method, f"/bots/{bot['id']}{path}", headers=bob.headers, **kwargs)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "Bot not found"}
    assert client.get("/bots", headers=bob.headers).json()["total"] == 0
    assert client.get(f"/bots/{bot['id']}", headers=alice.headers).json()["status"] == "READY_TO_DEPLOY"


def test_patch_before_deploy_and_revalidation(client: TestClient, alice: Account) -> None:
    bot = create(client, alice)
    patched = client.patch(
        f"/bots/{bot['id']}",
        json={"botDisplayName": "Notes", "automaticLeave": {"everyoneLeftTimeout": 30000}},
        headers=alice.headers,
    )
    assert patched.status_code == 200
    body = patched.json()
    assert body["botDisplayName"] == "Notes" and body["automaticLeave"]["everyoneLeftTimeout"] == 30000
    assert body["meetingInfo"]["meetingUrl"] == GOOGLE_BOT["meetingInfo"]["meetingUrl"]
    mismatch = client.patch(
        f"/bots/{bot['id']}",
        json={"meetingInfo": {"platform": "zoom", "meetingUrl": "https://meet.google.com/abc-defg-hij"}},
        headers=alice.headers,
    )
    assert mismatch.status_code == 422


def test_deploy_queues_one_message_and_locks_settings(client: TestClient, alice: Account, services: Services) -> None:
    bot = create(client, alice)
    deployed = client.post(f"/bots/{bot['id']}/deploy", headers=alice.headers)
    assert deployed.status_code == 200 and deployed.json()["status"] == "DEPLOYING"
    assert queued(services) == 1
    again = client.post(f"/bots/{bot['id']}/deploy", headers=alice.headers)
    assert again.status_code == 409 and "already deployed" in again.json()["detail"]
    assert queued(services) == 1
    locked = client.patch(f"/bots/{bot['id']}", json={"botDisplayName": "x"}, headers=alice.headers)
    assert locked.status_code == 409
    title = client.patch(f"/bots/{bot['id']}", json={"meetingTitle": "Weekly"}, headers=alice.headers)
    assert title.status_code == 200 and title.json()["meetingTitle"] == "Weekly"
    busy = client.delete(f"/bots/{bot['id']}", headers=alice.headers)
    assert busy.status_code == 409
    events = client.get(f"/bots/{bot['id']}/events", headers=alice.headers).json()
    assert [(e["type"], e["status"]) for e in events["events"]] == [("STATUS_CHANGE", "DEPLOYING")]
    assert set(events["events"][0]["data"]) >= {"sub_code", "description"}


def test_scheduled_deploy_is_delayed(client: TestClient, alice: Account, services: Services) -> None:
    bot = create(client, alice, {**GOOGLE_BOT, "startTime": iso(timedelta(minutes=10))})
    assert client.post(f"/bots/{bot['id']}/deploy", headers=alice.headers).status_code == 200
    assert queued(services) == 0 and queued(services, "bots.DQ") == 1


def test_kill_before_start_ends_without_a_browser(client: TestClient, alice: Account, services: Services) -> None:
    ready = create(client, alice)
    killed = client.post(f"/bots/{ready['id']}/kill", headers=alice.headers)
    assert killed.status_code == 200 and killed.json()["status"] == "DONE"
    deploying = create(client, alice)
    client.post(f"/bots/{deploying['id']}/deploy", headers=alice.headers)
    body = client.post(f"/bots/{deploying['id']}/kill", headers=alice.headers).json()
    assert body["status"] == "DONE"
    events = client.get(f"/bots/{deploying['id']}/events", headers=alice.headers).json()["events"]
    assert [e["status"] for e in events] == ["DEPLOYING", "CALL_ENDED", "DONE"]
    assert events[1]["data"]["sub_code"] == "killed"
    finished = client.post(f"/bots/{deploying['id']}/kill", headers=alice.headers)
    assert finished.status_code == 409
    assert client.post(f"/bots/{deploying['id']}/deploy", headers=alice.headers).status_code == 409
    assert client.delete(f"/bots/{deploying['id']}", headers=alice.headers).status_code == 204
    assert client.get(f"/bots/{deploying['id']}", headers=alice.headers).status_code == 404


def test_logs_endpoint_is_paginated_oldest_first(client: TestClient, alice: Account, services: Services) -> None:
    from meetbot.domain.bot_states import record_log

    bot = create(client, alice)
    with services.transaction() as conn:
        for n in range(5):
            record_log(conn, bot["id"], f"line {n}")
    logs = client.get(f"/bots/{bot['id']}/logs", params={"page_size": 3}, headers=alice.headers).json()
    assert [entry["message"] for entry in logs["logs"]] == ["line 0", "line 1", "line 2"] and logs["total"] == 5
    later = client.get(f"/bots/{bot['id']}/logs", params={"since": iso(timedelta(minutes=5))}, headers=alice.headers)
    assert later.json()["total"] == 0


def test_meeting_password_is_never_returned(client: TestClient, alice: Account, services: Services) -> None:
    body = {
        "meetingInfo": {"platform": "zoom", "meetingUrl": "https://zoom.us/j/1234567890", "meetingPassword": "s3cr3t"}
    }
    bot = create(client, alice, body)
    assert bot["meetingInfo"]["meetingPassword"] == "********"
    shown = client.get(f"/bots/{bot['id']}", headers=alice.headers).json()
    assert "s3cr3t" not in str(shown)
    # Sending back what GET showed keeps the stored password; a new one replaces it.
    client.patch(f"/bots/{bot['id']}", json={"meetingInfo": shown["meetingInfo"]}, headers=alice.headers)
    with services.transaction() as conn:
        stored = conn.execute(bots.select().where(bots.c.id == bot["id"])).one().config
    # Stored sealed (a database dump does not give it away); what the bot opens is the password itself.
    assert stored["meetingInfo"]["meetingPassword"].startswith("enc:v1:") and "s3cr3t" not in str(stored)
    keys = services.settings.secret_keys(services.secret_key)
    assert opened_config(stored, keys)["meetingInfo"]["meetingPassword"] == "s3cr3t"


def test_patch_cannot_move_end_time_into_the_past(client: TestClient, alice: Account) -> None:
    bot = create(client, alice)
    response = client.patch(f"/bots/{bot['id']}", json={"endTime": iso(timedelta(minutes=-5))}, headers=alice.headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body"]
