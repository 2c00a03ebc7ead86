"""Zoom's launcher page (personal and launcher links) and unrecognised screens, with real Chromium and real bots."""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support import control
from tests.test_adapters import _wait_state, driver  # noqa: F401  (the module's headless Chromium)
from tests.test_bot_runtime import Runtime, runtime  # noqa: F401  (API + in-process bot worker)
from workers.bots.platforms import JoinRequest, Phase, ZoomAdapter

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("shape", "launches"),
    [
        ("my/{room}?waiting_room=1", True),
        ("{room}?launcher=1&waiting_room=1", True),
        ("{room}?launcher=1&iframe=1", True),  # the client then inside Zoom's web-app iframe
        ("{room}?launcher=old", False),
    ],
)
def test_adapter_goes_through_the_launcher_page(
    driver: WebDriver,  # noqa: F811
    simulator: str,
    shape: str,
    launches: bool,
) -> None:
    """Launch Meeting (its protocol dialog would swallow every later click), then the browser link, then the
    usual client, in one tab; the older page shows "Join from Your Browser" at once."""
    room = f"r{uuid.uuid4().hex[:8]}.room"
    lines: list[str] = []
    adapter = ZoomAdapter(driver, JoinRequest(f"{simulator}/zoom/{shape.format(room=room)}", "MeetBot"), lines.append)
    adapter.join(15)
    assert any("clicking launch (the desktop app" in line for line in lines) is launches
    assert any("following the launcher link" in line for line in lines) is launches
    assert len(driver.window_handles) == 1
    expected = Phase.WAITING_ROOM if "waiting_room" in shape else Phase.IN_CALL
    assert adapter.read_state().phase == expected
    bot = control(simulator, "zoom", room)["bots"][0]
    assert (bot["name"], bot["micOn"], bot["cameraOn"]) == ("MeetBot", False, False)
    if expected == Phase.WAITING_ROOM:
        control(simulator, "zoom", room, action="admit")
    _wait_state(adapter, lambda s: s.phase == Phase.IN_CALL)
    control(simulator, "zoom", room, action="end")
    assert _wait_state(adapter, lambda s: s.phase != Phase.IN_CALL).phase == Phase.ENDED
    assert not any("page not recognised" in line for line in lines)


@pytest.mark.parametrize("personal_room", [True, False], ids=["zoom-my-name", "launcher-1"])
def test_bot_joins_through_the_launcher_lobby_admit_call_end(runtime: Runtime, personal_room: bool) -> None:  # noqa: F811
    """Through the API and a bot worker: a launcher link reaches the lobby, the call and the end."""
    if personal_room:  # a personal-room link (/zoom/my/<name>) always opens the launcher
        meeting = f"jane.doe{uuid.uuid4().hex[:6]}"
        bot_id, _ = runtime.create("zoom", "waiting_room=1", meeting_id=f"my/{meeting}")
    else:
        bot_id, meeting = runtime.create("zoom", "launcher=1&waiting_room=1")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_WAITING_ROOM")
    control(runtime.simulator, "zoom", meeting, action="admit")
    runtime.wait_status(bot_id, "IN_CALL")
    assert control(runtime.simulator, "zoom", meeting)["bots"][0]["computerAudio"] is True
    control(runtime.simulator, "zoom", meeting, action="end")
    runtime.wait_status(bot_id, "DONE", timeout=60)
    assert runtime.status_path(bot_id) == [
        ("DEPLOYING", None),
        ("JOINING_CALL", None),
        ("IN_WAITING_ROOM", None),
        ("IN_CALL", None),
        ("CALL_ENDED", "meeting_ended"),
        ("DONE", "meeting_ended"),
    ]
    messages = [entry["message"] for entry in runtime.logs(bot_id)]
    assert any("following the launcher link" in message for message in messages)


def test_an_unrecognised_screen_is_described_once_in_the_bot_logs(runtime: Runtime) -> None:  # noqa: F811
    """A screen no adapter knows, for longer than 15 s: the bot's logs say its title, URL and buttons, once."""
    bot_id, _meeting = runtime.create("google", meeting_id="unrecognised")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "FATAL", timeout=60)  # the join timeout (20 s here) still ends it
    described = [entry["message"] for entry in runtime.logs(bot_id) if "page not recognised" in entry["message"]]
    assert len(described) == 1, described
    assert "title 'New experience'" in described[0]
    assert f"url {runtime.simulator}/google/unrecognised" in described[0]
    assert "'Try the new experience', 'Not now'" in described[0]
