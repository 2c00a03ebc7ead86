"""The webhooks API on SQLite and PostgreSQL: CRUD, the secret shown once, ownership, URL checks, the outbox."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from api.services import Services
from meetbot.db.tables import webhook_deliveries, webhooks
from meetbot.domain import bot_states
from meetbot.queue import QUEUE_WEBHOOKS
from meetbot.schemas.bots import BotStatus as S
from tests.conftest import GOOGLE_BOT, Account

PUBLIC_URL = "https://93.184.216.34/hooks/meetbot"  # a public literal: accepted with no look-up, never contacted


def create(client: TestClient, account: Account, **body: Any) -> dict[str, Any]:
    response = client.post("/webhooks", json={"url": PUBLIC_URL, **body}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def new_bot(client: TestClient, account: Account) -> int:
    response = client.post("/bots", json=GOOGLE_BOT, headers=account.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_create_list_get_update_delete(client: TestClient, alice: Account) -> None:
    created = create(client, alice, description="CRM sync", events=["bot.status_changed", "transcript.ready"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["url"] == PUBLIC_URL and created["active"] is True and created["botId"] is None
    assert created["events"] == ["bot.status_changed", "transcript.ready"] and created["description"] == "CRM sync"
    assert created["createdAt"].endswith("Z") and created["failingSince"] is None and created["disabledAt"] is None
    hook_id = created["id"]

    shown = client.get(f"/webhooks/{hook_id}", headers=alice.headers).json()
    assert "secret" not in shown and shown["id"] == hook_id
    create(client, alice)
    listing = client.get("/webhooks", params={"page_size": 1}, headers=alice.headers).json()
    assert (listing["total"], listing["page"], listing["page_size"]) == (2, 1, 1)
    assert [hook["id"] for hook in listing["webhooks"]] == [hook_id] and "secret" not in listing["webhooks"][0]

    bot_id = new_bot(client, alice)
    changed = client.patch(
        f"/webhooks/{hook_id}", json={"events": None, "active": False, "botId": bot_id}, headers=alice.headers
    ).json()
    assert changed["events"] is None and changed["active"] is False and changed["botId"] == bot_id
    assert changed["secret"] is None and changed["description"] == "CRM sync"  # unsent fields stay

    rotated = client.patch(f"/webhooks/{hook_id}", json={"rotateSecret": True}, headers=alice.headers).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert client.patch(f"/webhooks/{hook_id}", json={"botId": None}, headers=alice.headers).json()["botId"] is None

    assert client.delete(f"/webhooks/{hook_id}", headers=alice.headers).status_code == 204
    assert client.get(f"/webhooks/{hook_id}", headers=alice.headers).status_code == 404
    assert client.get("/webhooks", headers=alice.headers).json()["total"] == 1


def test_another_users_webhook_and_deliveries_are_not_found(
    services: Services, client: TestClient, alice: Account, bob: Account
) -> None:
    hook = create(client, alice)
    bot_id = new_bot(client, alice)
    with services.engine.begin() as conn:
        bot_states.transition(conn, bot_id, S.DEPLOYING)
        delivery_id = conn.execute(sa.select(webhook_deliveries.c.id)).scalar_one()
    base = f"/webhooks/{hook['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"description": "mine now"}),
        ("PATCH", base, {"url": "http://127.0.0.1/x"}),
        ("DELETE", base, None),
        ("POST", f"{base}/test", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/{delivery_id}/retry", None),
    ]:
        response = client.request(method, path, json=body, headers=bob.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"detail": "Webhook not found"}
    assert client.get("/webhooks", headers=bob.headers).json()["total"] == 0
    # Alice's own bot only: a webhook for Bob's bot is refused like any of his resources.
    bobs_bot = new_bot(client, bob)
    response = client.post("/webhooks", json={"url": PUBLIC_URL, "botId": bobs_bot}, headers=alice.headers)
    assert response.status_code == 404 and response.json() == {"detail": "Bot not found"}
    # A delivery of another webhook (even one's own) is not found under this one.
    other = create(client, alice)
    missing = client.post(f"/webhooks/{other['id']}/deliveries/{delivery_id}/retry", headers=alice.headers)
    assert missing.status_code == 404 and missing.json() == {"detail": "Delivery not found"}


def test_non_http_urls_are_422(client: TestClient, alice: Account) -> None:
    for url, fragment in [
        ("ftp://93.184.216.34/hook", "http or https"),
        ("javascript:alert(1)//", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("http:///hook", "host"),
        ("https://93.184.216.34/#frag", "fragment"),
    ]:
        response = client.post("/webhooks", json={"url": url}, headers=alice.headers)
        assert response.status_code == 422, response.text
        [item] = response.json()["detail"]
        assert item["loc"] == ["body", "url"] and fragment in item["msg"], item


def test_bad_fields_are_422(client: TestClient, alice: Account) -> None:
    for body in (
        {"url": PUBLIC_URL, "events": ["bot.exploded"]},
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL, "events": ["ping"]},  # sent by /test only, never subscribed to
        {"url": PUBLIC_URL, "active": "yes"},
        {"url": PUBLIC_URL, "secret": "whsec_mine"},
        {"url": PUBLIC_URL, "description": "x" * 501},
        {"url": "https://93.184.216.34/" + "a" * 2048},
    ):
        response = client.post("/webhooks", json=body, headers=alice.headers)
        assert response.status_code == 422, (body, response.text)
    hook = create(client, alice)
    response = client.patch(f"/webhooks/{hook['id']}", json={"url": None}, headers=alice.headers)
    assert response.status_code == 422


@pytest.fixture
def listener() -> Iterator[tuple[int, socket.socket]]:
    """A listening loopback socket: any connection attempt to it would be waiting in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock.getsockname()[1], sock
    sock.close()


