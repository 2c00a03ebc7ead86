"""Meeting simulator without a browser: pages, the page API and the control API through Starlette's TestClient."""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from meetbot.settings import Settings
from meetbot.simulator import create_app
from meetbot.simulator import state as sim_state


def _write_wav(path: Path, seconds: float = 0.2) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * int(16000 * seconds))


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    _write_wav(media / "hello.wav")
    (tmp_path / "secret.txt").write_text("not media")
    return media


@pytest.fixture
def client(tmp_path: Path, media_dir: Path) -> TestClient:
    app = create_app(Settings(data_dir=tmp_path, simulator_media_dir=media_dir))
    return TestClient(app)


def control(client: TestClient, platform: str, mid: str, **body: Any) -> dict[str, Any]:
    url = f"/control/{platform}/{mid}"
    res = client.post(url, json=body) if body else client.get(url)
    assert res.status_code == 200, res.text
    return res.json()


def register(client: TestClient, platform: str, mid: str, **options: Any) -> dict[str, Any]:
    res = client.post(f"/client/{platform}/{mid}", json=options)
    assert res.status_code == 200, res.text
    return res.json()


def event(client: TestClient, platform: str, mid: str, cid: str, **body: Any) -> dict[str, Any]:
    res = client.post(f"/client/{platform}/{mid}/{cid}", json=body)
    assert res.status_code == 200, res.text
    return res.json()


def poll(client: TestClient, platform: str, mid: str, cid: str) -> dict[str, Any]:
    res = client.get(f"/client/{platform}/{mid}/{cid}")
    assert res.status_code == 200, res.text
    return res.json()


def page_config(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="sim-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, html
    return json.loads(match.group(1))


# -- pages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["google", "zoom", "teams"])
def test_meeting_page_embeds_its_options(client: TestClient, platform: str) -> None:
    res = client.get(f"/{platform}/abc-defg-hij?waiting_room=1&audio=hello.wav&speaker=Alice")
    assert res.status_code == 200
    assert f'/static/{platform}.js"' in res.text
    config = page_config(res.text)
    assert config["platform"] == platform
    assert config["meetingId"] == "abc-defg-hij"
    assert config["waitingRoom"] is True
    assert config["audio"] == "hello.wav"
    assert config["speaker"] == "Alice"
    assert config["screen"] == ("launcher" if platform == "teams" else "")


def test_teams_launcher_then_prejoin_page(client: TestClient) -> None:
    launcher = page_config(client.get("/teams/123456789?waiting_room=1").text)
    assert launcher["screen"] == "launcher"
    assert launcher["prejoinUrl"] == "/teams/123456789/light-meetings/launch"
    assert launcher["query"] == "waiting_room=1"
    prejoin = page_config(client.get("/teams/123456789/light-meetings/launch?waiting_room=1").text)
    assert prejoin["screen"] == ""
    assert prejoin["waitingRoom"] is True


def test_zoom_launcher_page_for_personal_links_and_the_launcher_option(client: TestClient) -> None:
    """Personal links and launcher=1 open Zoom's launcher; its browser link leads to the web client with the
    other options kept (docs/platforms.md#zoom-launcher)."""
    personal = page_config(client.get("/zoom/my/alice.room?waiting_room=1").text)
    assert personal["screen"] == "launcher"
    assert personal["meetingId"] == "alice.room"
    assert (personal["prejoinUrl"], personal["query"]) == ("/zoom/alice.room", "waiting_room=1")
    assert personal["oldWording"] is False
    for option in ("1", "old"):
        launcher = page_config(client.get(f"/zoom/123456789?launcher={option}&waiting_room=1&iframe=1").text)
        assert launcher["screen"] == "launcher"
        assert (launcher["prejoinUrl"], launcher["query"]) == ("/zoom/123456789", "waiting_room=1&iframe=1")
        assert launcher["oldWording"] is (option == "old")
    # The web client the link leads to is the usual one (here inside its iframe).
    assert "sim-config" not in client.get("/zoom/123456789?waiting_room=1&iframe=1").text
    assert page_config(client.get("/zoom/123456789?launcher=0").text)["screen"] == ""
    script = client.get("/static/zoom.js").text
    for text in ("Launch Meeting", "Join from your browser", "Join from Your Browser", "zoommtg://"):
        assert text in script


def test_teams_prejoin_offers_the_audio_radios(client: TestClient) -> None:
    assert page_config(client.get("/teams/123456789/light-meetings/launch").text)["noAudio"] is False
    assert page_config(client.get("/teams/123456789/light-meetings/launch?no_audio=1").text)["noAudio"] is True
    script = client.get("/static/teams.js").text
    assert "Computer audio" in script and "Don't use audio" in script


@pytest.mark.parametrize("mid", ["notfound", "invalid", "blocked", "signin", "unrecognised"])
def test_special_meeting_ids_show_their_screen(client: TestClient, mid: str) -> None:
    for platform in ("google", "zoom", "teams"):
        assert page_config(client.get(f"/{platform}/{mid}").text)["screen"] == mid


def test_zoom_iframe_option_wraps_the_client(client: TestClient) -> None:
    outer = client.get("/zoom/123?iframe=1&waiting_room=1&speaker=A%26B").text
    assert (
        '<iframe id="webclient" class="pwa-webclient__iframe" src="/zoom/123?waiting_room=1&amp;speaker=A%26B"' in outer
    )
    assert "sim-config" not in outer
    assert page_config(client.get("/zoom/123?waiting_room=1&speaker=A%26B").text)["speaker"] == "A&B"


def test_teams_connect_failures_option(client: TestClient) -> None:
    url = "/teams/555/light-meetings/launch?connect_failures=2"
    assert [page_config(client.get(url).text)["screen"] for _ in range(3)] == ["connect_failed", "connect_failed", ""]
    assert page_config(client.get("/teams/556?connect_failures=2").text)["screen"] == "launcher"  # not counted


def test_zoom_passcode_option(client: TestClient) -> None:
    assert page_config(client.get("/zoom/123?passcode=42").text)["passcode"] == "42"
    assert page_config(client.get("/zoom/123?passcode=42&pwd=42").text)["passcode"] is None
    assert page_config(client.get("/google/abc?passcode=42").text)["passcode"] is None


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/google/abc?waiting_room=maybe", 400),
        ("/google/abc?audio=missing.wav", 404),
        ("/google/abc?audio=../secret.txt", 400),
        ("/google/bad%20id", 404),
        ("/skype/abc", 404),
        ("/teams/123/light-meetings/launch?connect_failures=many", 400),
    ],
)
def test_bad_page_options(client: TestClient, url: str, status: int) -> None:
    assert client.get(url).status_code == status


