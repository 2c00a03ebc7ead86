"""End to end: bots deployed through the API join simulated Meet/Zoom/Teams calls in real Chromium and record them."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.db.engine import get_engine
from meetbot.db.tables import bots
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.conftest import Account, make_settings, register_and_login
from tests.support import control, free_port, wait_for, wait_for_speech
from workers.process import WorkerProcess

pytestmark = pytest.mark.browser
PLATFORMS = ["google", "zoom", "teams"]


@dataclass
class Runtime:
    client: TestClient
    account: Account
    settings: Settings
    simulator: str

    def create(
        self, platform: str, query: str = "", meeting_id: str = "", site: str = "", **extra: Any
    ) -> tuple[int, str]:
        """A bot for a meeting on the simulator (or on `site`), a fresh meeting id unless one is given."""
        meeting_id = meeting_id or f"m{uuid.uuid4().hex[:8]}"
        url = f"{site or self.simulator}/{platform}/{meeting_id}" + (f"?{query}" if query else "")
        body = {"meetingInfo": {"platform": platform, "meetingUrl": url}, "botDisplayName": "Notetaker", **extra}
        response = self.client.post("/bots", json=body, headers=self.account.headers)
        assert response.status_code == 201, response.text
        return response.json()["id"], meeting_id

    def deploy(self, bot_id: int) -> None:
        response = self.client.post(f"/bots/{bot_id}/deploy", headers=self.account.headers)
        assert response.status_code == 200, response.text

    def bot(self, bot_id: int) -> dict[str, Any]:
        return self.client.get(f"/bots/{bot_id}", headers=self.account.headers).json()

    def logs(self, bot_id: int) -> list[dict[str, Any]]:
        response = self.client.get(f"/bots/{bot_id}/logs", params={"page_size": 100}, headers=self.account.headers)
        return response.json()["logs"]

    def events(self, bot_id: int) -> list[dict[str, Any]]:
        response = self.client.get(f"/bots/{bot_id}/events", params={"page_size": 100}, headers=self.account.headers)
        return response.json()["events"]

    def wait_status(self, bot_id: int, status: str, timeout: float = 30) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            bot = self.bot(bot_id)
            assert bot["status"] != "FATAL" or status == "FATAL", f"bot failed: {self.events(bot_id)[-1]}"
            return bot if bot["status"] == status else None

        return wait_for(reached, timeout, f"bot {bot_id} to reach {status}")

    def status_path(self, bot_id: int) -> list[tuple[str, str | None]]:
        return [(e["status"], e["data"]["sub_code"]) for e in self.events(bot_id) if e["type"] == "STATUS_CHANGE"]

    def recording_file(self, bot: dict[str, Any]) -> Path:
        assert bot["recording"] is not None, "no recording"
        return self.settings.data_dir / "storage" / bot["recording"]["key"]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, simulator: str) -> Iterator[Runtime]:
    """Embedded mode: the API and an in-process worker sharing one in-process broker, on SQLite."""
    tmp = tmp_path_factory.mktemp("runtime")
    db_url = f"sqlite:///{tmp / 'meetbot.db'}"
    migrate(db_url)
    settings = make_settings(tmp, db_url, bots_per_process=2, join_timeout_seconds=20)
    broker = build_broker(settings)
    workers = WorkerProcess(settings, broker, queues={"bots", "maintenance"})
    workers.start()
    client = TestClient(create_app(settings, Services.from_settings(settings, broker=broker)))
    client.base_url = client.base_url.join("/api/v1/")
    try:
        yield Runtime(client, register_and_login(client), settings, simulator)
    finally:
        workers.stop()


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:format=duration", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    return {"streams": {s["codec_type"] for s in data["streams"]}, "duration": float(data["format"]["duration"])}


def loud_seconds(path: Path, threshold_db: float = -45.0) -> float:
    """Seconds of the recording's audio louder than threshold_db, in 100 ms windows (speech, not silence)."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-ac", "1", "-ar", "8000", "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    samples = array("h", pcm[: len(pcm) // 2 * 2])
    limit = 32768 * 10 ** (threshold_db / 20)
    windows = [samples[i : i + 800] for i in range(0, len(samples), 800)]
    return round(0.1 * sum(1 for window in windows if window and max(abs(v) for v in window) > limit), 1)


