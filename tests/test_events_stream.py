"""The events feed (GET /events) and the live event streams (SSE) over real HTTP: resume, fan-out, Redis, a real bot."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
import uvicorn
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import get_engine, migrate
from meetbot.db.tables import bot_events
from meetbot.domain.bot_states import record_event
from meetbot.event_bus import CHANNEL, LISTENER, Notice, RedisEventBus
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.conftest import GOOGLE_BOT, REDIS_URL, Account, make_settings, register_and_login
from tests.support import clean_env, control, free_port, start_meetbot_up, wait_for

# --- helpers: the API over real HTTP, and a small SSE reader ------------------------------------------------


@contextmanager
def served(settings: Settings, services: Services | None = None) -> Iterator[str]:
    """The API served by uvicorn in a thread on a free loopback port; yields its /api/v1 base URL."""
    port = free_port()
    app = create_app(settings, services or Services.from_settings(settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, "uvicorn", interval=0.02)
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class SSE:
    """Reads Server-Sent Events messages (and counts comment lines) from a streaming httpx response."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines = self.response.iter_lines()

    def next(self) -> dict[str, str]:
        message: dict[str, str] = {}
        for line in self._lines:
            if not line:
                if message:
                    return message
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            message[name] = message[name] + "\n" + value if name in message else value
        raise EOFError("the stream ended")

    def take(self, count: int) -> list[dict[str, str]]:
        return [self.next() for _ in range(count)]

    def next_comment(self) -> str:
        for line in self._lines:
            if line.startswith(":"):
                return line[1:].strip()
        raise EOFError("the stream ended")


@contextmanager
def stream(client: httpx.Client, path: str, account: Account, **headers: str) -> Iterator[SSE]:
    with client.stream("GET", path, headers={**account.headers, **headers}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SSE(response)


def http_client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=httpx.Timeout(10.0))


def new_bot(client: httpx.Client | TestClient, account: Account) -> int:
    response = client.post("/bots", json=GOOGLE_BOT, headers=account.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def write(engine: sa.Engine, bot_id: int, n: int, event_type: str = "LOG") -> list[int]:
    ids = []
    for i in range(n):
        with engine.begin() as conn:
            ids.append(record_event(conn, bot_id, event_type, {"n": i}))
    return ids


def db_ids(engine: sa.Engine, bot_id: int) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(bot_events.c.id).where(bot_events.c.bot_id == bot_id).order_by(bot_events.c.id))
        return list(rows.scalars())


# --- the feed -----------------------------------------------------------------------------------------------


def test_feed_filters_and_pagination(client: TestClient, services: Services, alice: Account, bob: Account) -> None:
    first, second, theirs = new_bot(client, alice), new_bot(client, alice), new_bot(client, bob)
    now = datetime.now(UTC)
    with services.transaction() as conn:
        old = [record_event(conn, first, "LOG", {"n": n}) for n in range(3)]
        conn.execute(bot_events.update().where(bot_events.c.id.in_(old)).values(created_at=now - timedelta(days=3)))
        joins = [record_event(conn, second, "PARTICIPANT_JOIN", {"name": name}) for name in ("Ann", "Ben")]
        recent = [record_event(conn, first, "LOG", {"n": n}) for n in range(3, 5)]
        record_event(conn, theirs, "LOG", {"n": 99})
    mine = [*old, *joins, *recent]

    def feed(**params: Any) -> dict[str, Any]:
        response = client.get("/events", params=params, headers=alice.headers)
        assert response.status_code == 200, response.text
        return response.json()

    everything = feed(page_size=100)
    assert [e["id"] for e in everything["events"]] == sorted(mine, reverse=True)  # newest first, not bob's
    assert everything["total"] == len(mine) and everything["page_size"] == 100
    event = everything["events"][0]
    assert set(event) == {"id", "botId", "type", "status", "data", "createdAt"} and event["createdAt"].endswith("Z")
    assert (
        event
        == client.get(f"/bots/{first}/events", params={"page_size": 100}, headers=alice.headers).json()["events"][-1]
    )  # the same shape as a bot's own events

    pages = [feed(page=page, page_size=3) for page in (1, 2, 3)]
    assert [len(p["events"]) for p in pages] == [3, 3, 1] and all(p["total"] == 7 for p in pages)
    assert [e["id"] for p in pages for e in p["events"]] == sorted(mine, reverse=True)

    assert [e["id"] for e in feed(bot_id=second)["events"]] == sorted(joins, reverse=True)
    assert feed(bot_id=theirs) == {"events": [], "total": 0, "page": 1, "page_size": 20}
    assert [e["id"] for e in feed(type="PARTICIPANT_JOIN")["events"]] == sorted(joins, reverse=True)
    assert [e["id"] for e in feed(bot_id=first, type="LOG")["events"]] == sorted(old + recent, reverse=True)
    day_ago = (now - timedelta(days=1)).isoformat()
    assert {e["id"] for e in feed(since=day_ago)["events"]} == set(joins + recent)
    assert {e["id"] for e in feed(until=day_ago)["events"]} == set(old)
    window = feed(since=(now - timedelta(days=4)).isoformat(), until=day_ago, type="LOG", bot_id=first)
    assert window["total"] == 3

    for bad in ({"type": "NOPE"}, {"since": "yesterday"}, {"since": "2030-01-01T00:00:00"}, {"page_size": 101},
                {"since": day_ago, "until": day_ago}, {"bot_id": 0}, {"colour": "red"}):  # fmt: skip
        response = client.get("/events", params=bad, headers=alice.headers)
        assert response.status_code == 422, (bad, response.text)
    assert client.get("/events").status_code == 401


