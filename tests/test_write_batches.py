"""Bots created by concurrent requests share a transaction, and each caller still gets exactly its own bot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from api.write_batches import WriteBatches
from meetbot.db.tables import bots
from meetbot.domain import accounts
from meetbot.domain.bots import create_bots_committed
from meetbot.schemas.bots import BotCreate
from meetbot.settings import Settings
from tests.conftest import GOOGLE_BOT, Account


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    await client.post("/auth/register", json={"email": email, "password": "correct horse 1", "name": "N"})
    login = await client.post("/auth/login", json={"email": email, "password": "correct horse 1"})
    return {"Authorization": f"Bearer {login.json()['accessToken']}"}


def test_concurrent_creations_each_get_their_own_bot(settings: Settings, services: Services) -> None:
    commits: list[int] = []

    def note(_conn: Any) -> None:
        commits.append(1)

    async def scenario() -> list[tuple[dict[str, str], str, httpx.Response]]:
        transport = httpx.ASGITransport(app=create_app(settings, services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1") as client:
            callers = [await _login(client, "ann@example.com"), await _login(client, "ben@example.com")]
            sa.event.listen(services.engine, "commit", note)
            try:
                requests = [(callers[index % 2], f"Bot {index}") for index in range(24)]
                answers = await asyncio.gather(
                    *(
                        client.post("/bots", json={**GOOGLE_BOT, "botDisplayName": name}, headers=headers)
                        for headers, name in requests
                    )
                )
            finally:
                sa.event.remove(services.engine, "commit", note)
            return [(headers, name, answer) for (headers, name), answer in zip(requests, answers, strict=True)]

    results = asyncio.run(scenario())
    assert all(answer.status_code == 201 for _, _, answer in results), [a.text for _, _, a in results]
    assert [answer.json()["botDisplayName"] for _, _, answer in results] == [name for _, name, _ in results]
    assert len({answer.json()["id"] for _, _, answer in results}) == 24
    with services.engine.connect() as conn:
        owners = dict(conn.execute(sa.select(bots.c.id, bots.c.user_id)).all())
    by_caller: dict[str, set[int]] = {}
    for headers, _, answer in results:
        by_caller.setdefault(headers["Authorization"], set()).add(owners[answer.json()["id"]])
    assert sorted(len(users) for users in by_caller.values()) == [1, 1]  # each caller's bots are its own
    assert len(set().union(*by_caller.values())) == 2
    assert 1 <= len(commits) < 24  # shared transactions: the creations were batched (the request log's aside)


def test_a_refused_row_does_not_cost_the_others_their_bots(services: Services) -> None:
    with services.engine.begin() as conn:
        user_id = accounts.create_user(conn, "solo@example.com", "correct horse 1", "S").id
    body = BotCreate.model_validate(GOOGLE_BOT)
    missing_user = 2**31 - 7  # a user deleted while its request waited
    results = create_bots_committed(services.engine, [(user_id, body), (missing_user, body), (user_id, body)], "k" * 40)
    assert isinstance(results[1], sa.exc.IntegrityError)
    made = [row.id for row in results if not isinstance(row, Exception)]
    with services.engine.connect() as conn:
        owners = conn.execute(sa.select(bots.c.user_id).order_by(bots.c.id)).scalars().all()
        assert conn.execute(sa.select(bots.c.id).order_by(bots.c.id)).scalars().all() == made
    assert owners == [user_id, user_id]


def test_a_failed_batch_answers_every_caller_and_the_next_one_is_written() -> None:
    batches: list[list[int]] = []

    def write(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        if 13 in items:
            raise RuntimeError("the database is down")
        return [item * 10 if item != 7 else ValueError("refused") for item in items]

    writer: WriteBatches[int, int] = WriteBatches(write)

    async def scenario() -> list[Any]:
        first = await asyncio.gather(*(writer.submit(item) for item in (13, 1, 2)), return_exceptions=True)
        second = await asyncio.gather(*(writer.submit(item) for item in (3, 7)), return_exceptions=True)
        alone = await writer.submit(5)  # a quiet moment: written at once, on its own
        return [*first, *second, alone]

    results = asyncio.run(scenario())
    shown = [str(result) if isinstance(result, Exception) else result for result in results]
    assert shown == ["the database is down"] * 3 + [30, "refused", 50]
    assert batches == [[13, 1, 2], [3, 7], [5]]


def test_a_created_bot_reads_back_exactly_as_it_was_answered(client: TestClient, alice: Account) -> None:
    """POST answers from the validated request, GET from the stored row: the two must be the same resource."""
    start = datetime.now(UTC) + timedelta(hours=1)
    body = {
        "botDisplayName": "Scribe",
        "meetingTitle": "Weekly sync",
        "meetingInfo": {**GOOGLE_BOT["meetingInfo"], "meetingPassword": "s3cret", "meetingId": "abc-defg-hij"},
        "startTime": start.isoformat(),
        "endTime": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
        "heartbeatInterval": 7000,
        "automaticLeave": {"waitingRoomTimeout": 60000},
        "recordingSettings": {"retentionDays": 9},
        "transcription": {"auto": True, "language": "de"},
        "summary": {"auto": True},
    }
    for sent in (body, GOOGLE_BOT):
        created = client.post("/bots", json=sent, headers=alice.headers)
        assert created.status_code == 201, created.text
        fetched = client.get(f"/bots/{created.json()['id']}", headers=alice.headers)
        assert created.json() == fetched.json()
        assert list(created.json()) == list(fetched.json())  # the same fields, in the same order
    assert created.json()["meetingInfo"].get("meetingPassword") is None
    first = client.get("/bots", headers=alice.headers).json()["bots"][-1]
    assert first["meetingInfo"]["meetingPassword"] == "********" and first["startTime"].endswith("Z")
