"""Meeting URLs are read as the bot's browser reads them (WHATWG URL rules): no host can hide from the check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.domain.meeting_urls import canonical_meeting_url, check_meeting_url
from tests.conftest import Account, make_settings, register_and_login

ATTACKS = [
    # Chromium reads a backslash as '/': the host is 127.0.0.1:18443, not the platform's.
    ("google", "https://127.0.0.1:18443\\@meet.google.com/abc-defg-hij"),
    ("google", "https:\\\\127.0.0.1\\abc-defg-hij"),
    ("google", "https://user@meet.google.com/abc-defg-hij"),
    ("google", "https://user:pass@meet.google.com/abc-defg-hij"),
    ("google", "https://:@meet.google.com/abc-defg-hij"),
    ("google", "https://meet.google.com@127.0.0.1/abc-defg-hij"),
    ("google", "https://meet.google.com%40127.0.0.1/abc-defg-hij"),
    ("google", "https://0x7f.1/abc-defg-hij"),
    ("google", "https://2130706433/abc-defg-hij"),
    ("google", "https://[::1]/abc-defg-hij"),
    ("google", "https://meet.google.com.evil.example/abc-defg-hij"),
    ("google", "https://meet.google.com./abc-defg-hij"),
    ("google", "https://m\u0435et.google.com/abc-defg-hij"),  # Cyrillic small ie: IDNA makes it xn--…
    ("google", "https://meet.google.com\t.evil.example/abc-defg-hij"),
    ("google", "https://meet.google.com%2eevil.example/abc-defg-hij"),
    ("zoom", "https://127.0.0.1:18443\\@zoom.us/j/1234567890"),
    ("zoom", "https://attacker@zoom.us/j/1234567890"),
    ("zoom", "https://evil.example\\.zoom.us/j/1234567890"),
    ("zoom", "https://evilzoom.us/j/1234567890"),
    ("zoom", "https://zoom.us.evil.example/j/1234567890"),
    ("zoom", "https://0177.0.0.1/j/1234567890"),
    ("zoom", "https://%31%32%37.0.0.1/j/1234567890"),
    ("zoom", "http://zoom.us/j/1234567890"),
    ("zoom", "https://zoom.us:8443/j/1234567890"),
    ("teams", "https://127.0.0.1:18443\\@teams.microsoft.com/meet/1234567890123"),
    ("teams", "https://u:p@teams.live.com/meet/1234567890123"),
    ("teams", "https://teams.microsoft.com.evil.example/meet/1234567890123"),
    ("teams", "https://0x7f000001/meet/1234567890123"),
    ("teams", "https://[::ffff:127.0.0.1]/meet/1234567890123"),
    ("teams", "https://teams%2Emicrosoft%2Ecom%2Eevil.example/meet/1234567890123"),
    ("teams", "https://te\u0430ms.live.com/meet/1234567890123"),  # Cyrillic small a
]

# As typed by a user -> as a browser serializes it (and as stored and opened).
LEGIT = [
    ("google", "https://meet.google.com/abc-defg-hij", "https://meet.google.com/abc-defg-hij"),
    ("google", "HTTPS://MEET.GOOGLE.COM:443/abc-defg-hij", "https://meet.google.com/abc-defg-hij"),
    ("google", "https://meet%2Egoogle.com/lookup/team-sync", "https://meet.google.com/lookup/team-sync"),
    ("zoom", "https://us02web.zoom.us/j/1234567890?pwd=abc123", "https://us02web.zoom.us/j/1234567890?pwd=abc123"),
    ("zoom", "https://Zoom.US/my/jane.doe", "https://zoom.us/my/jane.doe"),
    ("teams", "https://teams.live.com/meet/9876543210123?p=xyz", "https://teams.live.com/meet/9876543210123?p=xyz"),
    (
        "teams",
        'https://teams.microsoft.com/l/meetup-join/19:meeting_abc@thread.v2/0?context={"Tid":"t","Oid":"o"}',
        "https://teams.microsoft.com/l/meetup-join/19:meeting_abc@thread.v2/0?context={%22Tid%22:%22t%22,%22Oid%22:%22o%22}",
    ),
]


@pytest.fixture(scope="module")
def strict_client(sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An API as deployed: simulator shapes are not meeting URLs there."""
    settings = make_settings(tmp_path_factory.mktemp("strict"), sqlite_url, allow_simulator=False)
    app = create_app(settings, Services.from_settings(settings))
    with TestClient(app, base_url="http://testserver/api/v1") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def caller(strict_client: TestClient) -> Account:
    return register_and_login(strict_client)


