"""`meetbot api --workers 2`: two processes on one port, /metrics sums them, SIGTERM stops both losing nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from meetbot.db import get_engine, migrate
from meetbot.db.tables import api_request_logs, users
from tests.conftest import PG_ADMIN_URL
from tests.support import api_healthy, clean_env, empty_postgres_database, free_port, wait_for


@pytest.fixture
def scratch_pg_url() -> Iterator[str]:
    with empty_postgres_database(PG_ADMIN_URL, "meetbot_api_workers") as url:
        migrate(url)
        yield url


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def scrape(base: str) -> list[Sample]:
    """/metrics (loopback: no token needed), from whichever process answers."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def per_process_requests(samples: list[Sample]) -> dict[int, float]:
    """pid → requests that process answered."""
    return {int(s.labels["pid"]): s.value for s in samples if s.name == "meetbot_api_process_requests"}


def bot_lists_counted(samples: list[Sample]) -> float:
    """GET …/bots answered 200, summed over the API processes."""
    return sum(
        s.value
        for s in samples
        if s.name == "meetbot_http_requests_total"
        and s.labels["method"] == "GET"
        and s.labels["route"].endswith("/bots")
        and s.labels["status"] == "200"
    )


def test_two_api_processes_answer_and_stop_on_sigterm_keeping_the_request_log(
    tmp_path: Path, scratch_pg_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        tmp_path / "data",
        MEETBOT_DATABASE_URL=scratch_pg_url,
        MEETBOT_SECRET_KEY="api-workers-test-secret-" + "x" * 24,
        MEETBOT_RATE_LIMIT_PER_MINUTE="100000",
        MEETBOT_RATE_LIMIT_PER_HOUR="1000000",
        MEETBOT_REQUEST_LOG_FLUSH_SECONDS="1",  # the longest wait: rows of the last second are still in memory
    )
    log_path = tmp_path / "api.log"  # a file, not a pipe: a full pipe would block the processes' logging
    with log_path.open("w") as log_file:
        api = subprocess.Popen(
            [sys.executable, "-m", "meetbot.cli", "api", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    children: set[int] = set()
    try:
        wait_for(lambda: api_healthy(base), 60, "the API")
        email = f"workers-{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": email, "password": "correct horse 1", "name": "Workers"}
        assert httpx.post(f"{base}/api/v1/auth/register", json=body).status_code == 201
        login = {"email": email, "password": body["password"]}
        token = httpx.post(f"{base}/api/v1/auth/login", json=login).json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        sent = 0

        def list_bots(_: int) -> int:
            return httpx.get(f"{base}/api/v1/bots", headers=headers, timeout=10).status_code  # a connection each

        def both_answered() -> dict[int, float] | None:
            nonlocal sent
            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(list_bots, range(16))) == {200}
            sent += 16
            samples = scrape(base)
            assert bot_lists_counted(samples) == sent  # one scrape counts both processes' requests
            served = {pid: count for pid, count in per_process_requests(samples).items() if count > 0}
            return served if len(served) >= 2 else None

        served = wait_for(both_answered, 30, "requests answered by two processes", interval=0.2)
        children = {child.pid for child in psutil.Process(api.pid).children()}
        print(f"\nrequests answered per API process (pid: count): {served}")
        assert len(served) == 2 and set(served) <= children  # two workers, each a child of `meetbot api`

        # A burst, then SIGTERM at once: its rows are still buffered in the two processes.
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(list_bots, range(40))) == {200}
        sent += 40
        stopped = time.monotonic()
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=30)
        elapsed = time.monotonic() - stopped
        left = [pid for pid in served if running(pid)]
    finally:
        for pid in [api.pid, *children]:
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()
        api.wait()
    stderr = log_path.read_text()
    print(f"SIGTERM -> both API processes stopped: {elapsed:.1f} s")
    assert api.returncode == 0, stderr[-3000:]
    assert elapsed < 30
    assert not left, f"API worker processes still running after their parent exited: {left}"
    assert stderr.count("api worker process started") == 2

    with get_engine(scratch_pg_url).connect() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.email == email)).scalar_one()
        logged = conn.execute(
            sa.select(sa.func.count()).where(
                api_request_logs.c.user_id == user_id,
                api_request_logs.c.method == "GET",
                api_request_logs.c.path.like("%/bots"),
            )
        ).scalar_one()
    assert logged == sent  # every request served before SIGTERM has its request-log row
