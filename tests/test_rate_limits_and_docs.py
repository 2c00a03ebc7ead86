"""Rate limits (memory and real Redis), health probes, the OpenAPI document and the offline docs page."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from api.app import all_endpoints, create_app
from api.rate_limits import RateLimiter
from api.services import Services
from meetbot.errors import RateLimited
from tests.conftest import REDIS_URL, make_settings, register_and_login
from tests.support import free_port


def limited_client(tmp_path: Path, db_url: str, **overrides: object) -> TestClient:
    values: dict[str, object] = {"rate_limit_per_minute": 5, "rate_limit_per_hour": 8, **overrides}
    settings = make_settings(tmp_path, db_url, **values)
    services = Services.from_settings(settings)
    services.rate_limiter.reset()
    return TestClient(create_app(settings, services), base_url="http://testserver/api/v1")


def burst(client: TestClient, headers: dict[str, str], count: int) -> list:
    return [client.get("/bots", headers=headers) for _ in range(count)]


def test_memory_limit_headers_and_429(tmp_path: Path, db_url: str) -> None:
    client = limited_client(tmp_path, db_url)
    account = register_and_login(client)
    responses = burst(client, account.headers, 6)
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in responses[:5]]
    assert remaining == [4, 3, 2, 1, 0]
    assert all(r.headers["X-RateLimit-Limit"] == "5" for r in responses[:5])
    assert int(responses[0].headers["X-RateLimit-Reset"]) > time.time()
    blocked = responses[5]
    assert blocked.status_code == 429 and blocked.json() == {"detail": "Rate limit exceeded"}
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    # Another caller has its own budget; errors count and carry the headers too.
    other = register_and_login(client)
    missing = client.get("/bots/999", headers=other.headers)
    assert missing.status_code == 404 and missing.headers["X-RateLimit-Remaining"] == "4"


def test_each_api_key_has_its_own_budget(tmp_path: Path, db_url: str) -> None:
    client = limited_client(tmp_path, db_url)
    account = register_and_login(client)
    keys = [client.post("/api-keys", json={}, headers=account.headers).json()["key"] for _ in range(2)]
    first = burst(client, {"Authorization": f"Bearer {keys[0]}"}, 6)
    assert first[-1].status_code == 429
    second = client.get("/bots", headers={"Authorization": f"Bearer {keys[1]}"})
    assert second.status_code == 200 and second.headers["X-RateLimit-Remaining"] == "4"


def test_redis_limit_is_shared_by_api_processes(tmp_path: Path, db_url: str) -> None:
    redis.Redis.from_url(REDIS_URL).ping()
    one = limited_client(tmp_path / "a", db_url, redis_url=REDIS_URL, rate_limit_per_minute=100)
    two = limited_client(tmp_path / "b", db_url, redis_url=REDIS_URL, rate_limit_per_minute=100)
    account = register_and_login(one)
    statuses = [c.get("/bots", headers=account.headers).status_code for c in (one, two) * 4]
    assert statuses == [200] * 8
    blocked = two.get("/bots", headers=account.headers)
    assert blocked.status_code == 429 and blocked.headers["X-RateLimit-Limit"] == "8"
    assert one.get("/bots", headers=account.headers).status_code == 429


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
def test_concurrent_requests_get_distinct_remaining_counts_and_never_more_than_the_limit(
    tmp_path: Path, db_url: str, shared: bool
) -> None:
    """Each count and its X-RateLimit-Remaining come from one atomic operation: callers racing each other (two API
    processes' limiters on one Redis, or threads of one process) never see the same value, never pass the limit."""
    redis_url = REDIS_URL if shared else None
    settings = make_settings(tmp_path, db_url, rate_limit_per_minute=25, rate_limit_per_hour=1000, redis_url=redis_url)
    limiters = [RateLimiter(settings), RateLimiter(settings) if shared else None]
    limiters[0].reset()
    key = f"user:race-{time.time_ns()}"

    def hit(index: int) -> str:
        limiter = limiters[index % 2] or limiters[0]
        try:
            return limiter.hit(key)["X-RateLimit-Remaining"]
        except RateLimited:
            return "429"

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(hit, range(40)))
    admitted = sorted((int(a) for a in answers if a != "429"), reverse=True)
    assert admitted == list(range(24, -1, -1))  # 25 admitted, each told a different remaining count
    assert answers.count("429") == 15


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("http://testserver/healthz").json() == {"status": "ok"}
    ready = client.get("http://testserver/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok" and ready.json()["storage"] == "ok"


def test_readiness_reports_a_dead_redis(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, redis_url="redis://127.0.0.1:1/0")
    client = TestClient(create_app(settings, Services.from_settings(settings)))
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["redis"].startswith("error")


def test_readiness_reports_a_dead_store(tmp_path: Path, db_url: str) -> None:
    down = f"s3://key:secret@127.0.0.1:{free_port()}/meetbot?secure=false&region=us-east-1"
    settings = make_settings(tmp_path, db_url, storage_url=down)
    client = TestClient(create_app(settings, Services.from_settings(settings)))
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["storage"].startswith("error")
    assert ready.json()["database"] == "ok"


def test_openapi_document_covers_every_endpoint(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for endpoint in all_endpoints():
        operation = doc["paths"][endpoint.path][endpoint.method.lower()]
        assert str(endpoint.status) in operation["responses"]
        if endpoint.auth:
            assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"]
    create = doc["paths"]["/bots"]["post"]
    schema_name = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    schema = doc["components"]["schemas"][schema_name]
    assert "meetingInfo" in schema["required"] and "botDisplayName" in schema["properties"]
    assert create["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ValidationErrorResponse"
    )


def test_docs_page_works_offline(client: TestClient) -> None:
    page = client.get("http://testserver/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/init.js"):
        response = client.get(f"http://testserver{asset}")
        assert response.status_code == 200 and len(response.content) > 100


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope"])
def test_unknown_paths_are_json_404(client: TestClient, path: str) -> None:
    response = client.get(f"http://testserver{path}")
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


def test_wrong_method_is_json_405(client: TestClient) -> None:
    response = client.put("/bots")
    assert response.status_code == 405 and "detail" in response.json()


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.put("/bots/1")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "PATCH", "DELETE"}
