"""The request log off the request path: batches within a second, and nothing lost when the API stops cleanly."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from api.app import create_app
from api.request_log import RequestLogBuffer, request_log_row
from api.services import Services
from meetbot.db import get_engine, migrate
from meetbot.db.tables import api_keys, api_request_logs
from meetbot.domain import accounts
from tests.conftest import make_settings
from tests.support import clean_env, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


def user_with_key(db_url: str) -> tuple[int, int, str]:
    migrate(db_url)
    with get_engine(db_url).begin() as conn:
        user = accounts.create_user(conn, f"log-{time.time_ns()}@example.com", "a long password", "Log")
        row, key = accounts.create_api_key(conn, user.id, "logs")
    return user.id, row.id, key


def logged_rows(db_url: str, user_id: int) -> list[sa.Row]:
    with get_engine(db_url).connect() as conn:
        where = api_request_logs.c.user_id == user_id
        return list(conn.execute(sa.select(api_request_logs).where(where).order_by(api_request_logs.c.id)).all())


@contextlib.contextmanager
def api_process(tmp_path: Path, db_url: str, **extra: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = clean_env(tmp_path / "api-data", MEETBOT_DATABASE_URL=db_url, MEETBOT_SECRET_KEY="s" * 48, **extra)
    log = (tmp_path / "api.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "meetbot.cli", "api", "--port", str(port)], env=env, stdout=log, stderr=log, cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, (tmp_path / "api.log").read_text()
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{base}/healthz").status_code == 200
        return False

    try:
        wait_for(healthy, 60, "the API")
        yield proc, f"{base}/api/v1"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_a_clean_stop_writes_every_buffered_row(tmp_path: Path, db_url: str) -> None:
    user_id, key_id, key = user_with_key(db_url)
    # The longest flush interval: the rows of the last second are still in memory when SIGTERM comes.
    with api_process(tmp_path, db_url, MEETBOT_REQUEST_LOG_FLUSH_SECONDS="1") as (proc, base):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers) as client:
            statuses = [client.get("/bots").status_code for _ in range(40)]
            statuses.append(client.get("/bots/999").status_code)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert statuses == [200] * 40 + [404]
    rows = logged_rows(db_url, user_id)
    assert len(rows) == 41
    assert [(row.method, row.path, row.status_code) for row in rows[-2:]] == [
        ("GET", "/api/v1/bots", 200),
        ("GET", "/api/v1/bots/999", 404),
    ]
    assert all(row.api_key_id == key_id for row in rows)
    with get_engine(db_url).connect() as conn:
        last_used = conn.execute(sa.select(api_keys.c.last_used_at).where(api_keys.c.id == key_id)).scalar_one()
    assert last_used is not None and abs(last_used.timestamp() - rows[-1].created_at.timestamp()) < 1


def test_another_api_process_shows_the_rows_within_a_second(tmp_path: Path, db_url: str) -> None:
    """Requests to one API process appear in the request log read through another one within about a second."""
    user_id, _, key = user_with_key(db_url)
    headers = {"Authorization": f"Bearer {key}"}
    writer_settings = make_settings(tmp_path / "writer", db_url, request_log_flush_seconds=1)
    reader_settings = make_settings(tmp_path / "reader", db_url)
    writer_app = create_app(writer_settings, Services.from_settings(writer_settings))
    reader_app = create_app(reader_settings, Services.from_settings(reader_settings))
    with (
        TestClient(writer_app, base_url="http://testserver/api/v1") as writer,
        TestClient(reader_app, base_url="http://testserver/api/v1") as reader,
    ):
        for n in range(5):
            assert writer.get(f"/bots?page={n + 1}", headers=headers).status_code == 200
        sent = time.monotonic()
        seen: list[str] = []
        while time.monotonic() - sent < 3:
            logs = reader.get("/users/me/api-logs", params={"page_size": 50}, headers=headers).json()["logs"]
            seen = [entry["path"] for entry in logs if entry["path"] == "/api/v1/bots"]
            if len(seen) == 5:
                break
            time.sleep(0.05)
        shown_after = time.monotonic() - sent
    assert len(seen) == 5, seen
    assert shown_after <= 1.5
    assert len(logged_rows(db_url, user_id)) >= 5 + 1  # and the reader's own requests


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rows_a_refused_flush_held_are_written_by_the_next(tmp_path: Path, db_url: str) -> None:
    """A batch the database refuses stays buffered (within its bound) and goes out with the next flush."""
    user_id, _, key = user_with_key(db_url)
    settings = make_settings(tmp_path, db_url)
    services = Services.from_settings(settings)
    with TestClient(create_app(settings, services), base_url="http://testserver/api/v1") as client:
        engine = services.request_log.engine
        services.request_log.engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
        for _ in range(3):
            assert client.get("/bots", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        with pytest.raises(sa.exc.OperationalError):
            services.request_log.flush()
        assert services.request_log.pending == 3
        services.request_log.engine = engine
    assert len(logged_rows(db_url, user_id)) == 3


def test_a_row_whose_user_is_gone_does_not_cost_the_batch_its_other_rows(tmp_path: Path, db_url: str) -> None:
    user_id, key_id, _ = user_with_key(db_url)
    buffer = RequestLogBuffer(get_engine(db_url), flush_seconds=1, max_pending=1000)
    for user in (user_id, 2**31 - 1, user_id):  # the second names no user: the foreign key refuses it
        buffer.record(request_log_row(user, key_id if user == user_id else None, "GET", "/api/v1/bots", 200, 1.5))
    buffer.close()
    assert buffer.pending == 0
    rows = logged_rows(db_url, user_id)
    assert [(row.user_id, row.api_key_id, row.path) for row in rows] == [(user_id, key_id, "/api/v1/bots")] * 2
