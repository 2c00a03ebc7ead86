"""Production shape: the API on PostgreSQL + Redis, bots run by a separate `meetbot worker` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from tests.conftest import PG_ADMIN_URL, REDIS_URL, make_settings, register_and_login
from tests.support import control, empty_postgres_database, free_port, wait_for
from tests.test_bot_runtime import Runtime, loud_seconds, probe

pytestmark = pytest.mark.browser
FLEET_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/14"
METRICS_TOKEN = "fleet-scraper"


WorkerFactory = Callable[[float], subprocess.Popen[str]]


@pytest.fixture
def worker_metrics_port() -> int:
    """MEETBOT_WORKER_METRICS_PORT of the fleet's workers: the first one serves its figures there, the next on +1."""
    return free_port()


@pytest.fixture
def fleet_db() -> Iterator[str]:
    """A database of the fleet's own: bots other tests left DEPLOYING in the shared one would wait in its queue (and
    its workers' reaper would deploy them again), taking the slots these tests count."""
    with empty_postgres_database(PG_ADMIN_URL, "meetbot_bot_fleet") as url:
        migrate(url)
        yield url


@pytest.fixture
def fleet(
    tmp_path: Path, fleet_db: str, simulator: str, worker_metrics_port: int
) -> Iterator[tuple[Runtime, WorkerFactory]]:
    """The API in-process and a factory of `meetbot worker` processes (bots + maintenance, 2 slots each)."""
    redis.Redis.from_url(FLEET_REDIS_URL).flushdb()
    settings = make_settings(tmp_path, fleet_db, redis_url=FLEET_REDIS_URL, metrics_token=METRICS_TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETBOT_")}
    env.update(
        MEETBOT_DATABASE_URL=fleet_db,
        MEETBOT_REDIS_URL=FLEET_REDIS_URL,
        MEETBOT_DATA_DIR=str(settings.data_dir),
        MEETBOT_SECRET_KEY=settings.secret_key or "",
        MEETBOT_ALLOW_SIMULATOR="true",  # the worker checks the meeting URL again before opening it
        MEETBOT_WORKER_METRICS_PORT=str(worker_metrics_port),  # the first worker gets it, the next one port + 1, …
    )
    workers: list[subprocess.Popen[str]] = []

    def start_worker(drain_timeout: float) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [sys.executable, "-m", "meetbot.cli", "worker", "--queues", "bots,maintenance", "--bots-per-process", "2"],
            env={**env, "MEETBOT_DRAIN_TIMEOUT": str(drain_timeout)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        workers.append(worker)
        return worker

    services = Services.from_settings(settings)
    client = TestClient(create_app(settings, services))
    client.base_url = client.base_url.join("/api/v1/")
    try:
        yield Runtime(client, register_and_login(client), settings, simulator), start_worker
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.communicate()
        services.request_log.close()  # its last rows, before the database is dropped (no retries against none)


def stop_worker(worker: subprocess.Popen[str], timeout: float = 60) -> tuple[float, str]:
    """SIGTERM, then wait: (seconds until the process exited 0, its stderr)."""
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, stderr[-3000:]
    assert "worker stopped" in stderr
    return time.monotonic() - started, stderr


def test_redis_broker_separate_worker_kill_and_sigterm(fleet: tuple[Runtime, WorkerFactory]) -> None:
    runtime, start_worker = fleet
    worker = start_worker(0)
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

    # SIGTERM with no drain time: a bot in a call leaves at once, keeps the recording, and the process exits 0.
    bot_id, _ = runtime.create("zoom")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL", timeout=40)
    time.sleep(2)
    stop_worker(worker)
    bot = wait_for(lambda: (b := runtime.bot(bot_id))["status"] == "DONE" and b, 10, "the bot to finish")
    assert ("CALL_ENDED", "worker_shutdown") in runtime.status_path(bot_id)
    assert probe(runtime.recording_file(bot))["duration"] >= 1.5


def test_a_draining_worker_keeps_its_call_and_leaves_new_bots_to_another(fleet: tuple[Runtime, WorkerFactory]) -> None:
    runtime, start_worker = fleet
    drain = 25.0
    first = start_worker(drain)
    in_call, _ = runtime.create("google")
    runtime.deploy(in_call)
    runtime.wait_status(in_call, "IN_CALL", timeout=40)
    first.send_signal(signal.SIGTERM)
    drain_began = time.monotonic()
    newcomer, _ = runtime.create("google")
    runtime.deploy(newcomer)  # deployed while the only worker drains, with a free slot
    time.sleep(5)
    assert first.poll() is None, "the worker exited while its bot was still in a call"
    assert runtime.bot(in_call)["status"] == "IN_CALL"
    assert runtime.bot(newcomer)["status"] == "DEPLOYING"  # not taken by a worker on its way out
    second = start_worker(0)
    runtime.wait_status(newcomer, "IN_CALL", timeout=15)  # handed back at once: the next worker took it
    assert first.poll() is None, "the first worker was expected to be still draining"

    _, stderr = first.communicate(timeout=90)
    assert first.returncode == 0, stderr[-3000:]
    print(f"\nSIGTERM -> worker exited: {time.monotonic() - drain_began:.1f} s (drain timeout {drain:.0f} s)")
    assert time.monotonic() - drain_began >= drain
    bot = wait_for(lambda: (b := runtime.bot(in_call))["status"] == "DONE" and b, 10, "the drained bot to finish")
    assert ("CALL_ENDED", "worker_shutdown") in runtime.status_path(in_call)
    assert probe(runtime.recording_file(bot))["duration"] >= drain - 1  # it recorded through the drain

    stop_worker(second)


def test_a_draining_worker_exits_when_its_calls_end(fleet: tuple[Runtime, WorkerFactory]) -> None:
    runtime, start_worker = fleet
    worker = start_worker(600)
    bot_id, meeting = runtime.create("teams")
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL", timeout=40)
    worker.send_signal(signal.SIGTERM)
    time.sleep(3)
    assert runtime.bot(bot_id)["status"] == "IN_CALL"
    control(runtime.simulator, "teams", meeting, action="end")
    ended = time.monotonic()
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr[-3000:]
    print(f"\nmeeting ended -> draining worker exited: {time.monotonic() - ended:.1f} s")
    assert runtime.wait_status(bot_id, "DONE", timeout=10)
    assert ("CALL_ENDED", "meeting_ended") in runtime.status_path(bot_id)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_api(runtime: Runtime) -> Samples:
    response = runtime.client.get("http://testserver/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    return parse_metrics(response.text)


def slots_by_worker(samples: Samples) -> dict[str, dict[str, float]]:
    """worker id → {"busy": n, "free": n} from meetbot_bot_slots."""
    found: dict[str, dict[str, float]] = {}
    for (name, labels), value in samples.items():
        if name == "meetbot_bot_slots":
            label = dict(labels)
            found.setdefault(label["worker"], {})[label["state"]] = value
    return found


def worker_metrics(first_port: int, count: int) -> dict[int, Samples]:
    """port → the figures a worker serves there, for the first `count` ports from first_port that answer."""
    served: dict[int, Samples] = {}
    for port in range(first_port, first_port + 8):
        try:
            served[port] = parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=3).text)
        except httpx.HTTPError:
            continue
        if len(served) == count:
            break
    return served


def test_two_workers_take_four_bots_and_a_fifth_waits_with_its_queue_position(
    fleet: tuple[Runtime, WorkerFactory], worker_metrics_port: int
) -> None:
    runtime, start_worker = fleet
    start_worker(0)
    start_worker(0)
    # Both workers offer 2 slots each: the API's /metrics shows them, all free.
    offered = wait_for(
        lambda: (found := slots_by_worker(scrape_api(runtime))) and len(found) == 2 and found,
        60,
        "two bot workers offering their slots",
    )
    assert {worker: slots["free"] for worker, slots in offered.items()} == dict.fromkeys(offered, 2)

    audio_only = {"recordingSettings": {"audioOnly": True}}  # four calls at once on a small machine
    bots = [runtime.create("google", **audio_only) for _ in range(5)]
    for bot_id, _meeting in bots[:4]:
        runtime.deploy(bot_id)
    waiting, _ = bots[4]
    deployed_fifth = time.monotonic()
    runtime.deploy(waiting)
    for bot_id, _meeting in bots[:4]:
        runtime.wait_status(bot_id, "IN_CALL", timeout=120)
    busy = slots_by_worker(scrape_api(runtime))
    assert busy == {worker: {"busy": 2, "free": 0} for worker in offered}  # 2 calls on each worker

    queued = [event for event in runtime.events(waiting) if event["type"] == "QUEUED"]
    assert queued, runtime.events(waiting)
    assert queued[-1]["data"]["queuePosition"] == 1 and queued[-1]["status"] == "DEPLOYING"
    assert runtime.bot(waiting)["status"] == "DEPLOYING"
    feed = runtime.client.get(f"/bots/{waiting}/events?type=QUEUED", headers=runtime.account.headers)
    assert feed.status_code == 200 and feed.json()["total"] == len(queued)

    # One call ends: its slot frees and the waiting bot takes it.
    ended_bot, ended_meeting = bots[0]
    control(runtime.simulator, "google", ended_meeting, action="end")
    runtime.wait_status(ended_bot, "DONE", timeout=30)
    runtime.wait_status(waiting, "IN_CALL", timeout=60)
    print(f"\n5th bot: deploy -> IN_CALL after a slot freed: {time.monotonic() - deployed_fifth:.1f} s")
    events = runtime.events(waiting)
    first_queued = next(i for i, event in enumerate(events) if event["type"] == "QUEUED")
    picked_up = next(i for i, event in enumerate(events) if event["status"] == "JOINING_CALL")
    assert first_queued < picked_up

    # Each worker serves its own figures on its own port: the deploy -> IN_CALL histogram counts its bots.
    ports = worker_metrics(worker_metrics_port, 2)
    assert len(ports) == 2
    joined = sum(samples.get(("meetbot_bot_deploy_to_in_call_seconds_count", ()), 0) for samples in ports.values())
    assert joined == 5
    assert all(("meetbot_worker_bot_slots", (("state", "busy"),)) in samples for samples in ports.values())
