"""Webhook delivery end to end: real receivers on loopback, real workers, signatures verified by standardwebhooks."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import now_utc
from meetbot.db.tables import webhook_attempts, webhook_deliveries, webhooks
from meetbot.domain import bot_states
from meetbot.schemas.bots import BotStatus as S
from tests.conftest import GOOGLE_BOT, Account, make_settings, register_and_login
from tests.support import clean_env, free_port, start_meetbot_up, wait_for
from tests.webhook_receiver import Receiver
from workers import webhooks as delivery
from workers.process import WorkerProcess

FAST = {
    "webhook_allow_private": True,  # the receivers are on loopback
    "webhook_retry_schedule_seconds": "0.1,0.1,0.1",
    "webhook_retry_jitter": 0,
    "webhook_timeout_seconds": 1,
    "webhook_claim_lease_seconds": 1.2,
    "webhook_sweep_interval_seconds": 1,
}


@dataclass
class Stack:
    client: TestClient
    services: Services
    workers: WorkerProcess
    account: Account
    bot_id: int

    def hook(self, receiver: Receiver, **body: Any) -> dict[str, Any]:
        body = {"url": receiver.url(), **body}
        response = self.client.post("/webhooks", json=body, headers=self.account.headers)
        assert response.status_code == 201, response.text
        return response.json()

    def deliveries(self, hook_id: int) -> list[dict[str, Any]]:
        response = self.client.get(f"/webhooks/{hook_id}/deliveries", headers=self.account.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["deliveries"])

    def settled(self, hook_id: int, count: int = 1) -> list[dict[str, Any]]:
        """The webhook's deliveries once `count` of them exist and none is pending any more."""

        def done() -> list[dict[str, Any]] | None:
            found = self.deliveries(hook_id)
            return found if len(found) == count and all(d["status"] != "pending" for d in found) else None

        return wait_for(done, 15, "deliveries to settle", interval=0.05)

    def event(self, to: S = S.DEPLOYING, sub_code: str | None = None) -> None:
        with self.services.engine.begin() as conn:
            assert bot_states.transition(conn, self.bot_id, to, sub_code, "test")

    @property
    def ctx(self) -> Any:
        return self.workers.ctx


@contextmanager
def make_stack(tmp_path: Path, db_url: str, start: bool = True) -> Iterator[Stack]:
    settings = make_settings(tmp_path, db_url, **FAST)
    services = Services.from_settings(settings)
    workers = WorkerProcess(settings, services.broker, queues={"webhooks"})
    if start:
        workers.start()
    try:
        with TestClient(create_app(settings, services), base_url="http://testserver/api/v1") as client:
            account = register_and_login(client)
            bot = client.post("/bots", json=GOOGLE_BOT, headers=account.headers).json()
            yield Stack(client, services, workers, account, bot["id"])
    finally:
        workers.stop(timeout_s=5)