def test_static_assets_and_index(client: TestClient) -> None:
    assert "meeting simulator" in client.get("/").text
    for name in ("sim.js", "sim.css", "google.js", "zoom.js", "teams.js", "google.css", "zoom.css", "teams.css"):
        assert client.get(f"/static/{name}").status_code == 200, name
    assert client.get("/healthz").json() == {"ok": True}


def test_media_is_served_without_traversal(client: TestClient) -> None:
    res = client.get("/media/hello.wav")
    assert res.status_code == 200
    assert res.content[:4] == b"RIFF"
    assert client.get("/media/%2e%2e/secret.txt").status_code == 400
    assert client.get("/media/..%2fsecret.txt").status_code == 400
    assert client.get("/media/nope.wav").status_code == 404


# -- control state and actions ---------------------------------------------------------------------


def test_empty_meeting_state(client: TestClient) -> None:
    assert control(client, "zoom", "111") == {
        "platform": "zoom",
        "meetingId": "111",
        "ended": False,
        "botPresent": False,
        "inWaitingRoom": False,
        "bots": [],
        "participants": [],
        "activeSpeaker": None,
        "speech": [],
    }


def test_waiting_room_admit_speech_and_removal(client: TestClient) -> None:
    view = register(client, "google", "m1", waitingRoom=True)
    cid = view["clientId"]
    assert view["screen"] == "prejoin"
    assert control(client, "google", "m1")["bots"] == [
        {"name": "", "state": "prejoin", "micOn": True, "cameraOn": True, "computerAudio": False}
    ]

    view = event(client, "google", "m1", cid, type="join", name="Bot", micOn=False, cameraOn=False)
    assert view["screen"] == "waiting"
    state = control(client, "google", "m1")
    assert state["inWaitingRoom"] is True and state["botPresent"] is False
    assert state["bots"] == [
        {"name": "Bot", "state": "waiting", "micOn": False, "cameraOn": False, "computerAudio": False}
    ]

    state = control(client, "google", "m1", action="admit")
    assert state["botPresent"] is True and state["inWaitingRoom"] is False
    view = poll(client, "google", "m1", cid)
    assert view["screen"] == "in_call"
    assert view["participants"] == [{"name": "Bot", "self": True, "bot": True}]

    control(client, "google", "m1", action="join", name="Alice")
    assert [p["name"] for p in poll(client, "google", "m1", cid)["participants"]] == ["Bot", "Alice"]

    state = control(client, "google", "m1", action="speak", name="Alice", audio="hello.wav")
    assert state["speech"] == [{"name": "Alice", "audio": "hello.wav", "state": "queued"}]
    assert state["activeSpeaker"] is None
    speech = poll(client, "google", "m1", cid)["speech"]
    assert speech["name"] == "Alice" and speech["audio"] == "hello.wav"

    event(client, "google", "m1", cid, type="speech", id=speech["id"], state="playing")
    state = control(client, "google", "m1")
    assert state["activeSpeaker"] == "Alice"
    assert state["speech"][0]["state"] == "playing"

    view = event(client, "google", "m1", cid, type="speech", id=speech["id"], state="done")
    assert view["speech"] is None
    state = control(client, "google", "m1")
    assert state["activeSpeaker"] is None
    assert state["speech"][0]["state"] == "done"

    control(client, "google", "m1", action="remove_bot", name="Bot")
    assert poll(client, "google", "m1", cid)["screen"] == "removed"
    assert control(client, "google", "m1")["bots"][0]["state"] == "removed"


