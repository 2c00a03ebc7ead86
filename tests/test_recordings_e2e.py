"""End to end on S3: a real bot records a simulated call, S3 goes down during its upload, the recording still
lands; it is then listed, downloaded, streamed, shared, and played and seeked on the share page in Chromium."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.conftest import make_settings
from tests.support import SeaweedFS, control, free_port, running_seaweedfs, wait_for
from workers.process import WorkerProcess

pytestmark = pytest.mark.browser


@dataclass
class Live:
    api: str  # base URL of the API served over real HTTP, e.g. http://127.0.0.1:PORT/api/v1
    headers: dict[str, str]
    settings: Settings
    weed: SeaweedFS
    simulator: str

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", headers={**self.headers, **headers}, timeout=30)

    def post(self, path: str, body: dict[str, object] | None = None) -> httpx.Response:
        return httpx.post(f"{self.api}{path}", json=body or {}, headers=self.headers, timeout=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, simulator: str) -> Iterator[Live]:
    """The API on a real port and an in-process worker, storing on a SeaweedFS of this module's own."""
    tmp = tmp_path_factory.mktemp("recordings-e2e")
    with running_seaweedfs(tmp / "weed") as weed:
        db_url = f"sqlite:///{tmp / 'meetbot.db'}"
        migrate(db_url)
        settings = make_settings(
            tmp,
            db_url,
            storage_url=weed.server.url("recordings"),
            storage_upload_retry_seconds=",".join(["1"] * 60),
            port=free_port(),
            bots_per_process=1,
            join_timeout_seconds=20,
        )
        broker = build_broker(settings)
        workers = WorkerProcess(settings, broker, queues={"bots", "transcribe"})
        workers.start()
        app = create_app(settings, Services.from_settings(settings, broker=broker))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for(lambda: server.started, 10, "the API")
        api = f"http://127.0.0.1:{settings.port}/api/v1"
        email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
        httpx.post(f"{api}/auth/register", json={"email": email, "password": "correct horse 1", "name": "E2E"})
        login = httpx.post(f"{api}/auth/login", json={"email": email, "password": "correct horse 1"}).json()
        try:
            yield Live(api, {"Authorization": f"Bearer {login['accessToken']}"}, settings, weed, simulator)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            workers.stop()


@pytest.fixture(scope="module")
def recorded_bot(live: Live) -> int:
    """A bot that recorded ~10 s of a call with speech; S3 was down while its call ended and it uploaded."""
    meeting = f"m{uuid.uuid4().hex[:8]}"
    url = f"{live.simulator}/google/{meeting}"
    created = live.post("/bots", {"meetingInfo": {"platform": "google", "meetingUrl": url}, "meetingTitle": "E2E"})
    bot_id: int = created.json()["id"]
    assert live.post(f"/bots/{bot_id}/deploy").status_code == 200
    wait_for(lambda: live.get(f"/bots/{bot_id}").json()["status"] == "IN_CALL", 30, "the bot to join")
    control(live.simulator, "google", meeting, action="join", name="Alice")
    control(live.simulator, "google", meeting, action="speak", name="Alice", audio="alice.wav")
    time.sleep(10)

    live.weed.stop()
    control(live.simulator, "google", meeting, action="end")
    wait_for(lambda: live.get(f"/bots/{bot_id}").json()["status"] == "CALL_ENDED", 20, "the bot to leave")
    time.sleep(3)  # its upload fails meanwhile and is retried
    bot = live.get(f"/bots/{bot_id}").json()
    assert bot["recording"] is None and bot["status"] == "CALL_ENDED"
    assert list((live.settings.spool_dir / str(bot_id)).glob("recording.*")), "the spool must keep the file"
    live.weed.start()
    wait_for(lambda: live.get(f"/bots/{bot_id}").json()["status"] == "DONE", 60, "the upload to land")
    assert live.get(f"/bots/{bot_id}").json()["recording"] is not None
    assert not (live.settings.spool_dir / str(bot_id)).exists(), "the spool is cleared once the upload landed"
    return bot_id


