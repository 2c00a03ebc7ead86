"""`meetbot fleet` runs the Procfile (release step first) under honcho against PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.support import empty_postgres_database, free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
MEETBOT = str(Path(sys.executable).parent / "meetbot")


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A database with no schema at all: only the fleet's release step (meetbot migrate) can make it usable."""
    with empty_postgres_database(PG_ADMIN_URL, "meetbot_fleet") as url:
        yield url


def fleet_env(tmp_path: Path, database_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "MEETBOT_DATABASE_URL": database_url,
        "MEETBOT_REDIS_URL": REDIS_URL,
        "MEETBOT_DATA_DIR": str(tmp_path),
        "MEETBOT_SECRET_KEY": "fleet-test-secret",
        "MEETBOT_PORT": str(port),
    }


def test_fleet_migrates_then_serves_and_stops_on_sigterm(tmp_path: Path, empty_pg_url: str) -> None:
    port = free_port()
    fleet = subprocess.Popen(
        [MEETBOT, "fleet", "--only", "api", "--procfile", str(REPO / "Procfile")],
        env=fleet_env(tmp_path, empty_pg_url, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            assert fleet.poll() is None, fleet.stdout.read().decode() if fleet.stdout else "fleet exited"
            return False

    try:
        wait_for(ready, 60, "the fleet's API on the Procfile's port", interval=0.3)
        email = f"fleet-{uuid.uuid4().hex[:8]}@example.com"
        registered = httpx.post(
            f"{base}/api/v1/auth/register", json={"email": email, "password": "correct horse 1", "name": "Fleet"}
        )
        assert registered.status_code == 201, registered.text  # the tables exist: the release step ran
        fleet.send_signal(signal.SIGTERM)
        assert fleet.wait(timeout=30) is not None
    finally:
        if fleet.poll() is None:
            os.killpg(fleet.pid, signal.SIGKILL)
            fleet.wait()
    output = fleet.stdout.read().decode() if fleet.stdout else ""
    assert "api.1" in output  # honcho's prefix: the process type came from the Procfile
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/healthz", timeout=2)  # nothing is left listening


def test_fleet_refuses_the_embedded_mode_and_unknown_types(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEETBOT_")}
    embedded = subprocess.run(
        [MEETBOT, "fleet", "--procfile", str(REPO / "Procfile")],
        env={**env, "MEETBOT_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert embedded.returncode == 2
    assert "MEETBOT_REDIS_URL" in embedded.stderr
    unknown = subprocess.run(
        [MEETBOT, "fleet", "--only", "nope", "--procfile", str(REPO / "Procfile")],
        env={**env, "MEETBOT_DATA_DIR": str(tmp_path), "MEETBOT_REDIS_URL": REDIS_URL},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2
    assert "nope" in unknown.stderr
