"""GET /metrics: Prometheus text with bots by status, queue depths and ages, recording bytes and request counters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot import queue
from meetbot.settings import Settings
from tests.conftest import GOOGLE_BOT, REDIS_URL, make_settings, register_and_login

TOKEN = "scrape-me-please"
AGE_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/10"  # a database of its own: its maintenance queue has no consumer


@pytest.fixture
def metrics_settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, metrics_token=TOKEN)


@pytest.fixture
def metrics_client(metrics_settings: Settings) -> Iterator[TestClient]:
    services = Services.from_settings(metrics_settings)
    app = create_app(metrics_settings, services)
    with TestClient(app, base_url="http://testserver/api/v1") as test_client:
        yield test_client


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("http://testserver/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_bots_by_status_and_requests_by_route(metrics_client: TestClient) -> None:
    ready = ("meetbot_bots", (("status", "READY_TO_DEPLOY"),))
    before = scrape(metrics_client)
    assert ("meetbot_queue_depth", (("queue", "bots"),)) in before
    assert ("meetbot_recording_bytes", ()) in before

    account = register_and_login(metrics_client)
    created = metrics_client.post("/bots", json=GOOGLE_BOT, headers=account.headers)
    assert created.status_code == 201, created.text
    status = created.json()["status"]

    after = scrape(metrics_client)
    key = ("meetbot_bots", (("status", status),))
    assert after[key] == before.get(key, 0) + 1
    assert ready in after
    created_key = ("meetbot_http_requests_total", (("method", "POST"), ("route", "/bots"), ("status", "201")))
    assert after.get(created_key, 0) >= 1, sorted(name for name in after if name[0].startswith("meetbot_http"))
    assert after[created_key] == before.get(created_key, 0) + 1
    maintenance_depth = ("meetbot_queue_depth", (("queue", "maintenance"),))
    queue.send(metrics_client.app.state.services.broker, queue.QUEUE_MAINTENANCE, queue.ACTOR_REAP)
    assert scrape(metrics_client)[maintenance_depth] == after[maintenance_depth] + 1
    latency = ("meetbot_http_request_duration_seconds_count", (("method", "POST"), ("route", "/bots")))
    assert after[latency] >= 1


def test_metrics_refuse_a_scraper_without_the_token(metrics_client: TestClient) -> None:
    response = metrics_client.get("http://testserver/metrics")
    assert response.status_code == 403
    assert "detail" in response.json()
    wrong = metrics_client.get("http://testserver/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403


@pytest.mark.parametrize("broker_kind", ["in-process", "redis"])
def test_the_oldest_waiting_message_ages_until_a_worker_takes_it(
    tmp_path: Path, sqlite_url: str, broker_kind: str
) -> None:
    overrides = {"metrics_token": TOKEN}
    if broker_kind == "redis":
        redis.Redis.from_url(AGE_REDIS_URL).flushdb()
        overrides["redis_url"] = AGE_REDIS_URL
    settings = make_settings(tmp_path, sqlite_url, **overrides)
    services = Services.from_settings(settings)
    age = ("meetbot_queue_oldest_message_age_seconds", (("queue", "maintenance"),))
    with TestClient(create_app(settings, services)) as client:
        assert scrape(client)[age] == 0  # nothing waits
        queue.send(services.broker, queue.QUEUE_MAINTENANCE, queue.ACTOR_REAP)  # no worker consumes it here
        time.sleep(1.2)
        first = scrape(client)[age]
        time.sleep(1.0)
        second = scrape(client)[age]
        queue.send(services.broker, queue.QUEUE_MAINTENANCE, queue.ACTOR_REAP)  # a newer one: the oldest still counts
        third = scrape(client)[age]
    print(f"\n{broker_kind}: oldest maintenance message age {first:.2f} s, then {second:.2f} s, then {third:.2f} s")
    assert 1.0 <= first < 10
    assert second >= first + 0.9
    assert third >= second