# --- the live stream ----------------------------------------------------------------------------------------


def test_stream_is_live_and_resumes_without_gap_or_duplicate(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, sse_heartbeat_seconds=0.3)
    engine = get_engine(db_url)
    with served(settings) as base, http_client(base) as client:
        alice, bob = register_and_login(client), register_and_login(client)
        bot, other, bobs = new_bot(client, alice), new_bot(client, alice), new_bot(client, bob)
        history = write(engine, bot, 3)
        seen: list[dict[str, str]] = []
        with (
            stream(client, f"/bots/{bot}/events/stream", alice) as sse,
            stream(client, "/events/stream", alice) as all_,
        ):
            seen += sse.take(3)  # the bot's history first
            assert [int(m["id"]) for m in seen] == history
            writer = threading.Thread(target=write, args=(engine, bot, 20))
            writer.start()
            write(engine, other, 2)
            write(engine, bobs, 2)
            seen += sse.take(10)
            writer.join()
            # The user's stream starts now: the bot's 20 new events and the other bot's 2, none of bob's.
            mine = [all_.next() for _ in range(22)]
            assert {int(m["id"]) for m in mine} == set(db_ids(engine, bot)[3:]) | set(db_ids(engine, other))
            assert all(m["event"] == "LOG" for m in mine)
            assert sse.next_comment().startswith("ping")  # a heartbeat comment (every 0.3 s here)
        write(engine, bot, 5)  # while nobody listens
        last = seen[-1]["id"]
        with stream(client, f"/bots/{bot}/events/stream", alice, **{"Last-Event-ID": last}) as sse:
            seen += sse.take(len(db_ids(engine, bot)) - len(seen))
            live = write(engine, bot, 1)
            seen.append(sse.next())
        ids = [int(m["id"]) for m in seen]
        assert ids == db_ids(engine, bot) and ids[-1] == live[0]  # in order, none lost, none twice
        body = httpx.Response(200, content=seen[-1]["data"]).json()
        assert body["id"] == live[0] and body["botId"] == bot and body["type"] == "LOG" and body["data"] == {"n": 0}
        # ?lastEventId= does the same for a client that cannot set the header
        with stream(client, f"/bots/{bot}/events/stream?lastEventId={ids[-3]}", alice) as sse:
            assert [int(m["id"]) for m in sse.take(2)] == ids[-2:]

        # Another user's bot, a bot that is not there, no token, a bad Last-Event-ID.
        assert client.get(f"/bots/{bobs}/events/stream", headers=alice.headers).status_code == 404
        assert client.get("/bots/999999/events/stream", headers=alice.headers).json() == {"detail": "Bot not found"}
        assert client.get("/events/stream").status_code == 401
        bad = client.get(f"/bots/{bot}/events/stream", headers={**alice.headers, "Last-Event-ID": "abc"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]
        for query in ("lastEventId=-1", "lastEventId=x", "colour=red"):
            assert client.get(f"/events/stream?{query}", headers=alice.headers).status_code == 422, query


def test_an_open_stream_counts_once_against_the_rate_limit(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, rate_limit_per_minute=500, rate_limit_per_hour=5000)
    services = Services.from_settings(settings)
    services.rate_limiter.reset()
    with served(settings, services) as base, http_client(base) as client:
        alice = register_and_login(client)
        bot = new_bot(client, alice)
        before = int(client.get("/bots", headers=alice.headers).headers["X-RateLimit-Remaining"])
        with client.stream("GET", f"/bots/{bot}/events/stream", headers=alice.headers) as response:
            assert int(response.headers["X-RateLimit-Remaining"]) == before - 1
            write(services.engine, bot, 100)
            assert len(SSE(response).take(100)) == 100
        after = int(client.get("/bots", headers=alice.headers).headers["X-RateLimit-Remaining"])
    print(f"X-RateLimit-Remaining {before} before, {after} after a stream of 100 events")
    assert before - after <= 2


def test_an_event_that_commits_late_still_arrives_once(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL draws ids before commit: across bots an event may commit after a later one was already sent."""
    engine = get_engine(pg_url)
    with served(make_settings(tmp_path, pg_url)) as base, http_client(base) as client:
        alice = register_and_login(client)
        first, second = new_bot(client, alice), new_bot(client, alice)
        with stream(client, "/events/stream", alice) as sse:
            slow = engine.connect()
            transaction = slow.begin()
            late_id = record_event(slow, first, "LOG", {"which": "late"})  # id drawn, not committed
            [early_id] = write(engine, second, 1)
            assert late_id < early_id and int(sse.next()["id"]) == early_id
            # The same bot's events wait on its row lock instead: their ids commit in order.
            same_bot = threading.Thread(target=write, args=(engine, first, 1))
            same_bot.start()
            time.sleep(0.3)
            assert same_bot.is_alive()
            transaction.commit()
            slow.close()
            same_bot.join(5)
            late = sse.next()
            assert int(late["id"]) == early_id  # sent under the stream's position: a resume repeats nothing
            body = httpx.Response(200, content=late["data"]).json()
            assert body["id"] == late_id and body["data"] == {"which": "late"}
            after = sse.next()
            assert int(after["id"]) == max(db_ids(engine, first)) > early_id
        with stream(client, f"/events/stream?lastEventId={after['id']}", alice) as sse:
            [fresh] = write(engine, second, 1)
            assert int(sse.next()["id"]) == fresh


WRITER = """
import sys, time
from meetbot.db import get_engine
from meetbot.domain.bot_states import record_event
from meetbot.event_bus import CHANNEL, LISTENER, Notice, RedisEventBus
from meetbot.event_bus import publish_commits

engine = get_engine(sys.argv[1])
publish_commits(engine, sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    with engine.begin() as conn:
        event_id = record_event(conn, int(line), "LOG", {"from": "another process"})
    print(event_id, time.time(), flush=True)
"""


def test_an_event_written_by_another_process_arrives_within_a_second(tmp_path: Path, db_url: str) -> None:
    redis.Redis.from_url(REDIS_URL).ping()
    # The poll is 30 s: only the Redis notice can bring the event in time.
    settings = make_settings(tmp_path, db_url, redis_url=REDIS_URL, sse_poll_seconds=30)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url, REDIS_URL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "ready"
        with served(settings) as base, http_client(base) as client:
            alice = register_and_login(client)
            bot = new_bot(client, alice)
            latencies = []
            with (
                stream(client, f"/bots/{bot}/events/stream", alice) as sse,
                stream(client, "/events/stream", alice) as all_,
            ):
                time.sleep(0.3)  # both streams are listening
                for junk in ("not json", '[["1", 2, 3]]', '{"event": 1}'):  # refused; the listener carries on
                    redis.Redis.from_url(REDIS_URL).publish(CHANNEL, junk)
                for _ in range(5):
                    writer.stdin.write(f"{bot}\n")
                    writer.stdin.flush()
                    message = sse.next()
                    received = time.time()
                    event_id, committed = writer.stdout.readline().split()
                    assert message["id"] == event_id and all_.next()["id"] == event_id
                    latencies.append(received - float(committed))
    finally:
        writer.stdin.close()
        writer.wait(10)
    print(f"cross-process event -> SSE client latency (ms): {[round(s * 1000, 1) for s in latencies]}")
    assert max(latencies) < 3.0


def test_a_bus_nobody_watches_holds_no_redis_listener(tmp_path: Path) -> None:
    """The Redis listener lives while something watches: an API app's page cache, a stream. Once the last watcher
    has gone it leaves, so an app that is gone (or a Redis that is) leaves no thread reconnecting for ever; the next
    watcher starts a new one, which hears notices again."""

    def listeners() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name == LISTENER and thread.is_alive()]

    before = len(listeners())
    bus = RedisEventBus(REDIS_URL)
    try:
        heard: list[Notice] = []
        for _ in range(2):
            watch = bus.watch(7, None, heard.append)
            wait_for(lambda: len(listeners()) == before + 1, 5, "the listener")
            time.sleep(0.3)  # subscribed
            notice = Notice(len(heard) + 1, 3, 7)
            wait_for(lambda n=notice: redis.Redis.from_url(REDIS_URL).publish(CHANNEL, f"[[{n.event_id}, 3, 7]]")
                     and n in heard, 5, "the notice", interval=0.3)  # fmt: skip
            bus.unwatch(watch)
            wait_for(lambda: len(listeners()) == before, 5, "the listener to leave")
        dead = RedisEventBus("redis://127.0.0.1:1/0")  # nothing answers there: the listener retries while watched
        watch = dead.watch(None, None, heard.append)
        wait_for(lambda: len(listeners()) == before + 1, 5, "the retrying listener")
        dead.unwatch(watch)
        wait_for(lambda: len(listeners()) == before, 5, "the retrying listener to leave")
    finally:
        bus.close()


# --- a real bot, and shutdown -------------------------------------------------------------------------------


@pytest.mark.browser
def test_a_real_bots_events_arrive_in_order_across_a_reconnect(tmp_path: Path, simulator: str) -> None:
    """Embedded mode: API (uvicorn) and an in-process worker share a broker; the stream sees JOINING_CALL to DONE."""
    from workers.process import WorkerProcess

    db_url = f"sqlite:///{tmp_path / 'meetbot.db'}"
    migrate(db_url)
    settings = make_settings(tmp_path, db_url, bots_per_process=1, join_timeout_seconds=20)
    broker = build_broker(settings)
    workers = WorkerProcess(settings, broker, queues={"bots"})
    workers.start()
    try:
        with served(settings, Services.from_settings(settings, broker=broker)) as base, http_client(base) as client:
            alice = register_and_login(client)
            meeting = f"m{int(time.time() * 1000)}"
            body = {"meetingInfo": {"platform": "google", "meetingUrl": f"{simulator}/google/{meeting}"}}
            bot = client.post("/bots", json=body, headers=alice.headers).json()["id"]
            statuses: list[str] = []
            messages: list[dict[str, str]] = []
            with stream(client, f"/bots/{bot}/events/stream", alice) as sse:
                assert client.post(f"/bots/{bot}/deploy", headers=alice.headers).status_code == 200
                while "IN_CALL" not in statuses:
                    messages.append(sse.next())
                    if messages[-1]["event"] == "STATUS_CHANGE":
                        statuses.append(httpx.Response(200, content=messages[-1]["data"]).json()["status"])
            control(simulator, "google", meeting, action="end")  # the call ends while the client is away
            wait_for(lambda: client.get(f"/bots/{bot}", headers=alice.headers).json()["status"] == "DONE", 30, "DONE")
            with stream(client, f"/bots/{bot}/events/stream", alice, **{"Last-Event-ID": messages[-1]["id"]}) as sse:
                while "DONE" not in statuses:
                    messages.append(sse.next())
                    if messages[-1]["event"] == "STATUS_CHANGE":
                        statuses.append(httpx.Response(200, content=messages[-1]["data"]).json()["status"])
            stored = client.get(f"/bots/{bot}/events", params={"page_size": 100}, headers=alice.headers).json()
    finally:
        workers.stop()
    assert statuses == ["DEPLOYING", "JOINING_CALL", "IN_CALL", "CALL_ENDED", "DONE"]
    received = [int(m["id"]) for m in messages]
    assert received == [e["id"] for e in stored["events"]][: len(received)]  # in order, no gap, no duplicate


def test_meetbot_up_stops_on_sigterm_with_a_stream_open(tmp_path: Path) -> None:
    port = free_port()
    proc, key = start_meetbot_up(clean_env(tmp_path / "data"), port, expect_key=True, capture_stderr=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    ended = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.stream("GET", f"{base}/events/stream", headers=headers, timeout=30) as response:
            assert response.status_code == 200
            for _ in response.iter_lines():
                pass
        ended.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    print(f"meetbot up exited {time.monotonic() - started:.1f} s after SIGTERM with a stream open")
    assert proc.returncode == 0, stderr[-2000:]
    assert ended.wait(5), "the stream did not end"
