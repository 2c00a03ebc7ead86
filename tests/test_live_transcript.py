"""transcription.auto: a real bot hands its audio over in chunks while a 3-minute meeting goes on, so the transcript
is readable during the call and done moments after it ends, with the speakers' names, then summarized."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import jiwer
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.queue import build_broker
from tests.conftest import make_settings, register_and_login
from tests.support import SPEECH, control, wait_for, wait_for_speech
from tests.test_bot_runtime import Runtime
from workers.process import WorkerProcess

pytestmark = pytest.mark.browser
MEETING_SECONDS = int(os.environ.get("MEETBOT_TEST_MEETING_SECONDS", "180"))


@pytest.fixture(scope="module")
def live_runtime(tmp_path_factory: pytest.TempPathFactory, simulator: str) -> Iterator[Runtime]:
    tmp = tmp_path_factory.mktemp("live")
    db_url = f"sqlite:///{tmp / 'meetbot.db'}"
    migrate(db_url)
    settings = make_settings(tmp, db_url, bots_per_process=1, join_timeout_seconds=20)
    broker = build_broker(settings)
    workers = WorkerProcess(settings, broker, queues={"bots", "transcribe", "summarize"})
    workers.start()
    client = TestClient(create_app(settings, Services.from_settings(settings, broker=broker)))
    client.base_url = client.base_url.join("/api/v1/")
    try:
        yield Runtime(client, register_and_login(client), settings, simulator)
    finally:
        workers.stop()


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("'", ""))).strip()


def say(runtime: Runtime, meeting: str, name: str, audio: str) -> None:
    control(runtime.simulator, "google", meeting, action="speak", name=name, audio=audio)
    wait_for_speech(runtime.simulator, "google", meeting, f"{name} to finish speaking")


def test_a_meeting_is_transcribed_while_it_runs(live_runtime: Runtime) -> None:
    runtime = live_runtime
    auto = {"transcription": {"auto": True, "language": "en"}, "summary": {"auto": True}}
    bot_id, meeting = runtime.create("google", **auto)
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")
    for name in ("Alice", "Bob"):
        control(runtime.simulator, "google", meeting, action="join", name=name)
    started = time.monotonic()
    partial: dict[str, Any] | None = None
    turns = {"Alice": 0, "Bob": 0}
    while time.monotonic() - started < MEETING_SECONDS:
        for name, audio in (("Alice", "alice.wav"), ("Bob", "bob.wav")):
            say(runtime, meeting, name, audio)
            turns[name] += 1
            time.sleep(2.5)  # a pause: where the bot may cut a chunk
        if partial is None and time.monotonic() - started > MEETING_SECONDS - 60:
            body = runtime.client.get(f"/transcripts/{bot_id}", headers=runtime.account.headers).json()
            if body.get("status") == "processing" and body["segments"]:
                partial = body
    assert partial is not None, "no part of the transcript was ready while the meeting went on"
    assert "quarterly" in partial["text"].lower()

    control(runtime.simulator, "google", meeting, action="end")
    ended = time.monotonic()
    runtime.wait_status(bot_id, "DONE", timeout=60)

    def transcript_done() -> dict[str, Any] | None:
        body = runtime.client.get(f"/transcripts/{bot_id}", headers=runtime.account.headers).json()
        assert body["status"] != "failed", body
        return body if body["status"] == "done" else None

    transcript = wait_for(transcript_done, 90, "the transcript", interval=0.2)
    print(f"\nmeeting end -> transcript done: {time.monotonic() - ended:.1f} s ({MEETING_SECONDS} s meeting)")

    recording = runtime.bot(bot_id)["recording"]
    segments = transcript["segments"]
    outside = [s for s in segments if not 0 <= s["start"] <= s["end"] <= recording["durationSeconds"] + 1]
    assert not outside, (recording["durationSeconds"], outside)
    assert all(a["start"] <= b["start"] for a, b in pairwise(segments))
    script = [SPEECH[f"{name.lower()}.wav"] for _ in range(turns["Alice"]) for name in ("Alice", "Bob")]
    error_rate = jiwer.wer(normalise(" ".join(script)), normalise(transcript["text"]))
    print(f"word error rate over {len(script)} utterances: {error_rate:.3f}")
    assert error_rate <= 0.15, transcript["text"]
    words = [(word, s["speaker"]) for s in segments for word in s["words"]]
    alice, bob = (set(normalise(SPEECH[f"{name}.wav"]).split()) for name in ("alice", "bob"))
    said_by = {word: "Alice" for word in alice - bob} | {word: "Bob" for word in bob - alice}  # words only one says
    known = [(said_by[key], speaker) for word, speaker in words if (key := normalise(word["word"])) in said_by]
    right = sum(1 for truth, speaker in known if truth == speaker)
    print(f"speaker right on {right}/{len(known)} words")
    assert known and right >= 0.9 * len(known)

    def summary_done() -> dict[str, Any] | None:
        body = runtime.client.get(f"/summaries/{bot_id}", headers=runtime.account.headers)
        return body.json() if body.status_code == 200 and body.json()["status"] == "done" else None

    assert wait_for(summary_done, 30, "the automatic summary")["summary"]
