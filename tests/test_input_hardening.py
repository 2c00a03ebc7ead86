"""Inputs the audit found mishandled: races on unique emails, coerced JSON types, odd date-times and URLs."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from meetbot.db import now_utc
from meetbot.db.engine import get_engine
from meetbot.db.tables import users
from meetbot.domain.meeting_urls import check_meeting_url
from meetbot.settings import Settings
from tests.conftest import GOOGLE_BOT, Account

ZOOM_BOT = {"meetingInfo": {"platform": "zoom", "meetingUrl": "https://zoom.us/j/1234567890"}}


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


def assert_seed_422(response: Any, loc: list[str | int]) -> None:
    assert response.status_code == 422, response.text
    items = response.json()["detail"]
    assert all(set(item) == {"loc", "msg", "type"} for item in items), items
    assert loc in [item["loc"] for item in items], items


# --- 1, 2: unique emails under concurrency; no SQL parameters in error text ---------------------


def test_concurrent_registrations_of_one_email_are_one_201_and_409s(client: TestClient) -> None:
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": "long enough", "name": "Racer"}
    start = threading.Barrier(6)
    codes: list[int] = []

    def register() -> None:
        start.wait()
        codes.append(client.post("/auth/register", json=body).status_code)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [201, 409, 409, 409, 409, 409]


def test_email_change_that_loses_a_race_is_a_conflict(client: TestClient, alice: Account, settings: Settings) -> None:
    """The row appears between the check and the write: a unique violation, answered 409 (not 500)."""
    taken = "taken@example.com"
    engine = get_engine(settings.effective_database_url)

    pending = [taken]

    def insert_rival(_conn: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if pending and statement.lstrip().upper().startswith("UPDATE USERS"):
            now = now_utc()
            with engine.begin() as other:
                other.execute(
                    users.insert().values(
                        email=pending.pop(), name="R", password_hash="x", created_at=now, updated_at=now
                    )
                )

    sa.event.listen(engine, "before_cursor_execute", insert_rival)
    try:
        response = client.patch(
            "/users/me", json={"email": taken, "currentPassword": alice.password}, headers=alice.headers
        )
    finally:
        sa.event.remove(engine, "before_cursor_execute", insert_rival)
    assert not pending
    assert response.status_code == 409 and response.json() == {"detail": "Email already registered"}


def test_database_errors_do_not_carry_sql_parameters(db_url: str) -> None:
    engine = get_engine(db_url)
    now = now_utc()
    row = {"email": "dup@example.com", "name": "D", "password_hash": "argon2-SECRET-HASH", "created_at": now}
    with engine.begin() as conn:
        conn.execute(users.insert().values(**row, updated_at=now))
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        conn.execute(users.insert().values(**row, updated_at=now))
    text = str(caught.value)
    # PostgreSQL's own DETAIL names the duplicate key; the other parameters must not appear at all.
    assert "SECRET-HASH" not in text and "[SQL parameters hidden due to hide_parameters=True]" in text


# --- 3, 4: strict JSON types and representable date-times ---------------------------------------


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"heartbeatInterval": "5000"}, ["body", "heartbeatInterval"]),
        ({"heartbeatInterval": 5000.5}, ["body", "heartbeatInterval"]),  # 5000.0 is the integer 5000 (JSON Schema)
        ({"heartbeatInterval": True}, ["body", "heartbeatInterval"]),
        ({"transcription": {"auto": "yes"}}, ["body", "transcription", "auto"]),
        ({"transcription": {"auto": 1}}, ["body", "transcription", "auto"]),
        ({"summary": {"auto": "true"}}, ["body", "summary", "auto"]),
        ({"recordingSettings": {"audioOnly": 0}}, ["body", "recordingSettings", "audioOnly"]),
        ({"automaticLeave": {"everyoneLeftTimeout": "30000"}}, ["body", "automaticLeave", "everyoneLeftTimeout"]),
        (
            {"automaticLeave": {"silenceDetection": {"timeout": "5000"}}},
            ["body", "automaticLeave", "silenceDetection", "timeout"],
        ),
        ({"startTime": 1700000000}, ["body", "startTime"]),
        ({"startTime": "1700000000"}, ["body", "startTime"]),
        ({"endTime": 4102444800.0}, ["body", "endTime"]),
        ({"startTime": "0001-01-01T00:00:00+23:59"}, ["body", "startTime"]),
        ({"startTime": "9999-12-31T23:59:59-01:00"}, ["body", "startTime"]),
        ({"startTime": "1999-12-31T23:59:59Z"}, ["body", "startTime"]),
        ({"endTime": "0001-01-01T00:00:00Z"}, ["body", "endTime"]),
    ],
)
def test_wrong_json_types_and_unrepresentable_times_are_422(
    client: TestClient, alice: Account, extra: dict[str, Any], loc: list[str]
) -> None:
    assert_seed_422(client.post("/bots", json={**GOOGLE_BOT, **extra}, headers=alice.headers), loc)


def test_wrong_types_in_a_patch_are_422(client: TestClient, alice: Account) -> None:
    bot = client.post("/bots", json=GOOGLE_BOT, headers=alice.headers).json()
    for body, loc in (
        ({"heartbeatInterval": "5000"}, ["body", "heartbeatInterval"]),
        ({"summary": {"auto": "true"}}, ["body", "summary", "auto"]),
        ({"startTime": 1700000000}, ["body", "startTime"]),
        ({"startTime": "0001-01-01T00:00:00+23:59"}, ["body", "startTime"]),
    ):
        assert_seed_422(client.patch(f"/bots/{bot['id']}", json=body, headers=alice.headers), loc)


def test_valid_iso_times_and_real_types_still_pass(client: TestClient, alice: Account) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    body = {
        **GOOGLE_BOT,
        "startTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTime": (start + timedelta(hours=3)).astimezone(timezone(timedelta(hours=2))).isoformat(),
        "heartbeatInterval": 2000,
        "transcription": {"auto": True, "language": "en"},
        "summary": {"auto": False},
    }
    response = client.post("/bots", json=body, headers=alice.headers)
    assert response.status_code == 201, response.text
    bot = response.json()
    assert bot["startTime"].endswith("Z") and bot["endTime"].endswith("Z")
    assert bot["transcription"]["auto"] is True and bot["heartbeatInterval"] == 2000
    since = client.get(f"/bots/{bot['id']}/logs", params={"since": "2001-01-01T00:00:00+01:00"}, headers=alice.headers)
    assert since.status_code == 200
    assert_seed_422(
        client.get(f"/bots/{bot['id']}/logs", params={"since": "1700000000"}, headers=alice.headers),
        ["query", "since"],
    )


def test_auth_bodies_reject_non_string_fields(client: TestClient) -> None:
    response = client.post("/auth/register", json={"email": "n@example.com", "password": 12345678, "name": "N"})
    assert_seed_422(response, ["body", "password"])


# --- 5: meeting URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "url"),
    [
        ("google", "https://meet.google.com:99999/abc-defg-hij"),
        ("google", "https://meet.google.com:8443/abc-defg-hij"),
        ("zoom", "https://zoom.us:80/j/1234567890"),
        ("google", " https://meet.google.com/abc-defg-hij"),
        ("google", "https://meet.google.com/abc-defg-hij\n"),
        ("google", "https://meet.google.com/abc-\tdefg-hij"),
        ("google", "https://meet.goo\x00gle.com/abc-defg-hij"),
        ("teams", "https://teams.live.com/meet/9876543210123\x7f"),
        ("google", "https://meet.google.com/abc defg-hij"),
    ],
)
def test_bad_ports_and_control_characters_in_meeting_urls_are_422(
    client: TestClient, alice: Account, platform: str, url: str
) -> None:
    assert check_meeting_url(platform, url, allow_simulator=True) is not None
    response = client.post(
        "/bots", json={"meetingInfo": {"platform": platform, "meetingUrl": url}}, headers=alice.headers
    )
    assert_seed_422(response, ["body", "meetingInfo", "meetingUrl"])


def test_default_port_and_simulator_ports_stay_valid() -> None:
    assert check_meeting_url("google", "https://meet.google.com:443/abc-defg-hij", allow_simulator=False) is None
    assert check_meeting_url("google", "http://127.0.0.1:8100/google/abc-defg-hij", allow_simulator=True) is None


# --- 6: a password change ends the other sessions ------------------------------------------------


def test_password_change_revokes_other_sessions_but_not_this_one_or_api_keys(
    client: TestClient, alice: Account
) -> None:
    other = client.post("/auth/login", json={"email": alice.email, "password": alice.password}).json()
    key = client.post("/api-keys", json={"name": "ci"}, headers=alice.headers).json()["key"]
    changed = client.patch(
        "/users/me", json={"password": "a brand new one", "currentPassword": alice.password}, headers=alice.headers
    )
    assert changed.status_code == 200
    assert client.get("/users/me", headers={"Authorization": f"Bearer {other['accessToken']}"}).status_code == 401
    assert client.post("/auth/refresh", json={"refreshToken": other["refreshToken"]}).status_code == 401
    assert client.get("/users/me", headers=alice.headers).status_code == 200
    assert client.post("/auth/refresh", json={"refreshToken": alice.refresh_token}).status_code == 200
    assert client.get("/users/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200


# --- 7: PATCH merges nested objects ---------------------------------------------------------------


def test_patch_merges_nested_objects(client: TestClient, alice: Account) -> None:
    body = {
        "meetingInfo": {**ZOOM_BOT["meetingInfo"], "meetingId": "1234567890", "meetingPassword": "s3cr3t"},
        "automaticLeave": {"silenceDetection": {"timeout": 60000, "activateAfter": 1000}, "everyoneLeftTimeout": 5000},
        "transcription": {"auto": True, "language": "de"},
    }
    bot = client.post("/bots", json=body, headers=alice.headers).json()
    url = f"/bots/{bot['id']}"
    patch = {
        "meetingInfo": {"platform": "zoom", "meetingUrl": "https://us02web.zoom.us/j/9876543210"},
        "automaticLeave": {"silenceDetection": {"timeout": 90000}},
        "transcription": {"language": "fr"},
    }
    response = client.patch(url, json=patch, headers=alice.headers)
    assert response.status_code == 200, response.text
    merged = response.json()
    info = merged["meetingInfo"]
    assert info["meetingUrl"] == "https://us02web.zoom.us/j/9876543210" and info["meetingId"] == "1234567890"
    assert info["meetingPassword"] == "********"
    leave = merged["automaticLeave"]
    assert (
        leave["silenceDetection"] == {"timeout": 90000, "activateAfter": 1000} and leave["everyoneLeftTimeout"] == 5000
    )
    assert merged["transcription"] == {"auto": True, "language": "fr"}

    cleared = client.patch(
        url,
        json={"meetingInfo": {"meetingId": None}, "automaticLeave": {"silenceDetection": None}},
        headers=alice.headers,
    ).json()
    assert cleared["meetingInfo"]["meetingId"] is None and cleared["meetingInfo"]["meetingPassword"] == "********"
    assert cleared["automaticLeave"]["silenceDetection"] is None
    assert cleared["automaticLeave"]["everyoneLeftTimeout"] == 5000


def test_merged_patch_must_still_validate(client: TestClient, alice: Account) -> None:
    bot = client.post("/bots", json=ZOOM_BOT, headers=alice.headers).json()
    url = f"/bots/{bot['id']}"
    wrong_platform = client.patch(url, json={"meetingInfo": {"platform": "google"}}, headers=alice.headers)
    assert_seed_422(wrong_platform, ["body", "meetingInfo", "meetingUrl"])
    no_timeout = client.patch(
        url, json={"automaticLeave": {"silenceDetection": {"activateAfter": 5000}}}, headers=alice.headers
    )
    assert_seed_422(no_timeout, ["body", "automaticLeave", "silenceDetection", "timeout"])
    no_url = client.patch(url, json={"meetingInfo": {"meetingUrl": None}}, headers=alice.headers)
    assert_seed_422(no_url, ["body", "meetingInfo", "meetingUrl"])
    assert client.get(url, headers=alice.headers).json()["meetingInfo"] == bot["meetingInfo"]


# --- 8, 9: usage keys and event-type filter --------------------------------------------------------


def test_usage_keys_are_camel_case_with_lowercase_h(client: TestClient, alice: Account) -> None:
    usage = client.get("/users/me/usage", headers=alice.headers).json()
    assert "apiRequestsLast24h" in usage and "apiRequestsLast24H" not in usage
    key = client.post("/api-keys", json={}, headers=alice.headers).json()
    key_usage = client.get(f"/api-keys/{key['id']}/usage", headers=alice.headers).json()
    assert "requestsLast24h" in key_usage and "requestsLast24H" not in key_usage
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "apiRequestsLast24h" in schemas["Usage"]["properties"]
    assert "requestsLast24h" in schemas["ApiKeyUsage"]["properties"]


def test_event_type_filter_is_validated(client: TestClient, alice: Account) -> None:
    bot = client.post("/bots", json=GOOGLE_BOT, headers=alice.headers).json()
    client.post(f"/bots/{bot['id']}/deploy", headers=alice.headers)
    url = f"/bots/{bot['id']}/events"
    assert_seed_422(client.get(url, params={"type": "NOPE"}, headers=alice.headers), ["query", "type"])
    changes = client.get(url, params={"type": "STATUS_CHANGE"}, headers=alice.headers).json()
    assert changes["total"] == 1
    joins = client.get(url, params={"type": "PARTICIPANT_JOIN"}, headers=alice.headers).json()
    assert joins["total"] == 0
