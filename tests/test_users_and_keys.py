"""/users/me, usage, the request log, and API keys (shown once, hashed, revocable, per-key usage)."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from starlette.testclient import TestClient

from api.services import Services
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
    assert denied.status_code == 403 and "currentPassword" in denied.json()["detail"]
    wrong = client.patch(
        "/users/me", json={"email": "new@example.com", "currentPassword": "nope"}, headers=alice.headers
    )
    assert wrong.status_code == 403 and "currentPassword is missing or wrong" in wrong.json()["detail"]
    assert client.get("/users/me", headers=alice.headers).status_code == 200  # the session itself is fine
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
    # Deleted means gone from /api-keys/{id}/…, as the DELETE said; the list keeps it, marked revoked.
    gone = client.get(f"/api-keys/{created['id']}/usage", headers=alice.headers)
    assert gone.status_code == 404 and gone.json() == {"detail": "API key not found"}
    listed = client.get("/api-keys", headers=alice.headers).json()["apiKeys"]
    assert [key["revokedAt"] is not None for key in listed if key["id"] == created["id"]] == [True]


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
    client.get("/bots/424242", headers=alice.headers)
    client.get("/users/me", headers=bob.headers)

    def logged(account: Account) -> list[tuple[str, str, int]]:
        logs = client.get("/users/me/api-logs", params={"page_size": 100}, headers=account.headers).json()["logs"]
        return [(entry["method"], entry["path"], entry["statusCode"]) for entry in logs]

    # The owner sees her own requests (so an empty log cannot pass for a private one) …
    alices = logged(alice)
    assert ("GET", "/api/v1/bots", 200) in alices and ("GET", "/api/v1/bots/424242", 404) in alices
    assert ("GET", "/api/v1/users/me", 200) not in alices
    # … and the other user sees his, none of hers.
    bobs = logged(bob)
    assert ("GET", "/api/v1/users/me", 200) in bobs
    assert not [entry for entry in bobs if entry[1].startswith("/api/v1/bots")]


def test_active_api_keys_per_user_are_capped(
    services: Services, client: TestClient, alice: Account, bob: Account
) -> None:
    services.settings.max_api_keys_per_user = 3
    keys = [client.post("/api-keys", json={"name": f"k{n}"}, headers=alice.headers) for n in range(3)]
    assert [key.status_code for key in keys] == [201, 201, 201]
    over = client.post("/api-keys", json={"name": "one too many"}, headers=alice.headers)
    assert over.status_code == 409
    assert over.json() == {"detail": "At most 3 active API keys per user: revoke one (DELETE /api-keys/{id}) first"}
    assert client.get("/api-keys", headers=alice.headers).json()["total"] == 3  # nothing was created
    assert client.post("/api-keys", json={}, headers=bob.headers).status_code == 201  # per user, not global
    assert client.delete(f"/api-keys/{keys[0].json()['id']}", headers=alice.headers).status_code == 204
    again = client.post("/api-keys", json={"name": "after a revoke"}, headers=alice.headers)
    assert again.status_code == 201 and client.get("/users/me", headers=bearer(again.json()["key"])).status_code == 200


def test_concurrent_key_creations_cannot_pass_the_cap_together(
    services: Services, client: TestClient, alice: Account
) -> None:
    services.settings.max_api_keys_per_user = 2
    start = threading.Barrier(6)
    codes: list[int] = []

    def create() -> None:
        start.wait()
        codes.append(client.post("/api-keys", json={}, headers=alice.headers).status_code)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [201, 201, 409, 409, 409, 409]
    assert client.get("/api-keys", headers=alice.headers).json()["total"] == 2


def test_a_body_that_is_not_json_is_415(client: TestClient, alice: Account) -> None:
    body = b'{"name": "ci"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {**alice.headers, **({"Content-Type": content_type} if content_type else {})}
        response = client.post("/api-keys", content=body, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        assert response.json() == {"detail": "Request body must be JSON (Content-Type: application/json)"}
    assert client.get("/api-keys", headers=alice.headers).json()["total"] == 0
    for content_type in ("application/json", "application/json; charset=utf-8", "application/merge-patch+json"):
        response = client.post("/api-keys", content=body, headers={**alice.headers, "Content-Type": content_type})
        assert response.status_code == 201, (content_type, response.text)
    assert client.post("/api-keys", headers=alice.headers).status_code == 201  # no body at all: {}
