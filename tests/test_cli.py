"""The `meetbot` command as a newcomer uses it: up on embedded defaults, migrate, users and api-keys."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.settings import Settings
from tests.support import api_healthy, clean_env, free_port, start_meetbot_up, wait_for


def meetbot(*args: str, env: dict[str, str], timeout: float = 60, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meetbot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


def test_up_prints_a_working_key_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(tmp_path / "data")
    proc, key = start_meetbot_up(env, port, expect_key=True, capture_stderr=True)
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        created = httpx.post(
            f"{base}/api/v1/bots",
            json={"meetingInfo": {"platform": "google", "meetingUrl": "https://meet.google.com/abc-defg-hij"}},
            headers=headers,
        )
        assert created.status_code == 201 and created.json()["status"] == "READY_TO_DEPLOY"
        assert httpx.get(f"{base}/api/v1/bots", headers=headers).json()["total"] == 1
        assert httpx.get(f"{base}/docs").status_code == 200
        assert (tmp_path / "data" / "meetbot.db").exists() and (tmp_path / "data" / "secret_key").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "worker stopped" in stderr
    assert key not in stderr  # the key is shown once on stdout, never logged


def test_users_and_api_keys_commands(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data")
    assert meetbot("migrate", env=env).returncode == 0
    create = ("users", "create", "--email", "ops@example.com", "--password-stdin")
    created = meetbot(*create, env=env, stdin="s3cret-pass\n")
    assert created.returncode == 0 and "ops@example.com" in created.stdout
    duplicate = meetbot(*create, env=env, stdin="other-pass\n")
    assert duplicate.returncode == 1 and "already registered" in duplicate.stderr
    key = meetbot("api-keys", "create", "--email", "ops@example.com", env=env)
    assert key.returncode == 0 and key.stdout.strip().startswith("mb_")
    unknown = meetbot("api-keys", "create", "--email", "nobody@example.com", env=env)
    assert unknown.returncode == 1


def test_users_create_takes_the_password_from_stdin_never_argv(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data")
    assert meetbot("migrate", env=env).returncode == 0
    on_argv = meetbot("users", "create", "--email", "argv@example.com", "--password", "s3cret-pass", env=env)
    assert on_argv.returncode == 2 and "--password" in on_argv.stderr  # argparse: no such option
    too_short = meetbot("users", "create", "--email", "short@example.com", "--password-stdin", env=env, stdin="abc\n")
    assert too_short.returncode == 2 and "8 to 256" in too_short.stderr
    # Piped without the flag (stdin is not a terminal): read from stdin as well, never prompted for.
    piped = meetbot("users", "create", "--email", "piped@example.com", env=env, stdin="piped pass 1\n")
    assert piped.returncode == 0, piped.stderr
    settings = Settings(data_dir=tmp_path / "data")  # the API of that data dir: log in with what was piped
    with TestClient(create_app(settings, Services.from_settings(settings)), base_url="http://t/api/v1") as client:
        ok = client.post("/auth/login", json={"email": "piped@example.com", "password": "piped pass 1"})
        assert ok.status_code == 200, ok.text
        for email in ("argv@example.com", "short@example.com"):
            assert client.post("/auth/login", json={"email": email, "password": "s3cret-pass"}).status_code == 401


def test_worker_refuses_to_start_without_redis(tmp_path: Path) -> None:
    result = meetbot("worker", env=clean_env(tmp_path / "data"))
    assert result.returncode == 2 and "MEETBOT_REDIS_URL" in result.stderr


@pytest.mark.parametrize("model", ["no-such-model", "/nonexistent/whisper-model"])
def test_a_transcriber_with_a_model_it_does_not_have_says_so_at_start(tmp_path: Path, model: str) -> None:
    env = clean_env(tmp_path / "data", MEETBOT_REDIS_URL="redis://127.0.0.1:6379/11", MEETBOT_WHISPER_MODEL=model)
    result = meetbot("worker", "--queues", "transcribe", env=env)
    assert result.returncode == 2 and model in result.stderr


def test_simulator_command_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "meetbot.cli", "simulator", "--port", str(port)],
        env=clean_env(tmp_path / "data"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: api_healthy(f"http://127.0.0.1:{port}"), 30, "the simulator")
        state = httpx.get(f"http://127.0.0.1:{port}/control/zoom/123456789").json()
        assert state["meetingId"] == "123456789" and state["ended"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-2000:]
