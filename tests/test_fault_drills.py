"""Fault drills against real servers of the test's own: PostgreSQL and Redis restarted under a running API and bot."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.db.engine import get_engine
from meetbot.domain import accounts
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.conftest import make_settings, register_and_login
from tests.support import api_healthy, clean_env, control, free_port, wait_for
from tests.test_bot_runtime import Runtime, probe
from workers.process import WorkerProcess


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb'd in a temp folder), to stop and start at will."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = bins[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="meetbot-pg-drill-"))
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres")

    def _run(self, tool: str, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, str(self.bin / tool), *args], check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.root / "data"), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A Redis server of this test's own that keeps its data in an append-only file, as production's does."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="meetbot-redis-drill-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)]
        cmd += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self._answers(), 10, "the drill's Redis")

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.proc.wait(timeout=10)
            self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def bot_stack(settings: Settings, simulator: str) -> Iterator[Runtime]:
    """The API in-process and a bot worker in this process, on the given settings' database and broker."""
    broker = build_broker(settings)
    workers = WorkerProcess(settings, broker, queues={"bots"})
    workers.start()
    try:
        client = TestClient(create_app(settings, Services.from_settings(settings, broker=broker)))
        client.base_url = client.base_url.join("/api/v1/")
        yield Runtime(client, register_and_login(client), settings, simulator)
    finally:
        workers.stop()


def retrying_until_ok(client: TestClient, path: str, headers: dict[str, str], timeout: float) -> float:
    """Seconds until GET path answers 200; every answer before that is a 503 with the JSON error shape."""
    started = time.monotonic()
    while True:
        response = client.get(path, headers=headers)
        if response.status_code == 200:
            return time.monotonic() - started
        assert response.status_code == 503, response.text
        assert set(response.json()) == {"detail"}
        assert time.monotonic() - started < timeout, f"{path} did not recover within {timeout} s"
        time.sleep(0.2)


def test_the_api_answers_503_while_postgresql_is_down_and_recovers_by_itself(
    postgres: PrivatePostgres, tmp_path: Path
) -> None:
    migrate(postgres.url)
    settings = make_settings(tmp_path, postgres.url)
    with TestClient(create_app(settings, Services.from_settings(settings))) as client:
        client.base_url = client.base_url.join("/api/v1/")
        account = register_and_login(client)
        meeting = {"meetingInfo": {"platform": "google", "meetingUrl": "https://meet.google.com/abc-defg-hij"}}
        assert client.post("/bots", json=meeting, headers=account.headers).status_code == 201

        postgres.stop()
        for method, path, body in (("GET", "/bots", None), ("POST", "/bots", meeting), ("GET", "/bots/1", None)):
            response = client.request(method, path, json=body, headers=account.headers)
            assert response.status_code == 503, (method, path, response.text)
            assert response.json() == {"detail": "The database is unavailable; try again shortly"}
            assert response.headers["Retry-After"] == "5"
        login = client.post("/auth/login", json={"email": account.email, "password": account.password})
        assert login.status_code == 503, login.text

        postgres.start()
        recovered = retrying_until_ok(client, "/bots", account.headers, timeout=10)
        print(f"\nPostgreSQL back -> API answering: {recovered:.2f} s")
        assert client.get("/bots", headers=account.headers).json()["total"] == 1  # nothing lost, nothing doubled


@pytest.mark.browser
def test_a_bot_waits_out_a_postgresql_restart_and_loses_no_event(
    postgres: PrivatePostgres, tmp_path: Path, simulator: str
) -> None:
    migrate(postgres.url)
    with bot_stack(make_settings(tmp_path, postgres.url, bots_per_process=1), simulator) as runtime:
        bot_id, meeting = runtime.create("google")
        runtime.deploy(bot_id)
        runtime.wait_status(bot_id, "IN_CALL", timeout=40)
        control(simulator, "google", meeting, action="speak", name="Alice", audio="alice.wav")
        time.sleep(2)

        postgres.stop()
        control(simulator, "google", meeting, action="end")  # the bot leaves while its database is down
        time.sleep(4)
        postgres.start()

        bot = runtime.wait_status(bot_id, "DONE", timeout=60)
        assert runtime.status_path(bot_id)[-2:] == [("CALL_ENDED", "meeting_ended"), ("DONE", "meeting_ended")]
        types = [event["type"] for event in runtime.events(bot_id)]
        assert types.count("RECORDING_READY") == 1
        assert probe(runtime.recording_file(bot))["streams"] == {"audio", "video"}


