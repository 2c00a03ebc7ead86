"""Bounded growth: the maintenance queue's retention job prunes request logs, bot logs and events past their age."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dramatiq
from dramatiq.brokers.stub import StubBroker
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot import queue
from meetbot.db import now_utc
from meetbot.db.tables import api_request_logs, bot_events, bot_logs
from meetbot.signals import kill_signals_for
from tests.conftest import GOOGLE_BOT, make_settings, register_and_login
from workers.actors import declare_actors
from workers.context import WorkerContext

RETENTION_DAYS = 30
AGES_DAYS = (45, 31, 29, 1)  # the first two are past the retention, the others are kept


def run_retention_job(services: Services) -> None:
    """What the worker's clock schedules: one retention message on the maintenance queue, run by a worker."""
    broker = StubBroker()
    broker.emit_after("process_boot")
    ctx = WorkerContext(services.settings, services.engine, services.store, broker, kill_signals_for(None))
    declare_actors(broker, ctx)
    worker = dramatiq.Worker(broker, queues={queue.QUEUE_MAINTENANCE}, worker_timeout=50)
    worker.start()
    try:
        queue.send(broker, queue.QUEUE_MAINTENANCE, queue.ACTOR_EXPIRE_RECORDINGS)
        broker.join(queue.QUEUE_MAINTENANCE, fail_fast=True)
        worker.join()
    finally:
        worker.stop()
        broker.close()


def test_logs_and_events_past_the_retention_are_pruned(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, log_retention_days=RETENTION_DAYS)
    services = Services.from_settings(settings)
    with TestClient(create_app(settings, services), base_url="http://testserver/api/v1") as client:
        account = register_and_login(client)
        user_id = client.get("/users/me", headers=account.headers).json()["id"]
        bot_id = client.post("/bots", json=GOOGLE_BOT, headers=account.headers).json()["id"]
        services.request_log.flush()
        now = now_utc()
        with services.transaction() as conn:
            for days in AGES_DAYS:
                at = now - timedelta(days=days)
                conn.execute(bot_logs.insert().values(bot_id=bot_id, level="INFO", message=f"{days}d", created_at=at))
                conn.execute(bot_events.insert().values(bot_id=bot_id, type="LOG", data={"age": days}, created_at=at))
                request = {"method": "GET", "path": f"/api/v1/old/{days}", "status_code": 200, "duration_ms": 1.0}
                conn.execute(api_request_logs.insert().values(user_id=user_id, created_at=at, **request))

        run_retention_job(services)

        logs = client.get(f"/bots/{bot_id}/logs", params={"page_size": 100}, headers=account.headers).json()
        assert [entry["message"] for entry in logs["logs"]] == ["29d", "1d"]
        events = client.get(f"/bots/{bot_id}/events", params={"type": "LOG"}, headers=account.headers).json()
        assert [event["data"] for event in events["events"]] == [{"age": 29}, {"age": 1}]
        api_logs = client.get("/users/me/api-logs", params={"page_size": 100}, headers=account.headers).json()
        paths = [entry["path"] for entry in api_logs["logs"]]
        assert [path for path in paths if path.startswith("/api/v1/old/")] == ["/api/v1/old/1", "/api/v1/old/29"]
        assert "/api/v1/bots" in paths  # today's requests stay
