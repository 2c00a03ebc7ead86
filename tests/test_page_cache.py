"""The page cache: a caller's bot list and bots come from memory while fresh, and no change is hidden behind it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from starlette.testclient import TestClient

from api.app import create_app
from api.page_cache import PageCache
from api.services import Services
from meetbot.db.tables import api_keys, bots
from meetbot.domain.bot_states import S, transition
from meetbot.settings import Settings
from tests.conftest import GOOGLE_BOT, REDIS_URL, Account, make_settings, register_and_login

LONG_LIFE = 600.0  # set on a cache where a test proves that a notice, not the lifetime, made a change show


def names(client: TestClient, account: Account) -> list[str]:
    listed = client.get("/bots", headers=account.headers)
    assert listed.status_code == 200
    return [bot["botDisplayName"] for bot in listed.json()["bots"]]


def test_every_change_through_the_api_shows_at_once(client: TestClient, services: Services, alice: Account) -> None:
    services.page_cache.ttl = LONG_LIFE
    assert names(client, alice) == []
    bot = client.post("/bots", json={**GOOGLE_BOT, "botDisplayName": "First"}, headers=alice.headers).json()
    assert names(client, alice) == ["First"]
    assert client.get(f"/bots/{bot['id']}", headers=alice.headers).json()["botDisplayName"] == "First"
    patched = client.patch(f"/bots/{bot['id']}", json={"botDisplayName": "Renamed"}, headers=alice.headers)
    assert patched.status_code == 200
    assert names(client, alice) == ["Renamed"]
    assert client.get(f"/bots/{bot['id']}", headers=alice.headers).json()["botDisplayName"] == "Renamed"
    assert client.delete(f"/bots/{bot['id']}", headers=alice.headers).status_code == 204
    assert client.get(f"/bots/{bot['id']}", headers=alice.headers).status_code == 404
    assert names(client, alice) == []


def test_a_workers_status_change_shows_at_once(client: TestClient, services: Services, alice: Account) -> None:
    services.page_cache.ttl = LONG_LIFE
    bot = client.post("/bots", json=GOOGLE_BOT, headers=alice.headers).json()
    assert client.get(f"/bots/{bot['id']}", headers=alice.headers).json()["status"] == "READY_TO_DEPLOY"
    assert client.get("/bots?status=READY_TO_DEPLOY", headers=alice.headers).json()["total"] == 1
    with services.engine.begin() as conn:  # what a bot worker does: the status and its event, one transaction
        assert transition(conn, bot["id"], S.DEPLOYING)
    assert client.get(f"/bots/{bot['id']}", headers=alice.headers).json()["status"] == "DEPLOYING"
    assert client.get("/bots?status=READY_TO_DEPLOY", headers=alice.headers).json()["total"] == 0


def test_a_change_without_a_notice_shows_within_a_second(
    client: TestClient, services: Services, settings: Settings, alice: Account
) -> None:
    assert settings.page_cache_seconds == 1.0
    bot = client.post("/bots", json=GOOGLE_BOT, headers=alice.headers).json()
    assert client.get(f"/bots/{bot['id']}", headers=alice.headers).json()["lastHeartbeat"] is None
    with services.engine.begin() as conn:  # a heartbeat: no event, no notice
        conn.execute(bots.update().where(bots.c.id == bot["id"]).values(last_heartbeat=sa.func.now()))
    time.sleep(1.1)
    assert client.get(f"/bots/{bot['id']}", headers=alice.headers).json()["lastHeartbeat"] is not None


def test_callers_never_see_each_others_pages_and_a_revoked_key_is_refused(
    client: TestClient, alice: Account, bob: Account
) -> None:
    client.post("/bots", json={**GOOGLE_BOT, "botDisplayName": "Alice's"}, headers=alice.headers)
    assert names(client, alice) == ["Alice's"]
    assert names(client, bob) == []
    created = client.post("/api-keys", json={"name": "poller"}, headers=alice.headers).json()
    with_key = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/bots", headers=with_key).json()["total"] == 1
    assert client.delete(f"/api-keys/{created['id']}", headers=alice.headers).status_code == 204
    assert client.get("/bots", headers=with_key).status_code == 401


@pytest.fixture
def two_api_processes(tmp_path: Path, pg_url: str) -> Iterator[tuple[TestClient, TestClient, Services]]:
    """Two API apps on one database and one Redis, as two processes behind a load balancer would be."""
    redis.Redis.from_url(REDIS_URL).ping()
    apps = []
    for name in ("a", "b"):
        settings = make_settings(tmp_path / name, pg_url, redis_url=REDIS_URL)
        services = Services.from_settings(settings)
        apps.append((TestClient(create_app(settings, services), base_url="http://testserver/api/v1"), services))
    (one, _), (two, two_services) = apps
    with one, two:
        yield one, two, two_services


def test_a_write_through_another_api_process_shows_on_this_one(
    two_api_processes: tuple[TestClient, TestClient, Services],
) -> None:
    one, two, two_services = two_api_processes
    two_services.page_cache.ttl = LONG_LIFE  # only the notice over Redis can make the new bot show on two
    alice = register_and_login(one)
    assert names(two, alice) == []
    assert one.post("/bots", json={**GOOGLE_BOT, "botDisplayName": "Made on one"}, headers=alice.headers).is_success
    deadline = time.monotonic() + 5
    while (seen := names(two, alice)) == [] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen == ["Made on one"]


def test_concurrent_callers_share_one_read(settings: Settings, services: Services) -> None:
    """When an entry expires under load, one request reads the database, not every open connection."""
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async def scenario() -> tuple[set[int], set[int]]:
        transport = httpx.ASGITransport(app=create_app(settings, services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1") as client:
            email = "poller@example.com"
            await client.post("/auth/register", json={"email": email, "password": "correct horse 1", "name": "P"})
            login = await client.post("/auth/login", json={"email": email, "password": "correct horse 1"})
            headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
            key = (await client.post("/api-keys", json={"name": "k"}, headers=headers)).json()["key"]
            await client.post("/bots", json=GOOGLE_BOT, headers=headers)
            sa.event.listen(services.engine, "before_cursor_execute", note)
            try:
                polls = [client.get("/bots", headers={"Authorization": f"Bearer {key}"}) for _ in range(20)]
                answers = await asyncio.gather(*polls)
            finally:
                sa.event.remove(services.engine, "before_cursor_execute", note)
            return {answer.status_code for answer in answers}, {answer.json()["total"] for answer in answers}

    statuses, totals = asyncio.run(scenario())
    assert statuses == {200} and totals == {1}
    key_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and api_keys.name in s]
    bot_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and f"FROM {bots.name}" in s]
    assert len(key_reads) == 1, key_reads  # the key is checked once for the 20 requests
    assert 1 <= len(bot_reads) <= 2, bot_reads  # one page: its rows, and its total


def test_a_read_begun_before_a_change_is_neither_shared_nor_kept_after_it() -> None:
    cache = PageCache(LONG_LIFE)
    reads: list[str] = []

    async def scenario() -> tuple[bytes, bytes, bytes]:
        release = asyncio.Event()

        async def slow_old_read() -> bytes:
            reads.append("old")
            await release.wait()
            return b"old"

        async def new_read() -> bytes:
            reads.append("new")
            return b"new"

        first = asyncio.ensure_future(cache.fetch(7, "page", slow_old_read))
        await asyncio.sleep(0)
        cache.forget(7)  # the owner's bots changed while the first read was under way
        second = await cache.fetch(7, "page", new_read)
        release.set()
        return await first, second, await cache.fetch(7, "page", new_read)

    first, second, third = asyncio.run(scenario())
    assert (first, second) == (b"old", b"new")  # the early caller gets what it read, later ones never do
    assert third == b"new" and reads == ["old", "new"]


def test_the_cache_keeps_to_its_byte_budget() -> None:
    cache = PageCache(LONG_LIFE, max_bytes=100)

    async def fill() -> None:
        for index in range(5):
            body = bytes([index]) * 40

            async def read(body: bytes = body) -> bytes:
                return body

            await cache.fetch(1, index, read)

    asyncio.run(fill())
    kept = [index for index in range(5) if cache.get(1, index) is not None]
    assert kept == [3, 4]  # the oldest went first; two bodies of 40 bytes fit in 100
