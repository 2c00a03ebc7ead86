"""Analytics over rows spread across days: the caller's daily series and totals, and an API key's daily use."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from api.services import Services
from meetbot.db.tables import (
    api_request_logs,
    bot_events,
    bots,
    recordings,
    transcripts,
    webhook_deliveries,
    webhooks,
)
from tests.conftest import GOOGLE_BOT, Account

ZERO = {
    "botsCreated": 0,
    "botsCompleted": 0,
    "botsFailed": 0,
    "minutesInCall": 0.0,
    "minutesRecorded": 0.0,
    "minutesTranscribed": 0.0,
    "apiRequests": 0,
    "webhookDeliveriesOk": 0,
    "webhookDeliveriesFailed": 0,
}


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def new_bot(client: TestClient, account: Account) -> int:
    response = client.post("/bots", json=GOOGLE_BOT, headers=account.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def user_id(client: TestClient, account: Account) -> int:
    return int(client.get("/users/me", headers=account.headers).json()["id"])


def status_event(conn: sa.Connection, bot_id: int, status: str, when: datetime) -> None:
    conn.execute(
        bot_events.insert().values(bot_id=bot_id, type="STATUS_CHANGE", status=status, data={}, created_at=when)
    )


def request_logs(
    conn: sa.Connection, user: int, when: datetime, count: int, key: int | None = None, path: str = "/api/v1/bots"
) -> None:
    rows = [
        {"user_id": user, "api_key_id": key, "method": "GET", "path": path, "status_code": 200, "duration_ms": 1.0,
         "created_at": when}
        for _ in range(count)
    ]  # fmt: skip
    conn.execute(api_request_logs.insert(), rows)


def deliveries(conn: sa.Connection, user: int, when: datetime, statuses: list[str]) -> None:
    hook = conn.execute(
        webhooks.insert()
        .values(user_id=user, url="https://example.com/hook", events=None, description="", active=True,
                secret="whsec_test", created_at=when, updated_at=when)
        .returning(webhooks.c.id)
    ).scalar_one()  # fmt: skip
    for n, status in enumerate(statuses):
        conn.execute(
            webhook_deliveries.insert().values(
                webhook_id=hook, user_id=user, event_id=f"evt_{hook}_{n}", event_type="bot.status_changed",
                payload={}, status=status, next_attempt_at=when, created_at=when, updated_at=when,
            )
        )  # fmt: skip


def test_daily_series_and_totals(client: TestClient, services: Services, alice: Account, bob: Account) -> None:
    now = datetime.now(UTC)
    today = now.date()
    d1, d2, d3, d10 = (today - timedelta(days=n) for n in (1, 2, 3, 10))
    me, them = user_id(client, alice), user_id(client, bob)
    a, b, c, live = (new_bot(client, alice) for _ in range(4))
    bobs = new_bot(client, bob)
    services.request_log.flush()  # the requests above, buffered off the request path, are in the table now
    with services.transaction() as conn:

        def bot(bot_id: int, created: datetime, **values: Any) -> None:
            conn.execute(bots.update().where(bots.c.id == bot_id).values(created_at=created, **values))

        # a: in call across midnight (30 min on d3, 20 min on d2), DONE on d2, recorded and transcribed on d2
        bot(a, at(d3, 9), joined_at=at(d3, 23, 30), left_at=at(d2, 0, 20), status="DONE")
        status_event(conn, a, "DONE", at(d2, 0, 21))
        conn.execute(recordings.insert().values(
            bot_id=a, user_id=me, storage_key="k/a.mp4", content_type="video/mp4", size_bytes=1, duration_seconds=600,
            streams=[], created_at=at(d2, 0, 22)))  # fmt: skip
        job = {"progress": 100.0, "options": {}, "created_at": at(d2, 0, 23), "updated_at": at(d2, 0, 30)}
        conn.execute(
            transcripts.insert().values(bot_id=a, user_id=me, status="done", result={"durationSeconds": 540}, **job)
        )
        conn.execute(transcripts.insert().values(bot_id=b, user_id=me, status="failed", result=None, **job))
        # b: FATAL on d1; c: everything 10 days ago (outside a 7-day window); live: in the call for the last minute
        bot(b, at(d1, 8), status="FATAL")
        status_event(conn, b, "FATAL", at(d1, 10))
        bot(c, at(d10), joined_at=at(d10, 13), left_at=at(d10, 14), status="DONE")
        status_event(conn, c, "DONE", at(d10, 14))
        bot(live, now, joined_at=now - timedelta(seconds=60), status="IN_CALL")
        request_logs(conn, me, at(d1, 7), 5)
        request_logs(conn, me, at(d3, 7), 2)
        request_logs(conn, me, at(d10, 7), 4)
        deliveries(conn, me, at(d1, 15), ["delivered", "delivered", "failed", "pending"])
        deliveries(conn, me, at(d3, 15), ["delivered"])
        # bob's activity on d1 is not alice's
        bot(bobs, at(d1, 9), joined_at=at(d1, 9), left_at=at(d1, 10), status="DONE")
        status_event(conn, bobs, "DONE", at(d1, 10))
        request_logs(conn, them, at(d1, 7), 3)
        deliveries(conn, them, at(d1, 15), ["delivered", "failed"])
        logged_today = conn.execute(
            sa.select(sa.func.count()).where(
                api_request_logs.c.user_id == me, api_request_logs.c.created_at >= at(today, 0)
            )
        ).scalar_one()

    response = client.get("/users/me/analytics", params={"days": 7}, headers=alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["days"] == 7
        and body["start"] == (today - timedelta(days=6)).isoformat()
        and body["end"] == today.isoformat()
    )
    series = {day["date"]: day for day in body["series"]}
    assert list(series) == [(today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]  # every day, in order
    expected = {
        d3: {"botsCreated": 1, "minutesInCall": 30.0, "apiRequests": 2, "webhookDeliveriesOk": 1},
        d2: {"botsCompleted": 1, "minutesInCall": 20.0, "minutesRecorded": 10.0, "minutesTranscribed": 9.0},
        d1: {
            "botsCreated": 1,
            "botsFailed": 1,
            "apiRequests": 5,
            "webhookDeliveriesOk": 2,
            "webhookDeliveriesFailed": 1,
        },
    }
    for n in range(6, 0, -1):
        day = today - timedelta(days=n)
        assert series[day.isoformat()] == {"date": day.isoformat(), **ZERO, **expected.get(day, {})}, day
    last = series[today.isoformat()]
    assert last["botsCreated"] == 1 and last["apiRequests"] == logged_today > 0
    in_call_now = sum(day["minutesInCall"] for day in body["series"]) - 50.0  # the live bot's minute, today (or split)
    assert 0.95 <= in_call_now <= 1.5, in_call_now
    totals = body["totals"]
    assert totals == {
        "botsCreated": 3, "botsCompleted": 1, "botsFailed": 1, "minutesInCall": totals["minutesInCall"],
        "minutesRecorded": 10.0, "minutesTranscribed": 9.0, "apiRequests": 7 + logged_today,
        "webhookDeliveriesOk": 3, "webhookDeliveriesFailed": 1,
    }  # fmt: skip
    assert abs(totals["minutesInCall"] - sum(day["minutesInCall"] for day in body["series"])) < 0.02

    # The default is 30 days; 1..365 allowed; a new user gets a series of zeros.
    assert len(client.get("/users/me/analytics", headers=alice.headers).json()["series"]) == 30
    assert len(client.get("/users/me/analytics", params={"days": 365}, headers=alice.headers).json()["series"]) == 365
    for bad in ({"days": 0}, {"days": 366}, {"days": "x"}, {"weeks": 2}):
        assert client.get("/users/me/analytics", params=bad, headers=alice.headers).status_code == 422
    quiet = client.get("/users/me/analytics", params={"days": 3}, headers=bob.headers).json()
    assert quiet["series"][0] == {"date": (today - timedelta(days=2)).isoformat(), **ZERO}


def test_api_key_usage_has_daily_requests_and_top_endpoints(
    client: TestClient, services: Services, alice: Account, bob: Account
) -> None:
    created = client.post("/api-keys", json={"name": "ci"}, headers=alice.headers).json()
    key_id, headers = created["id"], {"Authorization": f"Bearer {created['key']}"}
    first, second = new_bot(client, alice), new_bot(client, alice)
    for path in ("/bots", "/bots", "/bots", f"/bots/{first}", f"/bots/{second}", "/users/me", "/bots/99999"):
        client.get(path, headers=headers)
    today = datetime.now(UTC).date()
    with services.transaction() as conn:
        me = user_id(client, alice)
        request_logs(conn, me, at(today - timedelta(days=3)), 1, key=key_id, path="/api/v1/bots/77")
        request_logs(conn, me, at(today - timedelta(days=3)), 2, key=key_id, path="/api/v1/legacy/thing")
        request_logs(conn, me, at(today - timedelta(days=40)), 9, key=key_id, path="/api/v1/old")

    usage = client.get(f"/api-keys/{key_id}/usage", headers=alice.headers).json()
    assert usage["totalRequests"] == 7 + 3 + 9
    daily = usage["daily"]
    assert len(daily) == 30 and daily[-1] == {"date": today.isoformat(), "requests": 7}
    assert {"date": (today - timedelta(days=3)).isoformat(), "requests": 3} in daily
    assert sum(day["requests"] for day in daily) == 10  # the one 40 days ago is outside the 30 days
    assert usage["topEndpoints"] == [
        {"method": "GET", "path": "/api/v1/bots/{id}", "requests": 4},
        {"method": "GET", "path": "/api/v1/bots", "requests": 3},
        {"method": "GET", "path": "/api/v1/legacy/thing", "requests": 2},
        {"method": "GET", "path": "/api/v1/users/me", "requests": 1},
    ]
    assert client.get(f"/api-keys/{key_id}/usage", headers=bob.headers).status_code == 404