@pytest.mark.browser
def test_a_redis_restart_loses_no_queued_deploy_and_everyone_reconnects(
    private_redis: PrivateRedis, pg_url: str, tmp_path: Path, simulator: str
) -> None:
    settings = make_settings(tmp_path, pg_url, redis_url=private_redis.url, bots_per_process=1)
    with bot_stack(settings, simulator) as runtime:
        client = runtime.client
        first, first_meeting = runtime.create("google")
        runtime.deploy(first)
        runtime.wait_status(first, "IN_CALL", timeout=40)
        queued, _ = runtime.create("zoom")
        runtime.deploy(queued)  # the only slot is taken: this deploy waits in Redis
        time.sleep(1)
        assert runtime.bot(queued)["status"] == "DEPLOYING"

        private_redis.stop()
        response = client.get("/bots", headers=runtime.account.headers)
        assert response.status_code in (200, 503), response.text  # served, or a clear 503; never a 500
        private_redis.start()
        back = time.monotonic()
        recovered = retrying_until_ok(client, "/bots", runtime.account.headers, timeout=10)

        control(simulator, "google", first_meeting, action="end")  # frees the slot
        runtime.wait_status(first, "DONE", timeout=30)
        runtime.wait_status(queued, "IN_CALL", timeout=40)  # the deploy survived the restart (append-only file)
        print(f"\nRedis back -> API answering {recovered:.2f} s, queued bot in call {time.monotonic() - back:.1f} s")
        assert client.post(f"/bots/{queued}/kill", headers=runtime.account.headers).status_code == 200
        runtime.wait_status(queued, "CALL_ENDED", timeout=10)


def test_500_concurrent_requests_from_10_keys_across_2_api_processes_get_exactly_their_limit(
    private_redis: PrivateRedis, pg_url: str, tmp_path: Path
) -> None:
    limit, per_key = 20, 50
    keys = []
    with get_engine(pg_url).begin() as conn:
        for n in range(10):
            user = accounts.create_user(conn, f"drill-{uuid.uuid4().hex[:8]}-{n}@example.com", "drill-password", "D")
            keys.append(accounts.create_api_key(conn, user.id, "drill")[1])
    env = clean_env(
        tmp_path / "data",
        MEETBOT_DATABASE_URL=pg_url,
        MEETBOT_REDIS_URL=private_redis.url,
        MEETBOT_SECRET_KEY="drill-secret-" + "x" * 32,
        MEETBOT_RATE_LIMIT_PER_MINUTE=str(limit),
    )
    ports = [free_port(), free_port()]
    apis = [
        subprocess.Popen(
            [sys.executable, "-m", "meetbot.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_for(lambda port=port: api_healthy(f"http://127.0.0.1:{port}"), 30, "an API process")

        async def one(http: httpx.AsyncClient, key: str, n: int) -> tuple[str, int]:
            url = f"http://127.0.0.1:{ports[n % 2]}/api/v1/bots"  # each key's requests split over both processes
            response = await http.get(url, headers={"Authorization": f"Bearer {key}"})
            return key, response.status_code

        async def flood() -> list[tuple[str, int]]:
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:
                return await asyncio.gather(*(one(http, key, n) for key in keys for n in range(per_key)))

        started = time.monotonic()
        answers = asyncio.run(flood())
        took = time.monotonic() - started
        served = Counter(key for key, status in answers if status == 200)
        limited = Counter(key for key, status in answers if status == 429)
        print(
            f"\n{len(answers)} requests over 2 API processes in {took:.1f} s: served per key {sorted(served.values())}"
        )
        assert {status for _, status in answers} <= {200, 429}
        assert all(served[key] == limit and limited[key] == per_key - limit for key in keys), (served, limited)
    finally:
        for api in apis:
            api.terminate()
        for api in apis:
            api.wait(timeout=30)
