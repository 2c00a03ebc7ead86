"""The OpenAPI document says what the server accepts (patterns, integers, date-times, nulls) and declares the links
a client follows from a created resource to the operations that address it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AnyHttpUrl, TypeAdapter
from starlette.testclient import TestClient

from meetbot.domain.meeting_urls import check_meeting_url
from meetbot.schemas.bots import HTTP_URL_PATTERN, MEETING_URL_PATTERNS
from meetbot.schemas.common import DATETIME_PATTERN
from meetbot.schemas.webhooks import URL_PATTERN, _http_url
from tests.conftest import GOOGLE_BOT, Account

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _links(doc: dict[str, Any], method: str, path: str, status: str) -> dict[str, Any]:
    return dict(doc["paths"][path][method]["responses"][status].get("links", {}))


def test_a_created_bot_links_to_every_operation_on_it(client: TestClient, alice: Account) -> None:
    doc = client.get("/openapi.json").json()
    operations = {op["operationId"]: (method, path) for path, ops in doc["paths"].items() for method, op in ops.items()}
    links = _links(doc, "post", "/bots", "201")
    targets = {operations[link["operationId"]] for link in links.values()}
    for expected in [
        ("get", "/bots/{id}"),
        ("patch", "/bots/{id}"),
        ("delete", "/bots/{id}"),
        ("post", "/bots/{id}/deploy"),
        ("get", "/recordings/{bot_id}"),
        ("post", "/transcripts/{bot_id}/transcribe"),
    ]:
        assert expected in targets, expected
    # Every link resolves: its parameters are the target's path parameters, filled from the created bot.
    for link in links.values():
        _, path = operations[link["operationId"]]
        assert set(link["parameters"]) == {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert set(link["parameters"].values()) == {"$response.body#/id"}
    # Following one as a client would: the id the 201 gave addresses the bot.
    created = client.post("/bots", json=GOOGLE_BOT, headers=alice.headers).json()
    assert client.get(f"/bots/{created['id']}", headers=alice.headers).json()["id"] == created["id"]


def test_links_of_keys_webhooks_shares_and_deliveries(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert _links(doc, "post", "/api-keys", "201")["revoke_key_delete"]["parameters"] == {"id": "$response.body#/id"}
    assert "test_webhook_post" in _links(doc, "post", "/webhooks", "201")
    assert _links(doc, "post", "/recordings/{bot_id}/share", "201")["shared_recording_get"]["parameters"] == {
        "token": "$response.body#/token"
    }
    retry = _links(doc, "post", "/webhooks/{id}/test", "200")["retry_delivery_post"]
    assert retry["parameters"] == {"id": "$request.path.id", "delivery_id": "$response.body#/delivery/id"}
    # A read changes nothing, so it links nowhere; a DELETE answers no body to take an id from.
    assert not _links(doc, "get", "/bots/{id}", "200") and not _links(doc, "delete", "/bots/{id}", "204")


@pytest.mark.parametrize("platform", sorted(MEETING_URL_PATTERNS))
def test_every_meeting_url_the_document_promises_is_accepted(platform: str) -> None:
    @FAST
    @given(st.from_regex(MEETING_URL_PATTERNS[platform], fullmatch=True))
    def accepted(url: str) -> None:
        assert check_meeting_url(platform, url, allow_simulator=False) is None, url

    accepted()


def test_every_image_and_webhook_url_the_document_promises_is_accepted() -> None:
    @FAST
    @given(st.from_regex(HTTP_URL_PATTERN, fullmatch=True), st.from_regex(URL_PATTERN, fullmatch=True))
    def accepted(image: str, webhook: str) -> None:
        TypeAdapter(AnyHttpUrl).validate_python(image)
        assert _http_url(webhook) == webhook

    accepted()


def test_a_whole_number_with_a_fraction_is_an_integer(client: TestClient, alice: Account) -> None:
    # JSON Schema's "integer" takes 5000.0 (the same number as 5000), so the server does too; 5000.5 is refused.
    made = client.post("/bots", json={**GOOGLE_BOT, "heartbeatInterval": 5000.0}, headers=alice.headers)
    assert made.status_code == 201 and made.json()["heartbeatInterval"] == 5000
    half = client.post("/bots", json={**GOOGLE_BOT, "heartbeatInterval": 5000.5}, headers=alice.headers)
    assert half.status_code == 422 and half.json()["detail"][0]["loc"] == ["body", "heartbeatInterval"]


def test_date_times_the_document_promises_are_accepted(client: TestClient, alice: Account) -> None:
    # The pattern allows years 2001 to 9998 as written: whatever the offset, inside the server's 2000-9999 in UTC.
    for edge in ("2001-01-01T00:00:00+23:59", "9998-12-31T23:59:59-23:59"):
        assert re.match(DATETIME_PATTERN, edge)
        made = client.post("/bots", json={**GOOGLE_BOT, "startTime": edge}, headers=alice.headers)
        assert made.status_code == 201, made.text
    for refused in ("1999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00"):
        assert not re.match(DATETIME_PATTERN, refused)
        response = client.post("/bots", json={**GOOGLE_BOT, "startTime": refused}, headers=alice.headers)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "startTime"]


def test_fields_the_document_says_are_not_nullable_refuse_null(client: TestClient, alice: Account) -> None:
    bot = client.post("/bots", json=GOOGLE_BOT, headers=alice.headers).json()
    cleared = client.patch(f"/bots/{bot['id']}", json={"meetingInfo": None}, headers=alice.headers)
    assert cleared.status_code == 422 and cleared.json()["detail"][0]["loc"] == ["body", "meetingInfo"]
    for field in ("url", "description", "active"):  # the body is validated before the webhook is looked up
        response = client.patch("/webhooks/1", json={field: None}, headers=alice.headers)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", field], field