@pytest.fixture
def stack(tmp_path: Path, db_url: str) -> Iterator[Stack]:
    with make_stack(tmp_path, db_url) as made:
        yield made


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_signed_events_arrive_and_verify(stack: Stack, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    hook = stack.hook(receiver)
    with caplog.at_level(logging.DEBUG):
        stack.event(S.DEPLOYING)
        stack.event(S.JOINING_CALL)
        with stack.services.engine.begin() as conn:
            bot_states.record_event(conn, stack.bot_id, "PARTICIPANT_JOIN", {"name": "Ada"})
            bot_states.record_event(conn, stack.bot_id, "LOG", {"message": "not sent"})
        found = stack.settled(hook["id"], 3)
    attempts_logged = [record for record in caplog.records if record.getMessage() == "webhook attempt"]
    assert len(attempts_logged) == 3  # the workers' structured log of each attempt …
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert hook["secret"] not in logged and "webhook-signature" not in logged  # … never with a secret
    assert {d["status"] for d in found} == {"delivered"}
    verifier = Webhook(hook["secret"])
    bodies = []
    for hit in receiver.hits:
        assert hit.headers["content-type"] == "application/json" and hit.headers["webhook-id"].startswith("evt_")
        bodies.append(verifier.verify(hit.body, hit.headers))  # raises unless signed with the webhook's secret
    assert sorted(body["type"] for body in bodies) == [
        "bot.participant_joined",
        "bot.status_changed",
        "bot.status_changed",
    ]
    joined = next(body for body in bodies if body["type"] == "bot.participant_joined")
    assert joined["data"]["botId"] == stack.bot_id and joined["data"]["name"] == "Ada"
    assert joined["createdAt"].endswith("Z") and joined["id"] == next(
        hit.headers["webhook-id"] for hit in receiver.hits if b"participant" in hit.body
    )
    ledger = found[0]["attempts"]
    assert len(ledger) == 1 and ledger[0]["statusCode"] == 200 and ledger[0]["responseExcerpt"] == "ok"
    assert ledger[0]["durationMs"] > 0 and ledger[0]["error"] is None and found[0]["deliveredAt"].endswith("Z")


def test_failing_receiver_is_retried_until_it_accepts_and_gets_the_event_once(stack: Stack, receiver: Receiver) -> None:
    receiver.fail_first = 3
    hook = stack.hook(receiver)
    stack.event(S.DEPLOYING)
    [found] = stack.settled(hook["id"])
    assert found["status"] == "delivered" and found["attemptCount"] == 4 and found["lastStatusCode"] == 200
    assert [a["attempt"] for a in found["attempts"]] == [1, 2, 3, 4]
    assert [a["statusCode"] for a in found["attempts"]] == [500, 500, 500, 200]
    assert found["attempts"][0]["responseExcerpt"] == "receiver failing"
    assert len(receiver.accepted()) == 1  # accepted once
    assert len({hit.headers["webhook-id"] for hit in receiver.hits}) == 1  # every attempt: the same id
    gaps = [b.at - a.at for a, b in zip(receiver.hits, receiver.hits[1:], strict=False)]
    assert all(gap >= 0.09 for gap in gaps), gaps  # the schedule's delay between attempts
    with stack.services.engine.connect() as conn:  # the success cleared the failure clock
        assert conn.execute(sa.select(webhooks.c.failing_since)).scalar_one() is None


def test_retries_end_in_failed_after_the_last_attempt(stack: Stack, receiver: Receiver) -> None:
    receiver.status = 503
    hook = stack.hook(receiver)
    stack.event(S.DEPLOYING)
    [found] = stack.settled(hook["id"])
    assert found["status"] == "failed" and found["attemptCount"] == 4 and found["nextAttemptAt"] is None
    assert [a["statusCode"] for a in found["attempts"]] == [503] * 4 and len(receiver.hits) == 4
    shown = stack.client.get(f"/webhooks/{hook['id']}", headers=stack.account.headers).json()
    assert shown["failingSince"] is not None and shown["active"] is True

    # A retry asked for by the owner: one more attempt, now accepted.
    receiver.status = 200
    retried = stack.client.post(f"/webhooks/{hook['id']}/deliveries/{found['id']}/retry", headers=stack.account.headers)
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    [again] = stack.settled(hook["id"])
    assert again["status"] == "delivered" and again["attemptCount"] == 5 and len(receiver.accepted()) == 1
    assert receiver.hits[-1].headers["webhook-id"] == receiver.hits[0].headers["webhook-id"]


def test_receiver_down_then_up_gets_the_delivery(stack: Stack) -> None:
    receiver = Receiver()  # not started: its port refuses connections
    hook = stack.hook(receiver)
    stack.services.settings.webhook_retry_schedule_seconds = "0.3,0.3,0.5,0.5,1,1"
    stack.event(S.DEPLOYING)

    def refused_twice() -> bool:
        with stack.services.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(webhook_attempts)).scalar_one() >= 2

    wait_for(refused_twice, 10, "two refused attempts")
    receiver.start()
    try:
        [found] = stack.settled(hook["id"])
    finally:
        receiver.stop()
    assert found["status"] == "delivered" and len(receiver.hits) == 1
    errors = [a["error"] for a in found["attempts"][:-1]]
    assert errors and all(error and "Connect" in error for error in errors)
    assert all(a["statusCode"] is None for a in found["attempts"][:-1]) and found["attempts"][-1]["statusCode"] == 200


