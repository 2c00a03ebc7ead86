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
from tests.support import wait_for
from tests.test_recordings_api import Recorded

RECOVERY_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/13"


@pytest.fixture
def long_speech(media_dir: Path, tmp_path: Path) -> Path:
    """About a minute of two voices taking turns: long enough to kill its transcription half way."""
    inputs = []
    for _ in range(6):
        inputs += ["-i", str(media_dir / "alice.wav"), "-i", str(media_dir / "bob.wav")]
    mix = "".join(f"[{i}:a]" for i in range(12)) + "concat=n=12:v=0:a=1,aresample=48000[a]"
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


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
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
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def api(recovery_settings: Settings) -> Iterator[Recorded]:
    services = Services.from_settings(recovery_settings)
    with TestClient(create_app(recovery_settings, services), base_url="http://testserver/api/v1") as client:
        yield Recorded(client, services)


def test_a_killed_transcription_worker_s_job_is_redone_once(
    api: Recorded, recovery_settings: Settings, long_speech: Path
) -> None:
    account = register_and_login(api.client)
    bot_id = api.finished_bot(account, long_speech)
    first = start_worker(recovery_settings)
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

        second = start_worker(recovery_settings)
        wait_for(lambda: state() == "done", 120, "another worker to redo the job", interval=0.2)
        body = api.client.get(f"/transcripts/{bot_id}", headers=account.headers).json()
        assert body["text"].lower().count("quarterly") >= 3, body["text"]  # the whole minute, not a part
        events = api.client.get(f"/bots/{bot_id}/events", params={"type": "TRANSCRIPT_READY"}, headers=account.headers)
        assert events.json()["total"] == 1
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
