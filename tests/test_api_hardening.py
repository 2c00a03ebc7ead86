"""Hostile input at the HTTP edge: NUL characters, deep JSON, out-of-range ids, unauthenticated rate limits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from starlette.testclient import TestClient

from api.app import all_endpoints, create_app
from api.services import Services
from meetbot.db import now_utc
from meetbot.db.tables import api_keys, auth_sessions
from tests.conftest import GOOGLE_BOT, REDIS_URL, Account, make_settings, register_and_login


def limited_client(tmp_path: Path, db_url: str, ip: str = "203.0.113.7", **overrides: Any) -> TestClient:
    values: dict[str, Any] = {"rate_limit_per_minute": 5, "rate_limit_per_hour": 8, **overrides}
    settings = make_settings(tmp_path, db_url, **values)
    services = Services.from_settings(settings)
    services.rate_limiter.reset()
    return TestClient(create_app(settings, services), base_url="http://testserver/api/v1", client=(ip, 50000))


def nul_error(response: Any, *loc: str | int) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and len(detail) == 1
    item = detail[0]
    assert item["loc"] == ["body", *loc] and item["type"].startswith("value_error") and "NUL" in item["msg"]


# 1. NUL characters never reach the database.


def test_nul_in_body_strings_is_422(client: TestClient, alice: Account) -> None:
    bot = {**GOOGLE_BOT, "meetingTitle": "stand\u0000up"}
    nul_error(client.post("/bots", json=bot, headers=alice.headers), "meetingTitle")
    register = {"email": "nul@example.com", "password": "long enough", "name": "N\u0000"}
    nul_error(client.post("/auth/register", json=register), "name")
    nul_error(client.post("/api-keys", json={"name": "\u0000"}, headers=alice.headers), "name")
    nul_error(client.patch("/users/me", json={"name": "a\u0000b"}, headers=alice.headers), "name")
    nested = {"meetingInfo": {**GOOGLE_BOT["meetingInfo"], "meetingUrl": "https://meet.google.com/\u0000"}}
    nul_error(client.post("/bots", json=nested, headers=alice.headers), "meetingInfo", "meetingUrl")
    in_list = {**GOOGLE_BOT, "extra": [1, {"x": "\u0000"}]}
    nul_error(client.post("/bots", json=in_list, headers=alice.headers), "extra", 1, "x")
    in_key = {**GOOGLE_BOT, "bad\u0000key": 1}
    nul_error(client.post("/bots", json=in_key, headers=alice.headers), "bad\u0000key")
    assert client.get("/bots", headers=alice.headers).json()["total"] == 0
    assert client.get("/users/me", headers=alice.headers).json()["name"] == "Test User"


def test_nul_in_query_strings_is_422(client: TestClient, alice: Account) -> None:
    bot = client.post("/bots", json=GOOGLE_BOT, headers=alice.headers).json()
    response = client.get(f"/bots/{bot['id']}/events", params={"type": "a\u0000"}, headers=alice.headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "type"]


# 2. Deep JSON is malformed JSON, not a crash.


@pytest.mark.parametrize("body", ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000])
def test_deeply_nested_json_is_400(client: TestClient, body: str) -> None:
    response = client.post("/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json() == {"detail": "Malformed JSON body"}


# 3. Ids the database cannot hold are simply not found.


@pytest.mark.parametrize("bot_id", ["2147483648", "4294967296", "9223372036854775807"])
def test_ids_beyond_int32_are_404(client: TestClient, alice: Account, bot_id: str) -> None:
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/deploy"), ("GET", "/events")):
        kwargs: dict[str, Any] = {"json": {"meetingTitle": "x"}} if method == "PATCH" else {}
        response = client.request(method, f"/bots/{bot_id}{path}", headers=alice.headers, **kwargs)
        assert response.status_code == 404 and response.json() == {"detail": "Bot not found"}, (method, path)
    for method, path in (("GET", "/usage"), ("DELETE", "")):
        response = client.request(method, f"/api-keys/{bot_id}{path}", headers=alice.headers)
        assert response.status_code == 404 and response.json() == {"detail": "API key not found"}
    assert client.get("/bots/2147483647", headers=alice.headers).json() == {"detail": "Bot not found"}


@pytest.mark.parametrize("bot_id", ["%C2%B2", "%D9%A3", "1" * 5000])
def test_non_ascii_or_huge_digit_ids_are_422(client: TestClient, alice: Account, bot_id: str) -> None:
    response = client.get(f"/bots/{bot_id}", headers=alice.headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "id"]


# 4. Unauthenticated requests are limited per client address.


def test_login_is_rate_limited_per_ip(tmp_path: Path, db_url: str) -> None:
    client = limited_client(tmp_path, db_url)
    guesses = [client.post("/auth/login", json={"email": "a@example.com", "password": f"guess{i}"}) for i in range(6)]
    assert [r.status_code for r in guesses] == [401] * 5 + [429]
    assert [r.headers["X-RateLimit-Remaining"] for r in guesses[:5]] == ["4", "3", "2", "1", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "5" for r in guesses)
    assert int(guesses[0].headers["X-RateLimit-Reset"]) > time.time()
    blocked = guesses[-1]
    assert blocked.json() == {"detail": "Rate limit exceeded"} and 1 <= int(blocked.headers["Retry-After"]) <= 60
    assert client.post("/auth/register", json={}).status_code == 429
    assert client.post("/auth/refresh", json={"refreshToken": "x"}).status_code == 429
    # Another address has its own budget.
    other = TestClient(client.app, base_url="http://testserver/api/v1", client=("198.51.100.1", 1))
    response = other.post("/auth/refresh", json={"refreshToken": "x"})
    assert response.status_code == 401 and response.headers["X-RateLimit-Remaining"] == "4"


def test_invalid_tokens_are_rate_limited_per_ip(tmp_path: Path, db_url: str) -> None:
    client = limited_client(tmp_path, db_url, rate_limit_per_minute=100)
    account = register_and_login(client)  # two unauthenticated requests from this address
    for token in ("mb_guess", "x.y.z", "mb_other", "nope", "mb_more", ""):
        response = client.get("/bots", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    blocked = client.get("/bots", headers={"Authorization": "Bearer mb_last"})
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    # A caller with a valid token keeps its own budget.
    assert client.get("/bots", headers=account.headers).status_code == 200


def test_redis_limits_unauthenticated_requests_across_processes(tmp_path: Path, db_url: str) -> None:
    redis.Redis.from_url(REDIS_URL).ping()
    one = limited_client(tmp_path / "a", db_url, redis_url=REDIS_URL)
    two = limited_client(tmp_path / "b", db_url, redis_url=REDIS_URL)
    assert one.app.state.services.rate_limiter.shared  # counted in Redis, not in each process
    body = {"email": "a@example.com", "password": "wrong password"}
    statuses = [c.post("/auth/login", json=body).status_code for c in (one, two, one, two, one)]
    assert statuses == [401] * 5
    assert two.post("/auth/login", json=body).status_code == 429
    assert one.post("/auth/login", json=body).status_code == 429


# 5. Every 401 says how to authenticate.


def test_every_401_carries_www_authenticate(client: TestClient, alice: Account) -> None:
    responses = [
        client.get("/users/me"),
        client.get("/users/me", headers={"Authorization": "Basic abc"}),
        client.get("/users/me", headers={"Authorization": "Bearer x.y.z"}),
        client.get("/users/me", headers={"Authorization": "Bearer mb_nope"}),
        client.post("/auth/login", json={"email": alice.email, "password": "wrong password"}),
        client.post("/auth/refresh", json={"refreshToken": "nope"}),
    ]
    for response in responses:
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.request.url


# 6. The OpenAPI document declares the limits.


def test_openapi_declares_rate_limit_headers_and_429_everywhere(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for endpoint in all_endpoints():
        responses = doc["paths"][endpoint.path][endpoint.method.lower()]["responses"]
        limited = responses["429"]["headers"]
        assert {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(limited)
        assert limited["Retry-After"]["required"] is True
        assert "X-RateLimit-Remaining" in responses[str(endpoint.status)]["headers"]
        if "401" in responses:
            assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "401" in doc["paths"]["/auth/login"]["post"]["responses"]


# 7. The docs page never calls out to the public validator.


def test_docs_init_disables_the_online_validator(client: TestClient) -> None:
    script = client.get("http://testserver/docs/init.js").text
    assert "validatorUrl: null" in script


# 8. Logout is for login sessions, not API keys.


def test_logout_with_an_api_key_is_403_and_the_key_keeps_working(client: TestClient, alice: Account) -> None:
    key = client.post("/api-keys", json={"name": "ci"}, headers=alice.headers).json()
    key_headers = {"Authorization": f"Bearer {key['key']}"}
    response = client.post("/auth/logout", headers=key_headers)
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "DELETE /api-keys/" in detail
    assert client.get("/users/me", headers=key_headers).status_code == 200
    assert client.get("/users/me", headers=alice.headers).status_code == 200


# 9. Checked callers are cached for at most a second: a revocation by another API process shows within it.


def test_a_key_or_session_revoked_elsewhere_is_refused_within_a_second(
    client: TestClient, services: Services, alice: Account
) -> None:
    key = client.post("/api-keys", json={"name": "ci"}, headers=alice.headers).json()
    key_headers = {"Authorization": f"Bearer {key['key']}"}
    session_id = jwt.decode(alice.access_token, options={"verify_signature": False})["sid"]
    for headers in (key_headers, alice.headers):  # checked once, so both are cached now
        assert client.get("/users/me", headers=headers).status_code == 200
    # What another API process's revocation looks like to this one: rows changed behind its back.
    with services.transaction() as conn:
        conn.execute(api_keys.update().where(api_keys.c.id == key["id"]).values(revoked_at=now_utc()))
        conn.execute(auth_sessions.update().where(auth_sessions.c.id == session_id).values(revoked_at=now_utc()))
    revoked_at = time.monotonic()
    time.sleep(max(0.0, revoked_at + services.settings.principal_cache_seconds - time.monotonic()))
    assert services.settings.principal_cache_seconds <= 1
    for headers in (key_headers, alice.headers):
        response = client.get("/users/me", headers=headers)
        assert response.status_code == 401, response.text
    assert time.monotonic() - revoked_at < 1.5
