"""Shared fixtures: real SQLite and PostgreSQL databases, Redis, the API app and authenticated clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.db.engine import get_engine
from meetbot.db.tables import metadata
from meetbot.settings import Settings
from tests.support import (
    SeaweedFS,
    empty_postgres_database,
    make_speech,
    make_test_recording,
    running_seaweedfs,
    running_simulator,
)

PG_ADMIN_URL = os.environ.get("MEETBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEETBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database created for this test run and dropped after it."""
    with empty_postgres_database(PG_ADMIN_URL, "meetbot_test") as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'meetbot.db'}"
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test that uses it runs once on SQLite and once on PostgreSQL, on empty tables."""
    url: str = request.getfixturevalue(f"{request.param}_url" if request.param == "sqlite" else "pg_url")
    engine = get_engine(url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    yield url


def make_settings(tmp_path: Path, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": db_url,
        "allow_simulator": True,
        "allow_private_urls": True,  # botImage from the simulator or a local server; webhooks keep their own knob
        "secret_key": "test-secret-key-" + "x" * 32,
        "rate_limit_per_minute": 1000,
        "rate_limit_per_hour": 10000,
        "log_json": False,
        "drain_timeout": 0,  # a fixture's stop() never waits for a call to end (the drain has its own test)
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def services(settings: Settings) -> Services:
    return Services.from_settings(settings)


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services), base_url="http://testserver/api/v1") as test_client:
        yield test_client


@dataclass
class Account:
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register_and_login(client: TestClient, email: str | None = None, password: str = "correct horse 1") -> Account:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post("/auth/register", json={"email": email, "password": password, "name": "Test User"})
    assert response.status_code == 201, response.text
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(email, password, body["accessToken"], body["refreshToken"])


@pytest.fixture
def alice(client: TestClient) -> Account:
    return register_and_login(client)


@pytest.fixture
def bob(client: TestClient) -> Account:
    return register_and_login(client)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech files made with espeak-ng, served by the simulator."""
    return make_speech(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def simulator(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a meeting simulator shared by the session's browser tests."""
    with running_simulator(media_dir, tmp_path_factory.mktemp("simulator")) as base:
        yield base


GOOGLE_BOT = {"meetingInfo": {"platform": "google", "meetingUrl": "https://meet.google.com/abc-defg-hij"}}


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real S3 server (SeaweedFS `weed mini`) for the session, on free ports."""
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs") / "data") as weed:
        yield weed


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that uses it runs once on the local store and once on S3 (a fresh bucket each time)."""
    if request.param == "local":
        return f"file://{tmp_path / 'store'}"
    weed: SeaweedFS = request.getfixturevalue("seaweedfs")
    return weed.server.url(f"meetbot-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def recording_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 s video recording (test picture and tone) in the spool's format."""
    return make_test_recording(tmp_path_factory.mktemp("media") / "recording.mp4")


@pytest.fixture(scope="session")
def audio_recording_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_recording(tmp_path_factory.mktemp("media") / "recording.m4a", video=False)
