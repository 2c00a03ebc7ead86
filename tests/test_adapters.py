"""Platform adapters against the meeting simulator in real headless Chromium (join, states, speech, leave)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from meetbot.errors import BotError
from tests.support import control
from workers.bots.platforms import JoinRequest, PageState, Phase, PlatformAdapter, adapter_for
from workers.bots.platforms.base import redact_url
from workers.bots.platforms.unknown_pages import UnknownPageLog
from workers.bots.platforms.webclient import WebClientAdapter

PLATFORMS = ["google", "zoom", "teams"]
CHROMIUM = Path("/usr/lib/chromium/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--window-size=1280,720",
)
JOIN_TIMEOUT = 30.0  # a join takes ~1 s; a 2-core CI machine running bot benchmarks beside the suite took over 10


# -- join_url (no browser) -----------------------------------------------------------------------------


def _adapter(platform: str, url: str, password: str | None = None) -> PlatformAdapter:
    return adapter_for(platform)(None, JoinRequest(url, "Bot", password), lambda _msg: None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "password", "expected"),
    [
        ("https://us05web.zoom.us/j/84335626851?pwd=abc.1", None, "https://app.zoom.us/wc/84335626851/join?pwd=abc.1"),
        ("https://zoom.us/j/1234567890", "s3cret", "https://app.zoom.us/wc/1234567890/join?pwd=s3cret"),
        ("https://zoom.us/j/1234567890", None, "https://app.zoom.us/wc/1234567890/join"),
        ("https://acme.zoom.us/w/98765432101?tk=t", None, "https://app.zoom.us/wc/98765432101/join?tk=t"),
        ("https://zoom.us/s/1234567890", None, "https://app.zoom.us/wc/1234567890/join"),
        ("https://zoom.us/my/acme.room", None, "https://zoom.us/my/acme.room"),  # vanity: its launcher page
        ("https://app.zoom.us/wc/1234567890/join?pwd=x", None, "https://app.zoom.us/wc/1234567890/join?pwd=x"),
        ("http://127.0.0.1:8100/zoom/123?pwd=x", None, "http://127.0.0.1:8100/zoom/123?pwd=x"),
    ],
)
def test_zoom_join_url(url: str, password: str | None, expected: str) -> None:
    assert _adapter("zoom", url, password).join_url() == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://app.zoom.us/wc/123456789/join?pwd=S3cret&fromPWA=1",
            "https://app.zoom.us/wc/123456789/join?pwd=***&fromPWA=1",
        ),
        ("https://teams.microsoft.com/meet/1234567890?p=Xy9", "https://teams.microsoft.com/meet/1234567890?p=***"),
        ("https://meet.google.com/abc-defg-hij", "https://meet.google.com/abc-defg-hij"),
    ],
)
def test_passcodes_in_meeting_urls_are_never_logged(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("platform", "url"),
    [
        ("google", "https://meet.google.com/abc-defg-hij"),
        ("google", "http://sim.local:8100/google/abc-defg-hij?waiting_room=1"),
        ("teams", "https://teams.microsoft.com/meet/1234567890123?p=abc"),
        ("teams", "https://teams.live.com/meet/9876543210?p=x"),
        ("teams", "http://127.0.0.1:8100/teams/42"),
    ],
)
def test_join_url_as_given(platform: str, url: str) -> None:
    assert _adapter(platform, url).join_url() == url


def test_adapter_for() -> None:
    assert {adapter_for(p).platform for p in PLATFORMS} == set(PLATFORMS)
    with pytest.raises(ValueError):
        adapter_for("skype")


# -- browser fixtures ----------------------------------------------------------------------------------


def _start_chromium() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    browser = _start_chromium()
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def driver2() -> Iterator[WebDriver]:
    browser = _start_chromium()
    yield browser
    browser.quit()


# -- helpers -------------------------------------------------------------------------------------------


_control = control


def _wait_state(adapter: PlatformAdapter, check: Callable[[PageState], bool], timeout: float = 5.0) -> PageState:
    deadline = time.monotonic() + timeout
    state = adapter.read_state()
    while not check(state):
        assert time.monotonic() < deadline, f"page state never matched: last {state}"
        time.sleep(0.05)
        state = adapter.read_state()
    return state


def _wait_control(
    base: str, platform: str, mid: str, check: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state = _control(base, platform, mid)
    while not check(state):
        assert time.monotonic() < deadline, f"control state never matched: last {state}"
        time.sleep(0.05)
        state = _control(base, platform, mid)
    return state


def _join(
    driver: WebDriver, base: str, platform: str, query: str = "", name: str = "MeetBot", password: str | None = None
) -> tuple[PlatformAdapter, str]:
    mid = f"m{uuid.uuid4().hex[:10]}"
    url = f"{base}/{platform}/{mid}" + (f"?{query}" if query else "")
    adapter = adapter_for(platform)(driver, JoinRequest(url, name, password), lambda _msg: None)
    adapter.join(JOIN_TIMEOUT)
    return adapter, mid


# -- the flows -----------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("platform", PLATFORMS)
def test_waiting_room_admit_participants_speech_removed(driver: WebDriver, simulator: str, platform: str) -> None:
    adapter, mid = _join(driver, simulator, platform, "waiting_room=1")
    assert adapter.read_state().phase == Phase.WAITING_ROOM
    bot = _control(simulator, platform, mid)["bots"][0]
    assert bot == {"name": "MeetBot", "state": "waiting", "micOn": False, "cameraOn": False, "computerAudio": False}

    _control(simulator, platform, mid, action="admit")
    state = _wait_state(adapter, lambda s: s.phase == Phase.IN_CALL)
    assert state.participants == ()  # the bot itself is not listed
    # It hears the call: on Zoom only once the adapter answers the "Join Audio by Computer" dialog.
    _wait_state(adapter, lambda _s: _control(simulator, platform, mid)["bots"][0]["computerAudio"])

    _control(simulator, platform, mid, action="join", name="Alice")
    _wait_state(adapter, lambda s: s.participants == ("Alice",))

    _control(simulator, platform, mid, action="speak", name="Alice", audio="alice.wav")
    state = _wait_state(adapter, lambda s: s.active_speaker is not None)
    assert state.active_speaker == "Alice"
    assert _control(simulator, platform, mid)["activeSpeaker"] == "Alice"
    done = _wait_control(simulator, platform, mid, lambda c: c["speech"][0]["state"] == "done", timeout=15)
    assert done["activeSpeaker"] is None
    assert adapter.read_state().active_speaker is None

    _control(simulator, platform, mid, action="remove_bot")
    state = _wait_state(adapter, lambda s: s.phase != Phase.IN_CALL)
    assert state.phase == Phase.REMOVED


@pytest.mark.browser
@pytest.mark.parametrize("platform", PLATFORMS)
def test_denied(driver: WebDriver, simulator: str, platform: str) -> None:
    adapter, mid = _join(driver, simulator, platform, "waiting_room=1")
    assert adapter.read_state().phase == Phase.WAITING_ROOM
    _control(simulator, platform, mid, action="deny", name="MeetBot")
    state = _wait_state(adapter, lambda s: s.phase != Phase.WAITING_ROOM)
    assert state.phase == Phase.DENIED


@pytest.mark.browser
@pytest.mark.parametrize("platform", PLATFORMS)
def test_ended(driver: WebDriver, simulator: str, platform: str) -> None:
    adapter, mid = _join(driver, simulator, platform)
    assert adapter.read_state().phase == Phase.IN_CALL
    _control(simulator, platform, mid, action="end")
    state = _wait_state(adapter, lambda s: s.phase != Phase.IN_CALL)
    assert state.phase == Phase.ENDED


@pytest.mark.browser
@pytest.mark.parametrize("platform", PLATFORMS)
def test_end_sentences_in_the_call_do_not_end_it(driver: WebDriver, simulator: str, platform: str) -> None:
    """A chat toast or caption saying "Meeting ended" while the call's controls show is not the end screen."""
    adapter, mid = _join(driver, simulator, platform)
    assert adapter.read_state().phase == Phase.IN_CALL
    toast = "Alice: Meeting ended? Call ended! You've been removed from the meeting. The meeting has ended"
    # Inside the call's own view, so that it goes with the call like a real toast.
    driver.execute_script(
        "const d = document.createElement('div'); d.textContent = arguments[0];"
        "document.getElementById('app').appendChild(d);",
        toast,
    )
    assert adapter.read_state().phase == Phase.IN_CALL
    _control(simulator, platform, mid, action="end")
    assert _wait_state(adapter, lambda s: s.phase != Phase.IN_CALL).phase == Phase.ENDED


