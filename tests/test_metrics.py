"""GET /metrics: Prometheus text with bots by status, queue depths, recording bytes and request counters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot import queue
from meetbot.settings import Settings
from tests.conftest import GOOGLE_BOT, make_settings, register_and_login

TOKEN = "scrape-me-please"


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