def test_the_recording_lands_after_s3_comes_back_and_downloads_whole(live: Live, recorded_bot: int) -> None:
    listing = live.get("/recordings").json()
    assert [item["botId"] for item in listing["recordings"]] == [recorded_bot]
    body = live.get(f"/recordings/{recorded_bot}").json()
    assert body["durationSeconds"] >= 8 and {s["type"] for s in body["streams"]} == {"audio", "video"}

    url = live.get(f"/recordings/{recorded_bot}/download").json()["url"]
    assert url.startswith(f"http://127.0.0.1:{live.weed.server.port}/recordings/")  # presigned by S3 itself
    downloaded = httpx.get(url, timeout=30).content
    streamed = live.get(f"/recordings/{recorded_bot}/stream").content
    assert len(downloaded) == body["sizeBytes"]
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(streamed).digest()
    part = live.get(f"/recordings/{recorded_bot}/stream", Range="bytes=1000-1999")
    assert part.status_code == 206 and part.content == downloaded[1000:2000]


def test_the_share_page_plays_and_seeks_in_chromium(live: Live, recorded_bot: int, tmp_path: Path) -> None:
    assert live.post(f"/transcripts/{recorded_bot}/transcribe").status_code == 202
    wait_for(lambda: live.get(f"/transcripts/{recorded_bot}/status").json()["status"] == "done", 60, "the transcript")
    page_url = live.post(f"/recordings/{recorded_bot}/share").json()["url"]
    options = webdriver.ChromeOptions()
    options.binary_location = str(live.settings.chromium_binary)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,900",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(live.settings.chromedriver_binary)), options=options)
    try:
        driver.get(page_url)
        assert "E2E" in driver.title
        state = "return document.getElementById('media').readyState"
        wait_for(lambda: driver.execute_script(state) >= 1, 20, "the video's metadata to load")
        duration = driver.execute_script("return document.getElementById('media').duration")
        assert duration >= 8, duration
        driver.execute_script(
            "const m = document.getElementById('media'); window.seekedTo = null;"
            "m.addEventListener('seeked', () => { window.seekedTo = m.currentTime; }, {once: true});"
            "m.currentTime = 5;"
        )
        wait_for(lambda: driver.execute_script("return window.seekedTo") is not None, 20, "the seek to 5 s")
        assert abs(driver.execute_script("return window.seekedTo") - 5) < 0.5
        driver.execute_script("document.getElementById('media').play()")
        wait_for(
            lambda: driver.execute_script("return document.getElementById('media').currentTime") > 5.5,
            20,
            "the video to play on from 5 s",
        )
        spread = driver.execute_script(
            "const m = document.getElementById('media'); const c = document.createElement('canvas');"
            "c.width = 160; c.height = 90; const g = c.getContext('2d'); g.drawImage(m, 0, 0, 160, 90);"
            "const d = g.getImageData(0, 0, 160, 90).data; let lo = 255, hi = 0;"
            "for (let i = 0; i < d.length; i += 4) { const v = (d[i] + d[i+1] + d[i+2]) / 3;"
            "  lo = Math.min(lo, v); hi = Math.max(hi, v); } return hi - lo;"
        )
        assert spread > 40, f"the video frame at 5 s is blank (brightness spread {spread})"
        screenshot = tmp_path / "share-page.png"
        assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
        # The transcript pane beside the player: Alice's words, and a click on a line seeks to it.
        lines = wait_for(lambda: driver.find_elements("css selector", "#transcript .segment"), 20, "the transcript")
        assert "alice" in driver.find_element("id", "transcript").text.lower()
        start = float(lines[-1].get_attribute("data-start"))
        lines[-1].click()
        position = "return document.getElementById('media').currentTime"
        wait_for(lambda: abs(driver.execute_script(position) - start) < 1.0, 10, "the click to seek to its line")
    finally:
        driver.quit()
    views = live.get(f"/recordings/{recorded_bot}/share").json()["viewCount"]
    assert views == 1
