"""Registration, login, refresh-token rotation with reuse detection, logout."""

from __future__ import annotations

from starlette.testclient import TestClient

from api.services import Services
from tests.conftest import Account, register_and_login


def test_register_returns_user_without_secrets(client: TestClient) -> None:
    response = client.post(
        "/auth/register", json={"email": "Ann@Example.com", "password": "long enough", "name": "Ann"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ann@example.com" and body["name"] == "Ann" and isinstance(body["id"], int)
    assert body["createdAt"].endswith("Z")
    assert not any("password" in key.lower() for key in body)


def test_register_twice_is_a_conflict(client: TestClient, alice: Account) -> None:
    response = client.post("/auth/register", json={"email": alice.email, "password": "whatever1", "name": "X"})
    assert response.status_code == 409
    assert response.json() == {"detail": "Email already registered"}


def test_register_validates_input(client: TestClient) -> None:
    response = client.post("/auth/register", json={"email": "not-an-email", "password": "short", "extra": 1})
    assert response.status_code == 422
    locs = {tuple(item["loc"]) for item in response.json()["detail"]}
    assert {("body", "email"), ("body", "password"), ("body", "name"), ("body", "extra")} <= locs
    missing = next(item for item in response.json()["detail"] if item["loc"] == ["body", "name"])
    assert missing == {"loc": ["body", "name"], "msg": "field required", "type": "value_error.missing"}


def test_login_with_wrong_password_is_401(client: TestClient, alice: Account) -> None:
    response = client.post("/auth/login", json={"email": alice.email, "password": "wrong password"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect email or password"}
    unknown = client.post("/auth/login", json={"email": "nobody@example.com", "password": "x"})
    assert unknown.status_code == 401 and unknown.json() == response.json()


def test_login_tokens_shape(client: TestClient, alice: Account) -> None:
    response = client.post("/auth/login", json={"email": alice.email, "password": alice.password})
    body = response.json()
    assert set(body) == {"accessToken", "refreshToken", "tokenType", "expiresIn"}
    assert body["tokenType"] == "bearer" and body["expiresIn"] > 0
    assert client.get("/users/me", headers={"Authorization": f"Bearer {body['accessToken']}"}).status_code == 200


def test_refresh_rotates_and_reuse_revokes_the_session(client: TestClient, alice: Account) -> None:
    first = client.post("/auth/refresh", json={"refreshToken": alice.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refreshToken"] != alice.refresh_token
    new_headers = {"Authorization": f"Bearer {rotated['accessToken']}"}
    assert client.get("/users/me", headers=new_headers).status_code == 200

    # The old refresh token is presented again: someone copied it. The whole session dies.
    reuse = client.post("/auth/refresh", json={"refreshToken": alice.refresh_token})
    assert reuse.status_code == 401
    assert client.post("/auth/refresh", json={"refreshToken": rotated["refreshToken"]}).status_code == 401
    assert client.get("/users/me", headers=new_headers).status_code == 401
    assert client.get("/users/me", headers=alice.headers).status_code == 401


def test_refresh_with_garbage_is_401(client: TestClient) -> None:
    assert client.post("/auth/refresh", json={"refreshToken": "nope"}).status_code == 401


def test_logout_stops_access_and_refresh_tokens_at_once(client: TestClient, alice: Account) -> None:
    assert client.get("/users/me", headers=alice.headers).status_code == 200
    response = client.post("/auth/logout", headers=alice.headers)
    assert response.status_code == 204
    me = client.get("/users/me", headers=alice.headers)
    assert me.status_code == 401 and me.json() == {"detail": "Invalid or expired token"}
    assert client.post("/auth/refresh", json={"refreshToken": alice.refresh_token}).status_code == 401


def test_logout_ends_only_that_session(client: TestClient, alice: Account) -> None:
    other = client.post("/auth/login", json={"email": alice.email, "password": alice.password}).json()
    assert client.post("/auth/logout", headers=alice.headers).status_code == 204
    # The logged-out session's tokens are refused …
    assert client.get("/users/me", headers=alice.headers).status_code == 401
    assert client.post("/auth/refresh", json={"refreshToken": alice.refresh_token}).status_code == 401
    # … the other one lives on, access and refresh.
    assert client.get("/users/me", headers={"Authorization": f"Bearer {other['accessToken']}"}).status_code == 200
    assert client.post("/auth/refresh", json={"refreshToken": other["refreshToken"]}).status_code == 200


def test_logout_with_a_refresh_token_ends_that_session_too(client: TestClient, alice: Account) -> None:
    other = client.post("/auth/login", json={"email": alice.email, "password": alice.password}).json()
    response = client.post("/auth/logout", json={"refreshToken": other["refreshToken"]}, headers=alice.headers)
    assert response.status_code == 204
    for access, refresh in ((alice.access_token, alice.refresh_token), (other["accessToken"], other["refreshToken"])):
        assert client.get("/users/me", headers={"Authorization": f"Bearer {access}"}).status_code == 401
        assert client.post("/auth/refresh", json={"refreshToken": refresh}).status_code == 401
    assert client.post("/auth/login", json={"email": alice.email, "password": alice.password}).status_code == 200


def test_closed_registration_is_403_and_logins_go_on(client: TestClient, services: Services, alice: Account) -> None:
    services.settings.registration = "closed"
    body = {"email": "newcomer@example.com", "password": "long enough", "name": "New"}
    response = client.post("/auth/register", json=body)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Registration is closed on this server: an administrator adds users (meetbot users create)"
    }
    assert client.post("/auth/login", json={"email": body["email"], "password": body["password"]}).status_code == 401
    assert client.post("/auth/login", json={"email": alice.email, "password": alice.password}).status_code == 200
    services.settings.registration = "open"
    assert client.post("/auth/register", json=body).status_code == 201


def test_missing_and_malformed_tokens_are_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer x.y.z"}):
        response = client.get("/users/me", headers=headers)
        assert response.status_code == 401
        assert isinstance(response.json()["detail"], str)


def test_token_signed_with_another_key_is_rejected(client: TestClient, alice: Account) -> None:
    import jwt

    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-key-that-is-long-enough!", algorithm="HS256")
    assert client.get("/users/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_sessions_are_per_user(client: TestClient) -> None:
    a = register_and_login(client)
    b = register_and_login(client)
    assert client.get("/users/me", headers=a.headers).json()["email"] == a.email
    assert client.get("/users/me", headers=b.headers).json()["email"] == b.email


def test_passwords_are_taken_exactly_as_typed(client: TestClient) -> None:
    account = register_and_login(client, password="  spaced out  ")
    assert client.post("/auth/login", json={"email": account.email, "password": "spaced out"}).status_code == 401
    long_padded = client.post(
        "/auth/register", json={"email": "pad@example.com", "password": "x" + " " * 300, "name": "Pad"}
    )
    assert long_padded.status_code == 422  # the length limit applies to what was sent
