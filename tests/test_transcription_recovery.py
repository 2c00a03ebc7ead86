"""A transcription worker killed in the middle of a job: on Redis, another worker redoes it and it finishes once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.settings import Settings
from tests.conftest import REDIS_URL, make_settings, register_and_login
from tests.support import speak, wait_for
from tests.test_recordings_api import Recorded

RECOVERY_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/13"


# A meeting's worth of different sentences: whisper treats text that repeats within its 30-second window as a
# hallucination loop (compression-ratio check) and falls back to random sampling, so looped clips transcribe by chance.
AGENDA = (
    "Good morning. Let us start with the quarterly review of the sales team.",
    "Revenue grew in every region, and the new office in Lisbon opened on time.",
    "The quarterly budget for marketing stays the same as last spring.",
    "Engineering shipped the mobile release two weeks before the deadline.",
    "Support tickets fell by a third after the help center was rewritten.",
    "Hiring is slower than planned, so two open roles move to the next quarter.",
    "Our quarterly target for new customers is still within reach.",
    "Finally, the offsite is in October. Please book your travel this week.",
)


@pytest.fixture
def long_speech(tmp_path: Path) -> Path:
    """Half a minute of two voices taking turns, each sentence different."""
    inputs = []
    for index, sentence in enumerate(AGENDA):
        clip = speak(sentence, "bob.wav" if index % 2 else "alice.wav", tmp_path / f"sentence{index}.wav")
        inputs += ["-i", str(clip)]
    mix = "".join(f"[{i}:a]" for i in range(len(AGENDA))) + f"concat=n={len(AGENDA)}:v=0:a=1,aresample=48000[a]"
    out = tmp_path / "long.m4a"
    cmd = ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", mix, "-map", "[a]", "-c:a", "aac"]
    subprocess.run([*cmd, "-movflags", "+empty_moov+default_base_moof", "-frag_duration", "1000000", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return out


@pytest.fixture
def recovery_settings(tmp_path: Path) -> Settings:
    redis.Redis.from_url(RECOVERY_REDIS_URL).flushdb()
    db_url = f"sqlite:///{tmp_path / 'meetbot.db'}"
    migrate(db_url)
    return make_settings(
        tmp_path, db_url, redis_url=RECOVERY_REDIS_URL, broker_heartbeat_timeout_ms=2000,
        broker_maintenance_chance=200_000,
    )  # fmt: skip


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETBOT_")}
    env.update(
        MEETBOT_DATABASE_URL=settings.effective_database_url,
        MEETBOT_REDIS_URL=settings.redis_url or "",
        MEETBOT_DATA_DIR=str(settings.data_dir),
        MEETBOT_SECRET_KEY=settings.secret_key or "",
        MEETBOT_BROKER_HEARTBEAT_TIMEOUT_MS=str(settings.broker_heartbeat_timeout_ms),
        MEETBOT_BROKER_MAINTENANCE_CHANCE=str(settings.broker_maintenance_chance),
        MEETBOT_WHISPER_BATCH_SIZE="0",  # sequential: the job runs long enough to be caught half way
    )
    command = [sys.executable, "-m", "meetbot.cli", "worker", "--queues", "transcribe"]
    with log.open("ab") as sink:  # read back when the test fails: what each worker did, with times
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)


@pytest.fixture
def api(recovery_settings: Settings) -> Iterator[Recorded]:
    services = Services.from_settings(recovery_settings)
    with TestClient(create_app(recovery_settings, services), base_url="http://testserver/api/v1") as client:
        yield Recorded(client, services)


def test_a_killed_transcription_worker_s_job_is_redone_once(
    api: Recorded, recovery_settings: Settings, long_speech: Path, tmp_path: Path
) -> None:
    worker_log = tmp_path / "workers.log"
    account = register_and_login(api.client)
    bot_id = api.finished_bot(account, long_speech)
    first = start_worker(recovery_settings, worker_log)
    second: subprocess.Popen[bytes] | None = None
    try:
        started = api.client.post(f"/transcripts/{bot_id}/transcribe", json={}, headers=account.headers)
        assert started.status_code == 202

        def state() -> str:
            return str(api.client.get(f"/transcripts/{bot_id}/status", headers=account.headers).json()["status"])

        wait_for(lambda: state() == "processing", 60, "the first worker to take the job", interval=0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert state() == "processing"  # a dead worker's job is not lost, nor failed

        second = start_worker(recovery_settings, worker_log)
        try:
            wait_for(lambda: state() == "done", 120, "another worker to redo the job", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the workers logged:\n{worker_log.read_text()[-6000:]}") from None
        body = api.client.get(f"/transcripts/{bot_id}", headers=account.headers).json()
        text = body["text"].lower()
        assert "sales team" in text and "travel this week" in text, text  # the whole recording, not a part
        assert text.count("quarterly") >= 3, text
        events = api.client.get(f"/bots/{bot_id}/events", params={"type": "TRANSCRIPT_READY"}, headers=account.headers)
        assert events.json()["total"] == 1
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