def test_deny_end_and_leave(client: TestClient) -> None:
    a = register(client, "teams", "t1", waitingRoom=True)["clientId"]
    b = register(client, "teams", "t1")["clientId"]
    event(client, "teams", "t1", a, type="join", name="Waiter")
    assert event(client, "teams", "t1", b, type="join", name="Direct")["screen"] == "in_call"
    state = control(client, "teams", "t1", action="deny")
    assert {bot["name"]: bot["state"] for bot in state["bots"]} == {"Waiter": "denied", "Direct": "in_call"}
    assert poll(client, "teams", "t1", a)["screen"] == "denied"

    state = control(client, "teams", "t1", action="end")
    assert state["ended"] is True
    assert poll(client, "teams", "t1", b)["screen"] == "ended"
    assert poll(client, "teams", "t1", a)["screen"] == "denied"  # a final screen stays

    c = register(client, "teams", "t2")["clientId"]
    event(client, "teams", "t2", c, type="join", name="Leaver")
    assert event(client, "teams", "t2", c, type="leave")["screen"] == "left"
    assert control(client, "teams", "t2")["bots"][0]["state"] == "left"


def test_several_bots_see_each_other_and_admit_by_name(client: TestClient) -> None:
    a = register(client, "zoom", "z1", waitingRoom=True)["clientId"]
    b = register(client, "zoom", "z1", waitingRoom=True)["clientId"]
    event(client, "zoom", "z1", a, type="join", name="Bot A")
    event(client, "zoom", "z1", b, type="join", name="Bot B")
    state = control(client, "zoom", "z1", action="admit", name="Bot A")
    assert {bot["name"]: bot["state"] for bot in state["bots"]} == {"Bot A": "in_call", "Bot B": "waiting"}
    control(client, "zoom", "z1", action="admit")
    people = poll(client, "zoom", "z1", a)["participants"]
    assert [(p["name"], p["self"]) for p in people] == [("Bot A", True), ("Bot B", False)]


def test_speech_from_the_url_is_queued_once_when_the_bot_is_in(client: TestClient) -> None:
    a = register(client, "google", "g2", audio="hello.wav", speaker="Bob")["clientId"]
    assert control(client, "google", "g2")["speech"] == []
    event(client, "google", "g2", a, type="join", name="Bot A")
    b = register(client, "google", "g2", audio="hello.wav", speaker="Bob")["clientId"]
    event(client, "google", "g2", b, type="join", name="Bot B")
    state = control(client, "google", "g2")
    assert state["participants"] == ["Bob"]
    assert state["speech"] == [{"name": "Bob", "audio": "hello.wav", "state": "queued"}]
    # Both bots play it; it is done when both have finished.
    uid = poll(client, "google", "g2", a)["speech"]["id"]
    for cid in (a, b):
        event(client, "google", "g2", cid, type="speech", id=uid, state="playing")
    event(client, "google", "g2", a, type="speech", id=uid, state="done")
    assert control(client, "google", "g2")["speech"][0]["state"] == "playing"
    event(client, "google", "g2", b, type="speech", id=uid, state="done")
    assert control(client, "google", "g2")["speech"][0]["state"] == "done"


def test_speech_queue_plays_in_order(client: TestClient) -> None:
    cid = register(client, "zoom", "z2")["clientId"]
    event(client, "zoom", "z2", cid, type="join", name="Bot")
    control(client, "zoom", "z2", action="speak", name="Alice", audio="hello.wav")
    control(client, "zoom", "z2", action="speak", audio="hello.wav")  # name defaults to "Host"
    assert control(client, "zoom", "z2")["participants"] == ["Alice", "Host"]
    first = poll(client, "zoom", "z2", cid)["speech"]
    assert first["name"] == "Alice"
    event(client, "zoom", "z2", cid, type="speech", id=first["id"], state="playing")
    second = event(client, "zoom", "z2", cid, type="speech", id=first["id"], state="done")["speech"]
    assert second["name"] == "Host"


