"""/users/me, usage, the request log, and API keys (shown once, hashed, revocable, per-key usage)."""

from __future__ import annotations

import sqlalchemy as sa
from starlette.testclient import TestClient

from meetbot.db.engine import get_engine
from meetbot.db.tables import api_keys
from meetbot.settings import Settings
from tests.conftest import GOOGLE_BOT, Account


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_get_and_rename_me(client: TestClient, alice: Account) -> None:
    response = client.patch("/users/me", json={"name": "Alice Liddell"}, headers=alice.headers)
    assert response.status_code == 200 and response.json()["name"] == "Alice Liddell"
    assert client.get("/users/me", headers=alice.headers).json()["name"] == "Alice Liddell"


def test_changing_email_needs_the_current_password(client: TestClient, alice: Account) -> None:
    denied = client.patch("/users/me", json={"email": "new@example.com"}, headers=alice.headers)
    assert denied.status_code == 401
    wrong = client.patch(
        "/users/me", json={"email": "new@example.com", "currentPassword": "nope"}, headers=alice.headers
    )
    assert wrong.status_code == 401
    ok = client.patch(
        "/users/me", json={"email": "new@example.com", "currentPassword": alice.password}, headers=alice.headers
    )
    assert ok.status_code == 200 and ok.json()["email"] == "new@example.com"
    assert client.post("/auth/login", json={"email": "new@example.com", "password": alice.password}).status_code == 200


def test_email_of_another_user_is_a_conflict(client: TestClient, alice: Account, bob: Account) -> None:
    response = client.patch(
        "/users/me", json={"email": bob.email, "currentPassword": alice.password}, headers=alice.headers
    )
    assert response.status_code == 409


def test_password_change_ends_other_sessions(client: TestClient, alice: Account) -> None:
    other = client.post("/auth/login", json={"email": alice.email, "password": alice.password}).json()
    response = client.patch(
        "/users/me", json={"password": "a brand new one", "currentPassword": alice.password}, headers=alice.headers
    )
    assert response.status_code == 200
    assert client.get("/users/me", headers=bearer(other["accessToken"])).status_code == 401
    assert client.get("/users/me", headers=alice.headers).status_code == 200
    assert client.post("/auth/login", json={"email": alice.email, "password": alice.password}).status_code == 401
    assert client.post("/auth/login", json={"email": alice.email, "password": "a brand new one"}).status_code == 200


def test_api_key_is_shown_once_and_stored_hashed(client: TestClient, alice: Account, settings: Settings) -> None:
    created = client.post("/api-keys", json={"name": "ci"}, headers=alice.headers)
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith("mb_") and body["prefix"] == key[:10] and body["name"] == "ci"
    listed = client.get("/api-keys", headers=alice.headers).json()
    assert listed["total"] == 1 and listed["page"] == 1 and listed["page_size"] == 20
    assert "key" not in listed["apiKeys"][0] and listed["apiKeys"][0]["prefix"] == key[:10]
    with get_engine(settings.effective_database_url).connect() as conn:
        stored = conn.execute(sa.select(api_keys.c.key_hash)).scalars().all()
    assert key not in stored and all(len(value) == 64 for value in stored)


def test_api_key_authenticates_and_revocation_is_immediate(client: TestClient, alice: Account) -> None:
    created = client.post("/api-keys", json={"name": "bot"}, headers=alice.headers).json()
    me = client.get("/users/me", headers=bearer(created["key"]))
    assert me.status_code == 200 and me.json()["email"] == alice.email
    listed = client.get("/api-keys", headers=alice.headers).json()["apiKeys"][0]
    assert listed["lastUsedAt"] is not None
    assert client.delete(f"/api-keys/{created['id']}", headers=alice.headers).status_code == 204
    revoked = client.get("/users/me", headers=bearer(created["key"]))
    assert revoked.status_code == 401 and revoked.json() == {"detail": "Invalid API key"}
    assert client.delete(f"/api-keys/{created['id']}", headers=alice.headers).status_code == 404


def test_api_key_usage_counts_its_requests(client: TestClient, alice: Account) -> None:
    created = client.post("/api-keys", json={}, headers=alice.headers).json()
    for _ in range(3):
        client.get("/bots", headers=bearer(created["key"]))
    client.get("/bots/999999", headers=bearer(created["key"]))
    usage = client.get(f"/api-keys/{created['id']}/usage", headers=alice.headers).json()
    assert usage["apiKeyId"] == created["id"]
    assert usage["totalRequests"] == 4 and usage["byStatus"] == {"200": 3, "404": 1}


def test_other_users_keys_are_invisible(client: TestClient, alice: Account, bob: Account) -> None:
    created = client.post("/api-keys", json={}, headers=alice.headers).json()
    assert client.get(f"/api-keys/{created['id']}/usage", headers=bob.headers).status_code == 404
    assert client.delete(f"/api-keys/{created['id']}", headers=bob.headers).status_code == 404
    assert client.get("/api-keys", headers=bob.headers).json()["total"] == 0
    assert client.get("/users/me", headers=bearer(created["key"])).status_code == 200


def test_usage_and_api_logs(client: TestClient, alice: Account) -> None:
    client.post("/bots", json=GOOGLE_BOT, headers=alice.headers)
    client.post("/bots", json=GOOGLE_BOT, headers=alice.headers)
    usage = client.get("/users/me/usage", headers=alice.headers).json()
    assert usage["botsTotal"] == 2 and usage["botsByStatus"] == {"READY_TO_DEPLOY": 2}
    assert usage["apiRequestsTotal"] >= 2
    logs = client.get("/users/me/api-logs", params={"page_size": 2}, headers=alice.headers).json()
    assert logs["page_size"] == 2 and len(logs["logs"]) == 2 and logs["total"] >= 3
    newest = logs["logs"][0]
    assert newest["method"] == "GET" and newest["path"] == "/api/v1/users/me/usage" and newest["statusCode"] == 200
    assert newest["durationMs"] >= 0 and newest["apiKeyId"] is None and newest["createdAt"].endswith("Z")


def test_api_logs_are_private(client: TestClient, alice: Account, bob: Account) -> None:
    client.get("/bots", headers=alice.headers)
    paths = [entry["path"] for entry in client.get("/users/me/api-logs", headers=bob.headers).json()["logs"]]
    assert "/api/v1/bots" not in paths