def seconds_between(events: list[dict[str, Any]], start_status: str, end_status: str) -> float:
    def at(status: str) -> datetime:
        event = next(e for e in events if e["type"] == "STATUS_CHANGE" and e["status"] == status)
        return datetime.fromisoformat(event["createdAt"].replace("Z", "+00:00"))

    return (at(end_status) - at(start_status)).total_seconds()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_waiting_room_admit_speech_end(runtime: Runtime, platform: str) -> None:
    bot_id, meeting = runtime.create(platform, "waiting_room=1")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_WAITING_ROOM")
    assert control(runtime.simulator, platform, meeting)["inWaitingRoom"]
    control(runtime.simulator, platform, meeting, action="admit")
    runtime.wait_status(bot_id, "IN_CALL", timeout=10)
    control(runtime.simulator, platform, meeting, action="join", name="Alice")
    control(runtime.simulator, platform, meeting, action="join", name="Bob")
    control(runtime.simulator, platform, meeting, action="speak", name="Alice", audio="alice.wav")
    control(runtime.simulator, platform, meeting, action="speak", name="Bob", audio="bob.wav")
    wait_for_speech(runtime.simulator, platform, meeting, "the speech to play")
    time.sleep(1)
    control(runtime.simulator, platform, meeting, action="end")
    bot = runtime.wait_status(bot_id, "DONE", timeout=30)

    events = runtime.events(bot_id)
    assert runtime.status_path(bot_id) == [
        ("DEPLOYING", None),
        ("JOINING_CALL", None),
        ("IN_WAITING_ROOM", None),
        ("IN_CALL", None),
        ("CALL_ENDED", "meeting_ended"),
        ("DONE", "meeting_ended"),
    ]
    joined = [e["data"]["name"] for e in events if e["type"] == "PARTICIPANT_JOIN"]
    assert sorted(joined) == ["Alice", "Bob"]
    speakers = [e["data"]["name"] for e in events if e["type"] == "ACTIVE_SPEAKER" and e["data"]["name"]]
    assert "Alice" in speakers and "Bob" in speakers and speakers.index("Alice") < speakers.index("Bob")
    assert any(e["type"] == "RECORDING_READY" for e in events)

    recording = runtime.recording_file(bot)
    media = probe(recording)
    assert media["streams"] == {"audio", "video"}
    in_call = seconds_between(events, "IN_CALL", "CALL_ENDED")
    assert abs(media["duration"] - in_call) <= 2.0, (media["duration"], in_call)
    assert bot["recording"]["hasAudio"] and bot["recording"]["hasVideo"]
    assert loud_seconds(recording) >= 3.0  # both utterances are in the recording
    # The file's 0 s is a wall-clock time, so the speaker timeline lines up with the media.
    zero = datetime.fromisoformat(bot["recording"]["startedAt"].replace("Z", "+00:00"))
    for event in events:
        if event["type"] == "ACTIVE_SPEAKER" and event["data"]["name"]:
            at = (datetime.fromisoformat(event["createdAt"].replace("Z", "+00:00")) - zero).total_seconds()
            assert 0 <= at <= media["duration"], (event, at)

    logs = runtime.client.get(f"/bots/{bot_id}/logs", headers=runtime.account.headers).json()
    messages = [line["message"] for line in logs["logs"]]
    assert any("browser started" in m for m in messages) and any("meeting_ended" in m for m in messages)
    assert bot["lastHeartbeat"] is not None
    assert control(runtime.simulator, platform, meeting)["ended"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_denied_at_the_waiting_room(runtime: Runtime, platform: str) -> None:
    bot_id, meeting = runtime.create(platform, "waiting_room=1")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_WAITING_ROOM")
    control(runtime.simulator, platform, meeting, action="deny")
    bot = runtime.wait_status(bot_id, "DONE", timeout=15)
    assert runtime.status_path(bot_id)[-2:] == [("CALL_ENDED", "join_denied"), ("DONE", "join_denied")]
    assert bot["recording"] is None  # never in the call: nothing of it to keep


def test_removed_by_host(runtime: Runtime) -> None:
    bot_id, meeting = runtime.create("google")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")
    time.sleep(1.5)
    control(runtime.simulator, "google", meeting, action="remove_bot")
    bot = runtime.wait_status(bot_id, "DONE", timeout=15)
    assert ("CALL_ENDED", "removed_by_host") in runtime.status_path(bot_id)
    assert probe(runtime.recording_file(bot))["streams"] == {"audio", "video"}


def test_kill_mid_call_leaves_within_5_seconds_and_keeps_the_recording(runtime: Runtime) -> None:
    bot_id, meeting = runtime.create("teams")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")
    control(runtime.simulator, "teams", meeting, action="join", name="Alice")
    control(runtime.simulator, "teams", meeting, action="speak", name="Alice", audio="alice.wav")
    time.sleep(3)
    killed_at = time.monotonic()
    response = runtime.client.post(f"/bots/{bot_id}/kill", headers=runtime.account.headers)
    assert response.status_code == 200
    runtime.wait_status(bot_id, "CALL_ENDED", timeout=5)
    assert time.monotonic() - killed_at <= 5
    bot = runtime.wait_status(bot_id, "DONE", timeout=15)
    assert ("CALL_ENDED", "killed") in runtime.status_path(bot_id)
    assert loud_seconds(runtime.recording_file(bot)) >= 1.0
    assert control(runtime.simulator, "teams", meeting)["bots"][0]["state"] == "left"
    again = runtime.client.post(f"/bots/{bot_id}/kill", headers=runtime.account.headers)
    assert again.status_code == 409


@pytest.fixture
def silent_site() -> Iterator[str]:
    """A web server that accepts connections and never answers: a meeting page stuck loading."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in held:
            conn.close()


def test_kill_while_the_page_never_loads_lands_within_5_seconds(runtime: Runtime, silent_site: str) -> None:
    bot_id, _ = runtime.create("zoom", site=silent_site)
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "JOINING_CALL")
    wait_for(lambda: any("opening" in line["message"] for line in runtime.logs(bot_id)), 15, "page requested")
    killed_at = time.monotonic()
    assert runtime.client.post(f"/bots/{bot_id}/kill", headers=runtime.account.headers).status_code == 200
    runtime.wait_status(bot_id, "DONE", timeout=5)
    assert time.monotonic() - killed_at <= 5
    assert runtime.status_path(bot_id)[-2:] == [("CALL_ENDED", "killed"), ("DONE", "killed")]


def test_waiting_room_timeout(runtime: Runtime) -> None:
    bot_id, _ = runtime.create("zoom", "waiting_room=1", automaticLeave={"waitingRoomTimeout": 2000})
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "DONE", timeout=30)
    assert runtime.status_path(bot_id)[-2] == ("CALL_ENDED", "waiting_room_timeout")


def test_everyone_left(runtime: Runtime) -> None:
    bot_id, meeting = runtime.create("google", automaticLeave={"everyoneLeftTimeout": 2000})
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")
    control(runtime.simulator, "google", meeting, action="join", name="Alice")
    wait_for(lambda: any(e["type"] == "PARTICIPANT_JOIN" for e in runtime.events(bot_id)), 10, "Alice seen")
    control(runtime.simulator, "google", meeting, action="leave", name="Alice")
    runtime.wait_status(bot_id, "DONE", timeout=15)
    assert runtime.status_path(bot_id)[-2] == ("CALL_ENDED", "everyone_left")
    assert [e["type"] for e in runtime.events(bot_id) if e["type"].startswith("PARTICIPANT")] == [
        "PARTICIPANT_JOIN",
        "PARTICIPANT_LEAVE",
    ]


def test_meeting_not_found_is_fatal(runtime: Runtime) -> None:
    bot_id, _ = runtime.create("google", meeting_id="notfound")
    runtime.deploy(bot_id)
    bot = runtime.wait_status(bot_id, "FATAL", timeout=20)
    assert runtime.status_path(bot_id)[-1] == ("FATAL", "meeting_not_found")
    assert bot["deploymentError"]


def test_unreachable_meeting_is_fatal_with_its_reason(runtime: Runtime) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    bot_id, _ = runtime.create("teams", query="p=Secret123", site=closed)
    runtime.deploy(bot_id)
    bot = runtime.wait_status(bot_id, "FATAL", timeout=20)
    assert runtime.status_path(bot_id)[-1] == ("FATAL", "meeting_unreachable")
    assert "ERR_CONNECTION_REFUSED" in bot["deploymentError"]
    assert "Session info" not in bot["deploymentError"]
    # The meeting's passcode never reaches an error, a log line or an event.
    told = json.dumps([bot["deploymentError"], runtime.logs(bot_id), runtime.events(bot_id)])
    assert "Secret123" not in told and "p=***" in told
    assert [line["level"] for line in runtime.logs(bot_id) if line["message"].startswith("status FATAL")] == ["ERROR"]


def test_two_bots_in_two_meetings_keep_their_audio_apart(runtime: Runtime) -> None:
    loud_bot, loud_meeting = runtime.create("google")
    quiet_bot, quiet_meeting = runtime.create("zoom")
    runtime.deploy(loud_bot)
    runtime.deploy(quiet_bot)
    runtime.wait_status(loud_bot, "IN_CALL")
    runtime.wait_status(quiet_bot, "IN_CALL")
    control(runtime.simulator, "google", loud_meeting, action="speak", name="Alice", audio="alice.wav")
    control(runtime.simulator, "zoom", quiet_meeting, action="join", name="Bob")
    wait_for(lambda: control(runtime.simulator, "google", loud_meeting)["speech"][0]["state"] == "done", 30, "speech")
    control(runtime.simulator, "google", loud_meeting, action="end")
    control(runtime.simulator, "zoom", quiet_meeting, action="end")
    loud = runtime.wait_status(loud_bot, "DONE")
    quiet = runtime.wait_status(quiet_bot, "DONE")
    assert loud_seconds(runtime.recording_file(loud)) >= 2.0
    assert loud_seconds(runtime.recording_file(quiet)) < 0.3


def test_silence_detection_uses_the_recorded_audio(runtime: Runtime) -> None:
    bot_id, meeting = runtime.create(
        "teams", automaticLeave={"silenceDetection": {"timeout": 4000, "activateAfter": 0}}
    )
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")
    control(runtime.simulator, "teams", meeting, action="speak", name="Alice", audio="alice.wav")
    bot = runtime.wait_status(bot_id, "DONE", timeout=30)
    assert runtime.status_path(bot_id)[-2] == ("CALL_ENDED", "silence_timeout")
    # It stayed while Alice spoke (about 4 s) and left about 4 s after she stopped.
    assert loud_seconds(runtime.recording_file(bot)) >= 2.0


def test_bot_image_becomes_the_camera_picture(runtime: Runtime, media_dir: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=320x240", "-frames:v", "1",
         str(media_dir / "face.png")],
        check=True,
    )  # fmt: skip
    bot_id, meeting = runtime.create("google", botImage=f"{runtime.simulator}/media/face.png")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")
    control(runtime.simulator, "google", meeting, action="end")
    runtime.wait_status(bot_id, "DONE")
    logs = runtime.client.get(f"/bots/{bot_id}/logs", headers=runtime.account.headers).json()["logs"]
    assert "botImage set as the camera picture" in [line["message"] for line in logs]


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("{simulator}/media/missing.png", "404"),
        ("http://169.254.169.254/latest/meta-data/", "never fetched"),  # where cloud metadata answers
    ],
    ids=["missing", "link-local"],
)
def test_unusable_bot_image_is_logged_not_fatal(runtime: Runtime, image: str, reason: str) -> None:
    bot_id, meeting = runtime.create("zoom", botImage=image.format(simulator=runtime.simulator))
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")
    control(runtime.simulator, "zoom", meeting, action="end")
    runtime.wait_status(bot_id, "DONE")
    logs = runtime.client.get(f"/bots/{bot_id}/logs", headers=runtime.account.headers).json()["logs"]
    assert any(line["message"].startswith("botImage not used") and reason in line["message"] for line in logs)


def test_a_bot_types_the_meeting_password_that_the_database_holds_sealed(runtime: Runtime) -> None:
    meeting = f"m{uuid.uuid4().hex[:8]}"
    url = f"{runtime.simulator}/zoom/{meeting}?passcode=4242"
    body = {"meetingInfo": {"platform": "zoom", "meetingUrl": url, "meetingPassword": "4242"}, "botDisplayName": "N"}
    created = runtime.client.post("/bots", json=body, headers=runtime.account.headers)
    assert created.status_code == 201, created.text
    bot_id = created.json()["id"]
    with get_engine(runtime.settings.effective_database_url).connect() as conn:
        stored = conn.execute(sa.select(bots.c.config).where(bots.c.id == bot_id)).scalar_one()
    assert stored["meetingInfo"]["meetingPassword"].startswith("enc:v1:")  # sealed at rest
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL", timeout=40)  # a wrong passcode ends it FATAL (meeting_not_found)
    control(runtime.simulator, "zoom", meeting, action="end")
    runtime.wait_status(bot_id, "DONE", timeout=40)


def test_a_meeting_url_stored_before_the_check_never_reaches_the_browser(runtime: Runtime) -> None:
    bot_id, _ = runtime.create("google")
    engine = get_engine(runtime.settings.effective_database_url)
    with engine.begin() as conn:  # as a row written by an older version, before URLs were read as browsers do
        config = conn.execute(sa.select(bots.c.config).where(bots.c.id == bot_id)).scalar_one()
        bad = {**config["meetingInfo"], "meetingUrl": "https://127.0.0.1:18443\\@meet.google.com/abc-defg-hij"}
        conn.execute(bots.update().where(bots.c.id == bot_id).values(config={**config, "meetingInfo": bad}))
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "FATAL", timeout=30)
    assert runtime.status_path(bot_id)[-1] == ("FATAL", "invalid_meeting_url")
    assert not any("browser started" in entry["message"] for entry in runtime.logs(bot_id))