def test_zoom_passcode_is_checked(client: TestClient) -> None:
    view = register(client, "zoom", "z3", passcode="42")
    assert view["needsPasscode"] is True
    wrong = event(client, "zoom", "z3", view["clientId"], type="join", name="Bot", passcode="41")
    assert wrong["error"] == "Passcode wrong" and wrong["screen"] == "prejoin"
    right = event(client, "zoom", "z3", view["clientId"], type="join", name="Bot", passcode="42")
    assert right["screen"] == "in_call" and "error" not in right


def test_devices_event_and_stale_pages(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = register(client, "google", "g3")["clientId"]
    register(client, "google", "g3")  # a page that never joins
    event(client, "google", "g3", cid, type="join", name="Bot")
    event(client, "google", "g3", cid, type="devices", micOn=False, cameraOn=True)
    event(client, "google", "g3", cid, type="audio")
    bots = control(client, "google", "g3")["bots"]
    assert bots[0] == {"name": "Bot", "state": "in_call", "micOn": False, "cameraOn": True, "computerAudio": True}
    monkeypatch.setattr(sim_state, "STALE_SECONDS", -1.0)
    assert control(client, "google", "g3")["bots"] == [
        {"name": "Bot", "state": "left", "micOn": False, "cameraOn": True, "computerAudio": True}
    ]


def test_page_views_are_numbered_in_the_order_they_were_made(client: TestClient) -> None:
    """The page shows a view only if it is newer than the one shown (sim.js), so a poll's answer that arrives after
    an event's cannot undo it: a late view without the current clip used to stop the clip for good."""
    first = register(client, "google", "g4")
    cid, other = first["clientId"], register(client, "google", "g4")["clientId"]
    numbers = [first["seq"]]
    numbers.append(event(client, "google", "g4", cid, type="join", name="Bot")["seq"])
    poll(client, "google", "g4", other)  # another page's views do not count for this one
    numbers.append(poll(client, "google", "g4", cid)["seq"])
    numbers.append(event(client, "google", "g4", cid, type="audio")["seq"])
    assert numbers == [1, 2, 3, 4]


def test_reset_forgets_the_meeting(client: TestClient) -> None:
    cid = register(client, "google", "g4")["clientId"]
    control(client, "google", "g4", action="end")
    assert control(client, "google", "g4", action="reset")["ended"] is False
    assert client.get(f"/client/google/g4/{cid}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"action": "dance"}, 400),
        ({"name": "x"}, 400),
        ({"action": "admit", "name": 5}, 400),
        ({"action": "admit", "name": "Nobody"}, 404),
        ({"action": "join"}, 400),
        ({"action": "join", "name": "   "}, 400),
        ({"action": "leave", "name": "Ghost"}, 404),
        ({"action": "speak", "name": "Alice"}, 400),
        ({"action": "speak", "audio": "missing.wav"}, 404),
        ({"action": "speak", "audio": "../secret.txt"}, 400),
        ({"action": "speak", "audio": "/etc/passwd"}, 400),
    ],
)
def test_bad_control_input(client: TestClient, body: dict[str, Any], status: int) -> None:
    res = client.post("/control/google/bad-input", json=body)
    assert res.status_code == status, res.text
    assert isinstance(res.json()["detail"], str)


def test_bad_control_requests(client: TestClient) -> None:
    assert client.post("/control/google/x", content=b"not json").status_code == 400
    assert client.post("/control/google/x", json=[1, 2]).status_code == 400
    assert client.get("/control/skype/x").status_code == 404
    assert client.get("/control/google/bad%20id").status_code == 404
    cid = register(client, "google", "x", waitingRoom=True)["clientId"]
    event(client, "google", "x", cid, type="join", name="Bot")
    control(client, "google", "x", action="admit")
    assert client.post("/control/google/x", json={"action": "admit", "name": "Bot"}).status_code == 409
    control(client, "google", "x", action="end")
    assert client.post("/control/google/x", json={"action": "join", "name": "Late"}).status_code == 409
    assert client.post("/control/google/x", json={"action": "end"}).status_code == 200


def test_bad_page_api_requests(client: TestClient) -> None:
    assert client.get("/client/google/x/unknown").status_code == 404
    cid = register(client, "google", "x")["clientId"]
    assert client.post(f"/client/google/x/{cid}", json={"type": "explode"}).status_code == 400
    assert client.post(f"/client/google/x/{cid}", json={"type": "join", "name": ""}).status_code == 400
    assert client.post("/client/google/x", json={"audio": "../secret.txt"}).status_code == 400