def create(client: TestClient, account: Account, platform: str, url: str) -> Any:
    body = {"meetingInfo": {"platform": platform, "meetingUrl": url}}
    return client.post("/bots", json=body, headers=account.headers)


def assert_meeting_url_422(response: Any) -> None:
    assert response.status_code == 422, response.text
    items = response.json()["detail"]
    assert all(set(item) == {"loc", "msg", "type"} for item in items), items
    assert ["body", "meetingInfo", "meetingUrl"] in [item["loc"] for item in items], items


@pytest.mark.parametrize(("platform", "url"), ATTACKS)
def test_urls_a_browser_reads_as_another_host_are_422(
    strict_client: TestClient, caller: Account, platform: str, url: str
) -> None:
    assert_meeting_url_422(create(strict_client, caller, platform, url))
    # The simulator's allowance does not open a door either: none of these has its shape.
    assert check_meeting_url(platform, url, allow_simulator=True) is not None


def test_the_reported_backslash_url_is_refused_with_a_reason(strict_client: TestClient, caller: Account) -> None:
    response = create(strict_client, caller, "google", "https://127.0.0.1:18443\\@meet.google.com/abc-defg-hij")
    assert_meeting_url_422(response)
    assert "backslash" in response.json()["detail"][0]["msg"]
    userinfo = create(strict_client, caller, "google", "https://someone@meet.google.com/abc-defg-hij")
    assert "user name or password" in userinfo.json()["detail"][0]["msg"]


@pytest.mark.parametrize(("platform", "url", "canonical"), LEGIT)
def test_meeting_urls_are_stored_and_served_canonical(
    strict_client: TestClient, caller: Account, platform: str, url: str, canonical: str
) -> None:
    response = create(strict_client, caller, platform, url)
    assert response.status_code == 201, response.text
    assert response.json()["meetingInfo"]["meetingUrl"] == canonical
    stored = strict_client.get(f"/bots/{response.json()['id']}", headers=caller.headers).json()
    assert stored["meetingInfo"]["meetingUrl"] == canonical


def test_a_patched_meeting_url_is_checked_and_stored_canonical(strict_client: TestClient, caller: Account) -> None:
    bot = create(strict_client, caller, "zoom", "https://zoom.us/j/1234567890").json()
    url = f"/bots/{bot['id']}"
    attack = {"meetingInfo": {"meetingUrl": "https://127.0.0.1:18443\\@zoom.us/j/1234567890"}}
    assert_meeting_url_422(strict_client.patch(url, json=attack, headers=caller.headers))
    patched = strict_client.patch(
        url, json={"meetingInfo": {"meetingUrl": "HTTPS://US02WEB.ZOOM.US/j/9876543210"}}, headers=caller.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["meetingInfo"]["meetingUrl"] == "https://us02web.zoom.us/j/9876543210"


def test_simulator_urls_only_when_the_simulator_is_allowed(strict_client: TestClient, caller: Account) -> None:
    simulator_url = "http://127.0.0.1:8100/google/abc-defg-hij"
    assert_meeting_url_422(create(strict_client, caller, "google", simulator_url))
    assert canonical_meeting_url("google", simulator_url, allow_simulator=True) == simulator_url
    assert canonical_meeting_url("teams", "http://LOCALHOST:8100/teams/room1", allow_simulator=True) == (
        "http://localhost:8100/teams/room1"
    )
    # Even the simulator's shape never carries credentials, nor a path of another platform.
    assert check_meeting_url("google", "http://u:p@127.0.0.1:8100/google/abc", allow_simulator=True) is not None
    assert check_meeting_url("zoom", "http://127.0.0.1:8100/google/abc", allow_simulator=True) is not None
