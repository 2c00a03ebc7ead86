"""Production shape: the API on PostgreSQL + Redis, bots run by a separate `meetbot worker` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from tests.conftest import REDIS_URL, make_settings, register_and_login
from tests.support import control, wait_for
from tests.test_bot_runtime import Runtime, loud_seconds, probe

pytestmark = pytest.mark.browser
FLEET_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/14"


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str, simulator: str) -> Iterator[tuple[Runtime, subprocess.Popen[str]]]:
    redis.Redis.from_url(FLEET_REDIS_URL).flushdb()
    settings = make_settings(tmp_path, pg_url, redis_url=FLEET_REDIS_URL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETBOT_")}
    env.update(
        MEETBOT_DATABASE_URL=pg_url,
        MEETBOT_REDIS_URL=FLEET_REDIS_URL,
        MEETBOT_DATA_DIR=str(settings.data_dir),
        MEETBOT_SECRET_KEY=settings.secret_key or "",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "meetbot.cli", "worker", "--queues", "bots,maintenance", "--bots-per-process", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = TestClient(create_app(settings, Services.from_settings(settings)))
    client.base_url = client.base_url.join("/api/v1/")
    try:
        yield Runtime(client, register_and_login(client), settings, simulator), worker
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()


def test_redis_broker_separate_worker_kill_and_sigterm(fleet: tuple[Runtime, subprocess.Popen[str]]) -> None:
    runtime, worker = fleet
    # Kill through Redis pub/sub: the API and the bot are in different processes.
    killed_bot, meeting = runtime.create("google")
    runtime.deploy(killed_bot)
    runtime.wait_status(killed_bot, "IN_CALL", timeout=40)
    control(runtime.simulator, "google", meeting, action="speak", name="Alice", audio="alice.wav")
    time.sleep(3.5)
    started = time.monotonic()
    assert runtime.client.post(f"/bots/{killed_bot}/kill", headers=runtime.account.headers).status_code == 200
    runtime.wait_status(killed_bot, "CALL_ENDED", timeout=5)
    assert time.monotonic() - started <= 5
    bot = runtime.wait_status(killed_bot, "DONE", timeout=20)
    assert probe(runtime.recording_file(bot))["streams"] == {"audio", "video"}
    assert loud_seconds(runtime.recording_file(bot)) >= 1.0

    # SIGTERM to the worker while a bot is in a call: it leaves, keeps the recording, and the process exits 0.
    bot_id, _ = runtime.create("zoom")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL", timeout=40)
    time.sleep(2)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr[-3000:]
    assert "worker stopped" in stderr
    bot = wait_for(lambda: (b := runtime.bot(bot_id))["status"] == "DONE" and b, 10, "the bot to finish")
    assert ("CALL_ENDED", "worker_shutdown") in runtime.status_path(bot_id)
    assert probe(runtime.recording_file(bot))["duration"] >= 1.5