@pytest.mark.browser
def test_teams_could_not_connect_is_retried(driver: WebDriver, simulator: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Teams' transient "We couldn't connect you" [1x, A]: reload and go on; give up after max_reloads."""
    monkeypatch.setattr(WebClientAdapter, "reload_pause_seconds", 0.2)
    adapter, _mid = _join(driver, simulator, "teams", "connect_failures=2")
    assert _wait_state(adapter, lambda s: s.phase == Phase.IN_CALL).phase == Phase.IN_CALL
    with pytest.raises(BotError) as excinfo:
        _join(driver, simulator, "teams", f"connect_failures={WebClientAdapter.max_reloads + 1}")
    assert excinfo.value.sub_code == "meeting_unreachable"


@pytest.mark.browser
def test_teams_computer_audio_is_chosen_before_joining(driver: WebDriver, simulator: str) -> None:
    """A pre-join that offers "Don't use audio" selected: the adapter picks "Computer audio", so the bot hears
    the call (docs/platforms.md#teams-audio-choice)."""
    adapter, mid = _join(driver, simulator, "teams", "no_audio=1")
    assert adapter.read_state().phase == Phase.IN_CALL
    _wait_control(simulator, "teams", mid, lambda c: c["bots"][0]["computerAudio"] is True)


def test_unknown_page_states_are_described_once_after_15_seconds() -> None:
    now = [0.0]
    watcher = UnknownPageLog(WebClientAdapter.unknown_log_seconds, clock=lambda: now[0])
    page = {"title": "New", "url": "https://zoom.us/j/123?pwd=s3cret", "buttons": ["Try it", "Not now"]}
    messages = []
    for second in range(0, 40):
        now[0] = float(second)
        messages.append(watcher.note(Phase.UNKNOWN, page))
    described = [m for m in messages if m]
    assert described == [
        "page not recognised for 15s: title 'New', url https://zoom.us/j/123?pwd=***, buttons: 'Try it', 'Not now'"
    ]
    assert messages.index(described[0]) == 15
    # A known state in between, then the same screen again: not described twice. A new screen is.
    assert watcher.note(Phase.PREJOIN, None) is None
    for second in range(40, 60):
        now[0] = float(second)
        assert watcher.note(Phase.UNKNOWN, page) is None
    other = {**page, "buttons": ["Continue"]}
    results = []
    for second in range(60, 80):
        now[0] = float(second)
        results.append(watcher.note(Phase.UNKNOWN, other))
    assert [m for m in results if m] == [
        "page not recognised for 15s: title 'New', url https://zoom.us/j/123?pwd=***, buttons: 'Continue'"
    ]


@pytest.mark.browser
def test_zoom_client_inside_an_iframe(driver: WebDriver, simulator: str) -> None:
    """Zoom's web app serves the client in a same-origin iframe: join, follow and leave it there."""
    adapter, mid = _join(driver, simulator, "zoom", "iframe=1&waiting_room=1")
    assert adapter.read_state().phase == Phase.WAITING_ROOM
    _control(simulator, "zoom", mid, action="admit")
    _wait_state(adapter, lambda s: s.phase == Phase.IN_CALL)
    _control(simulator, "zoom", mid, action="join", name="Alice")
    _wait_state(adapter, lambda s: s.participants == ("Alice",))
    assert _control(simulator, "zoom", mid)["bots"][0]["computerAudio"] is True
    adapter.leave()
    _wait_control(simulator, "zoom", mid, lambda c: c["bots"][0]["state"] == "left")


@pytest.mark.browser
@pytest.mark.parametrize("platform", PLATFORMS)
def test_leave_marks_the_bot_left(driver: WebDriver, simulator: str, platform: str) -> None:
    adapter, mid = _join(driver, simulator, platform)
    assert adapter.read_state().phase == Phase.IN_CALL
    adapter.leave()
    _wait_control(simulator, platform, mid, lambda c: c["bots"][0]["state"] == "left")
    assert _control(simulator, platform, mid)["botPresent"] is False


@pytest.mark.browser
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(
    ("mid", "sub_code"),
    [
        ("notfound", "meeting_not_found"),
        ("invalid", "meeting_not_found"),
        ("blocked", "bot_detected"),
        ("signin", "sign_in_required"),
    ],
)
def test_join_errors(driver: WebDriver, simulator: str, platform: str, mid: str, sub_code: str) -> None:
    adapter = adapter_for(platform)(driver, JoinRequest(f"{simulator}/{platform}/{mid}", "MeetBot"), lambda _m: None)
    with pytest.raises(BotError) as excinfo:
        adapter.join(JOIN_TIMEOUT)
    assert excinfo.value.sub_code == sub_code


@pytest.mark.browser
@pytest.mark.parametrize("platform", PLATFORMS)
def test_popups_are_dismissed(driver: WebDriver, simulator: str, platform: str) -> None:
    adapter, _mid = _join(driver, simulator, platform, "popup=1")
    assert adapter.read_state().phase == Phase.IN_CALL


@pytest.mark.browser
def test_zoom_passcode(driver: WebDriver, simulator: str) -> None:
    adapter, _mid = _join(driver, simulator, "zoom", "passcode=4242", password="4242")
    assert adapter.read_state().phase == Phase.IN_CALL
    adapter, _mid = _join(driver, simulator, "zoom", "passcode=4242&pwd=4242")
    assert adapter.read_state().phase == Phase.IN_CALL
    for password in (None, "1111"):
        with pytest.raises(BotError) as excinfo:
            _join(driver, simulator, "zoom", "passcode=4242", password=password)
        assert excinfo.value.sub_code == "meeting_not_found"


@pytest.mark.browser
@pytest.mark.parametrize("platform", PLATFORMS)
def test_two_bots_in_one_meeting(driver: WebDriver, driver2: WebDriver, simulator: str, platform: str) -> None:
    first, mid = _join(driver, simulator, platform, "waiting_room=1", name="Bot One")
    url = f"{simulator}/{platform}/{mid}?waiting_room=1"
    second = adapter_for(platform)(driver2, JoinRequest(url, "Bot Two"), lambda _msg: None)
    second.join(JOIN_TIMEOUT)
    _control(simulator, platform, mid, action="admit", name="Bot Two")
    _wait_state(second, lambda s: s.phase == Phase.IN_CALL)
    assert first.read_state().phase == Phase.WAITING_ROOM
    _control(simulator, platform, mid, action="admit", name="Bot One")
    _wait_state(first, lambda s: s.participants == ("Bot Two",))
    _wait_state(second, lambda s: s.participants == ("Bot One",))


@pytest.mark.browser
def test_join_stops_at_once_when_the_runner_says_so(driver: WebDriver, simulator: str) -> None:
    from workers.bots.platforms import JoinCancelled

    request = JoinRequest(f"{simulator}/google/m{uuid.uuid4().hex[:10]}?waiting_room=1", "MeetBot")
    adapter = adapter_for("google")(driver, request, lambda _msg: None, should_stop=lambda: True)
    started = time.monotonic()
    with pytest.raises(JoinCancelled):
        adapter.join(JOIN_TIMEOUT)
    assert time.monotonic() - started < JOIN_TIMEOUT / 2  # it did not wait for the join timeout