def test_worker_killed_between_claim_and_send_is_recovered_by_the_sweep(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    with make_stack(tmp_path, db_url, start=False) as stack:  # no worker yet: the message waits in the broker
        hook = stack.hook(receiver)
        stack.event(S.DEPLOYING)
        with stack.services.engine.connect() as conn:
            delivery_id = conn.execute(sa.select(webhook_deliveries.c.id)).scalar_one()
        claimed = delivery.claim(stack.ctx, delivery_id)  # a worker takes it … and dies before sending
        assert claimed is not None and claimed.attempt == 1
        assert delivery.claim(stack.ctx, delivery_id) is None  # held: no second worker sends this attempt
        assert delivery.send_due(stack.ctx) == 0  # the lease is still running

        stack.workers.start()  # the waiting message finds the delivery claimed and does nothing
        time.sleep(1.3)  # past the lease (1.2 s) and the sweep's grace (1 s)
        assert receiver.hits == []
        assert delivery.send_due(stack.ctx) == 1
        [found] = stack.settled(hook["id"])
    assert found["status"] == "delivered" and found["attemptCount"] == 1
    assert [hit.headers["webhook-id"] for hit in receiver.hits] == [claimed.event_id]


def test_test_endpoint_returns_the_ping_attempt(stack: Stack, receiver: Receiver) -> None:
    hook = stack.hook(receiver, active=False)  # a ping is sent even to an inactive webhook
    response = stack.client.post(f"/webhooks/{hook['id']}/test", headers=stack.account.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["attempt"]["statusCode"] == 200 and body["attempt"]["attempt"] == 1
    assert body["delivery"]["eventType"] == "ping" and body["delivery"]["eventId"].startswith("evt_ping_")
    [hit] = receiver.hits
    payload = Webhook(hook["secret"]).verify(hit.body, hit.headers)
    assert payload["type"] == "ping" and payload["data"]["webhookId"] == hook["id"]

    receiver.status = 500  # a failing ping is tried once, not retried
    failed = stack.client.post(f"/webhooks/{hook['id']}/test", headers=stack.account.headers).json()
    assert failed["attempt"]["statusCode"] == 500
    wait_for(lambda: stack.deliveries(hook["id"])[0]["status"] == "failed", 5, "the ping to fail")
    assert len(receiver.hits) == 2


def test_redirects_are_not_followed(stack: Stack, receiver: Receiver) -> None:
    target = Receiver().start()
    try:
        receiver.mode, receiver.redirect_to = "redirect", target.url("/stolen")
        hook = stack.hook(receiver)
        stack.event(S.DEPLOYING)
        [found] = stack.settled(hook["id"])
    finally:
        target.stop()
    assert found["status"] == "failed" and {a["statusCode"] for a in found["attempts"]} == {302}
    assert target.hits == []


def test_slow_huge_and_silent_receivers_cannot_hold_a_worker(stack: Stack, receiver: Receiver) -> None:
    receiver.mode = "endless"
    endless = stack.hook(receiver)
    stack.event(S.DEPLOYING)
    [found] = stack.settled(endless["id"])
    excerpts = [a["responseExcerpt"] for a in found["attempts"]]
    assert found["status"] == "delivered" and excerpts == ["x" * 1024]  # 200, and 1 KiB of its endless body

    silent = Receiver(mode="never").start()
    try:
        hook = stack.hook(silent)
        started = time.monotonic()
        response = stack.client.post(f"/webhooks/{hook['id']}/test", headers=stack.account.headers)
        took = time.monotonic() - started
    finally:
        silent.stop()
    attempt = response.json()["attempt"]
    assert attempt["statusCode"] is None and attempt["error"] == "timed out after 1 s"
    assert 950 <= attempt["durationMs"] < 1500 and took < 2.5 and len(silent.hits) == 1


def test_failing_for_too_long_disables_the_webhook(stack: Stack, receiver: Receiver) -> None:
    receiver.status = 500
    hook = stack.hook(receiver)
    long_ago = now_utc() - timedelta(hours=73)
    with stack.services.engine.begin() as conn:  # it has been failing for 73 hours (the limit is 72)
        conn.execute(webhooks.update().values(failing_since=long_ago))
    stack.event(S.DEPLOYING)
    [found] = stack.settled(hook["id"])
    assert found["status"] == "failed" and found["attemptCount"] == 1  # disabled: its retries are dropped
    shown = stack.client.get(f"/webhooks/{hook['id']}", headers=stack.account.headers).json()
    assert shown["active"] is False and shown["disabledAt"] is not None
    event = shown["disabledEvent"]
    assert event["type"] == "webhook.disabled" and event["id"].startswith("evt_webhook_disabled_")
    assert event["data"]["webhookId"] == hook["id"] and event["data"]["lastError"] == "HTTP 500"
    assert all(b"webhook.disabled" not in hit.body for hit in receiver.hits)  # recorded, delivered nowhere

    stack.event(S.JOINING_CALL)  # a disabled webhook gets no new deliveries
    time.sleep(0.3)
    assert len(stack.deliveries(hook["id"])) == 1 and len(receiver.hits) == 1
    enabled = stack.client.patch(f"/webhooks/{hook['id']}", json={"active": True}, headers=stack.account.headers)
    assert enabled.json()["active"] is True and enabled.json()["disabledAt"] is None
    assert enabled.json()["failingSince"] is None and enabled.json()["disabledEvent"] is None


def test_delivery_to_a_private_address_is_refused_again_at_send_time(stack: Stack, receiver: Receiver) -> None:
    hook = stack.hook(receiver, url=receiver.url(host="localhost"))  # allowed when it was created …
    stack.services.settings.webhook_allow_private = False  # … not any more when it is sent
    stack.event(S.DEPLOYING)
    [found] = stack.settled(hook["id"])
    assert found["status"] == "failed" and receiver.hits == []
    assert all("refused: localhost resolves to 127.0.0.1, a loopback address" in a["error"] for a in found["attempts"])


def test_embedded_mode_delivers_in_process(tmp_path: Path, receiver: Receiver) -> None:
    """`meetbot up` runs the webhooks queue in its own process: a bot event reaches the receiver, signed."""
    port = free_port()
    env = clean_env(tmp_path / "data", MEETBOT_WEBHOOK_ALLOW_PRIVATE="true", MEETBOT_LOG_LEVEL="WARNING")
    proc, key = start_meetbot_up(env, port, expect_key=True, capture_stderr=True)
    try:
        base, headers = f"http://127.0.0.1:{port}/api/v1", {"Authorization": f"Bearer {key}"}
        hook = httpx.post(f"{base}/webhooks", json={"url": receiver.url()}, headers=headers).json()
        pinged = httpx.post(f"{base}/webhooks/{hook['id']}/test", headers=headers, timeout=30).json()
        assert pinged["attempt"]["statusCode"] == 200
        bot = httpx.post(f"{base}/bots", json=GOOGLE_BOT, headers=headers).json()
        httpx.post(f"{base}/bots/{bot['id']}/kill", headers=headers)  # READY_TO_DEPLOY → CALL_ENDED → DONE
        wait_for(lambda: len(receiver.hits) >= 3, 15, "the kill's status changes")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    verified = [Webhook(hook["secret"]).verify(hit.body, hit.headers) for hit in receiver.hits]
    assert [body["type"] for body in verified] == ["ping", "bot.status_changed", "bot.status_changed"]
    assert sorted(body["data"]["status"] for body in verified[1:]) == ["CALL_ENDED", "DONE"]  # any order
    assert hook["secret"] not in stderr