def no_connection_reached(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def test_private_targets_are_refused_at_creation_without_a_connection(
    client: TestClient, alice: Account, listener: tuple[int, socket.socket]
) -> None:
    port, sock = listener
    refused = [
        (f"http://localhost:{port}/hook", "loopback"),
        (f"http://127.0.0.1:{port}/hook", "loopback"),
        (f"http://[::1]:{port}/hook", "loopback"),
        (f"http://0x7f000001:{port}/hook", "loopback"),  # inet_aton forms resolve to 127.0.0.1
        (f"http://2130706433:{port}/hook", "loopback"),
        (f"http://[::ffff:127.0.0.1]:{port}/hook", "loopback"),
        ("http://10.0.0.1/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
    ]
    for url, reason in refused:
        response = client.post("/webhooks", json={"url": url}, headers=alice.headers)
        assert response.status_code == 422, (url, response.text)
        [item] = response.json()["detail"]
        assert item["loc"] == ["body", "url"] and reason in item["msg"], (url, item)
    hook = create(client, alice)
    response = client.patch(f"/webhooks/{hook['id']}", json={"url": f"http://localhost:{port}/"}, headers=alice.headers)
    assert response.status_code == 422 and "loopback" in response.json()["detail"][0]["msg"]
    assert client.get("/webhooks", headers=alice.headers).json()["total"] == 1
    assert no_connection_reached(sock)


def test_allow_private_admits_loopback_but_never_metadata(
    services: Services, client: TestClient, alice: Account, listener: tuple[int, socket.socket]
) -> None:
    port, sock = listener
    services.settings.webhook_allow_private = True
    create(client, alice, url=f"http://localhost:{port}/hook")
    create(client, alice, url="http://10.0.0.1/hook")
    for url in ("http://169.254.169.254/", "http://[fe80::1]/", "http://224.0.0.1/", "http://0.0.0.0/"):
        assert client.post("/webhooks", json={"url": url}, headers=alice.headers).status_code == 422, url
    assert no_connection_reached(sock)


def test_bot_events_become_deliveries_in_the_same_transaction(
    services: Services, client: TestClient, alice: Account, bob: Account
) -> None:
    bot_id = new_bot(client, alice)
    other_bot = new_bot(client, alice)
    every = create(client, alice)
    status_only = create(client, alice, events=["bot.status_changed"])
    this_bot = create(client, alice, botId=bot_id, events=["bot.participant_joined"])
    inactive = create(client, alice, active=False)
    bobs = create(client, bob)
    with services.engine.begin() as conn:
        bot_states.transition(conn, bot_id, S.DEPLOYING, description="deploying")
        bot_states.record_event(conn, bot_id, "PARTICIPANT_JOIN", {"name": "Ada"})
        bot_states.record_event(conn, bot_id, "LOG", {"message": "never delivered"})
        bot_states.record_event(conn, other_bot, "PARTICIPANT_JOIN", {"name": "Grace"})
    try:
        with services.engine.begin() as conn:  # rolled back: neither the event nor its deliveries exist
            bot_states.record_event(conn, bot_id, "PARTICIPANT_LEAVE", {"name": "Ada"})
            raise RuntimeError("rollback")
    except RuntimeError:
        pass
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.id)).all()
    by_hook: dict[int, list[str]] = {}
    for row in rows:
        by_hook.setdefault(row.webhook_id, []).append(row.event_type)
    assert by_hook == {
        every["id"]: ["bot.status_changed", "bot.participant_joined", "bot.participant_joined"],
        status_only["id"]: ["bot.status_changed"],
        this_bot["id"]: ["bot.participant_joined"],
    }
    assert inactive["id"] not in by_hook and bobs["id"] not in by_hook
    first = rows[0]
    assert first.status == "pending" and first.attempts == 0 and first.user_id == rows[-1].user_id
    assert first.event_id.startswith(f"evt_{bot_id}_")
    assert first.payload["type"] == "bot.status_changed" and first.payload["id"] == first.event_id
    data = first.payload["data"]
    assert data == {
        "botId": bot_id,
        "status": "DEPLOYING",
        "subCode": None,
        "previousStatus": "READY_TO_DEPLOY",
        "description": "deploying",
    }
    # Both webhooks that got the status change got the same event id: receivers can de-duplicate.
    assert len({row.event_id for row in rows if row.event_type == "bot.status_changed"}) == 1
    # Each committed delivery was enqueued once its transaction committed; the rolled-back one never was.
    assert services.broker.queues[QUEUE_WEBHOOKS].qsize() == len(rows)

    listing = client.get(f"/webhooks/{every['id']}/deliveries", headers=alice.headers).json()
    assert listing["total"] == 3 and listing["page_size"] == 20
    newest = listing["deliveries"][0]
    assert newest["eventType"] == "bot.participant_joined" and newest["payload"]["data"]["name"] == "Grace"
    assert newest["status"] == "pending" and newest["attemptCount"] == 0 and newest["attempts"] == []
    filtered = client.get(f"/webhooks/{every['id']}/deliveries?status=delivered", headers=alice.headers).json()
    assert filtered["total"] == 0


def test_secrets_never_reach_logs_or_reads(
    services: Services, client: TestClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        created = create(client, alice)
        rotated = client.patch(f"/webhooks/{created['id']}", json={"rotateSecret": True}, headers=alice.headers)
        reads = [
            client.get(f"/webhooks/{created['id']}", headers=alice.headers).text,
            client.get("/webhooks", headers=alice.headers).text,
            client.get(f"/webhooks/{created['id']}/deliveries", headers=alice.headers).text,
        ]
    secrets = [created["secret"], rotated.json()["secret"]]
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    for secret in secrets:
        assert secret not in logged and all(secret not in body for body in reads)
    with services.engine.connect() as conn:  # the current secret is stored (signing needs it), the old one is gone
        assert conn.execute(sa.select(webhooks.c.secret)).scalar_one() == secrets[1]


def test_webhooks_per_user_are_limited(services: Services, client: TestClient, alice: Account) -> None:
    services.settings.webhook_max_per_user = 2
    create(client, alice)
    create(client, alice)
    response = client.post("/webhooks", json={"url": PUBLIC_URL}, headers=alice.headers)
    assert response.status_code == 409 and "limit" in response.json()["detail"]
