"""Transcript and summary jobs through the API, run by a real worker with faster-whisper on real speech."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.conftest import GOOGLE_BOT, Account, make_settings, register_and_login
from tests.support import wait_for
from tests.test_recordings_api import Recorded
from workers.process import WorkerProcess


@pytest.fixture(scope="module")
def speech_recording(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Alice then Bob speaking (espeak-ng), as a video recording of the spool's format."""
    out = tmp_path_factory.mktemp("speech") / "recording.mp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(media_dir / "alice.wav"), "-i", str(media_dir / "bob.wav")]
    cmd += ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=12"]
    cmd += ["-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1,aresample=48000[a]", "-map", "2:v", "-map", "[a]"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    cmd += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def jobs_settings(tmp_path_factory: pytest.TempPathFactory, sqlite_url: str) -> Settings:
    tmp = tmp_path_factory.mktemp("jobs")
    return make_settings(tmp, sqlite_url, storage_url=f"file://{tmp / 'store'}", whisper_cpu_threads=2)


@pytest.fixture(scope="module")
def worked(jobs_settings: Settings) -> Iterator[Recorded]:
    """The API and a worker consuming transcribe and summarize, on one in-process broker."""
    broker = build_broker(jobs_settings)
    workers = WorkerProcess(jobs_settings, broker, queues={"transcribe", "summarize"})
    workers.start()
    services = Services.from_settings(jobs_settings, broker=broker)
    try:
        with TestClient(create_app(jobs_settings, services), base_url="http://testserver/api/v1") as client:
            yield Recorded(client, services)
    finally:
        workers.stop()


@pytest.fixture(scope="module")
def account(worked: Recorded) -> Account:
    return register_and_login(worked.client)


def wait_job(worked: Recorded, account: Account, path: str, timeout: float = 90) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        state = worked.client.get(f"{path}/status", headers=account.headers).json()
        return state if state["status"] in ("done", "failed") else None

    return wait_for(finished, timeout, f"{path} to finish", interval=0.3)


def test_transcribe_then_read_every_format_then_summarize(
    worked: Recorded, account: Account, speech_recording: Path
) -> None:
    client = worked.client
    bot_id = worked.finished_bot(account, speech_recording)
    started = client.post(f"/transcripts/{bot_id}/transcribe", json={"language": "en"}, headers=account.headers)
    assert started.status_code == 202 and started.json()["status"] in ("queued", "processing")
    assert wait_job(worked, account, f"/transcripts/{bot_id}")["status"] == "done"

    body = client.get(f"/transcripts/{bot_id}", headers=account.headers).json()
    assert body["status"] == "done" and body["botId"] == bot_id and body["model"]
    text = body["text"].lower()
    assert "alice" in text and "quarterly" in text
    assert all(s["words"] and s["start"] < s["end"] for s in body["segments"])
    assert client.get(f"/recordings/{bot_id}/transcription", headers=account.headers).json() == body
    assert client.get(f"/recordings/{bot_id}", headers=account.headers).json()["hasTranscript"] is True

    for fmt, content_type, marker in (
        ("txt", "text/plain", "quarterly"),
        ("srt", "application/x-subrip", " --> "),
        ("vtt", "text/vtt", "WEBVTT"),
    ):
        rendered = client.get(f"/transcripts/{bot_id}", params={"format": fmt}, headers=account.headers)
        assert rendered.status_code == 200 and rendered.headers["content-type"].startswith(content_type), fmt
        assert marker in rendered.text, fmt
    bad = client.get(f"/transcripts/{bot_id}", params={"format": "doc"}, headers=account.headers)
    assert bad.status_code == 422

    usage = client.get("/users/me/usage", headers=account.headers).json()
    assert usage["transcribedMinutes"] > 0.1

    started = client.post(f"/summaries/{bot_id}/summarize", json={"style": "detailed"}, headers=account.headers)
    assert started.status_code == 202
    assert wait_job(worked, account, f"/summaries/{bot_id}", 30)["status"] == "done"
    summary = client.get(f"/summaries/{bot_id}", headers=account.headers).json()
    assert summary["summary"] and summary["model"] == "extractive"
    assert client.get(f"/recordings/{bot_id}", headers=account.headers).json()["hasSummary"] is True
    events = client.get(f"/bots/{bot_id}/events", params={"page_size": 100}, headers=account.headers).json()
    types = [event["type"] for event in events["events"]]
    assert "TRANSCRIPT_READY" in types and "SUMMARY_READY" in types

    assert client.delete(f"/summaries/{bot_id}", headers=account.headers).status_code == 204
    assert client.get(f"/summaries/{bot_id}", headers=account.headers).status_code == 404
    assert client.delete(f"/transcripts/{bot_id}", headers=account.headers).status_code == 204
    gone = client.get(f"/transcripts/{bot_id}", headers=account.headers)
    assert gone.status_code == 404 and gone.json() == {"detail": "Transcript not found"}


def test_automatic_transcript_and_summary_after_the_recording(
    worked: Recorded, account: Account, speech_recording: Path
) -> None:
    auto = {"transcription": {"auto": True}, "summary": {"auto": True}}
    bot_id = worked.finished_bot(account, speech_recording, **auto)  # stored as a bot's worker stores it
    assert wait_job(worked, account, f"/transcripts/{bot_id}")["status"] == "done"
    assert wait_job(worked, account, f"/summaries/{bot_id}", 30)["status"] == "done"


def test_jobs_refuse_what_cannot_be_done(
    worked: Recorded, account: Account, speech_recording: Path, recording_file: Path
) -> None:
    client = worked.client
    bot = client.post("/bots", json=GOOGLE_BOT, headers=account.headers).json()["id"]
    missing = client.post(f"/transcripts/{bot}/transcribe", json={}, headers=account.headers)
    assert missing.status_code == 404 and missing.json() == {"detail": "Recording not found"}

    silent = worked.finished_bot(account, recording_file)  # a tone, no speech
    assert client.post(f"/summaries/{silent}/summarize", json={}, headers=account.headers).status_code == 409
    assert client.post(f"/transcripts/{silent}/transcribe", json={}, headers=account.headers).status_code == 202
    state = wait_job(worked, account, f"/transcripts/{silent}")
    assert state["status"] == "failed" and "speech" in state["error"].lower()
    not_ready = client.get(f"/transcripts/{silent}", params={"format": "srt"}, headers=account.headers)
    assert not_ready.status_code == 409

    stranger = register_and_login(client)
    for method, path in [("GET", f"/transcripts/{silent}"), ("GET", f"/transcripts/{silent}/status"),
                         ("DELETE", f"/transcripts/{silent}"), ("POST", f"/transcripts/{silent}/transcribe"),
                         ("POST", f"/summaries/{silent}/summarize"), ("GET", f"/summaries/{silent}")]:  # fmt: skip
        response = client.request(method, path, headers=stranger.headers, json={} if method == "POST" else None)
        assert response.status_code == 404, (method, path)

    unknown = client.post(f"/transcripts/{silent}/transcribe", json={"model": "no-such-model"}, headers=account.headers)
    assert unknown.status_code == 202
    state = wait_job(worked, account, f"/transcripts/{silent}", 30)
    assert state["status"] == "failed" and "no-such-model" in state["error"]
