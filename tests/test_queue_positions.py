"""Queue positions of bots waiting for a bot slot: QUEUED events, announced once per position, in deploy order."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa
from starlette.testclient import TestClient

from meetbot.db import get_engine, now_utc
from meetbot.db.tables import bot_events
from meetbot.domain import accounts
from meetbot.domain import bots as bot_ops
from meetbot.domain.bot_states import transition
from meetbot.schemas.bots import BotCreate
from meetbot.schemas.bots import BotStatus as S
from meetbot.slots import SlotRegistry, WorkerSlots, announce_queue_positions, registry_for
from tests.conftest import GOOGLE_BOT, Account

SECRET = "queue-positions-secret-" + "x" * 24


def queued_positions(engine: sa.Engine, bot_id: int) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(bot_events.c.data, bot_events.c.status)
            .where(bot_events.c.bot_id == bot_id, bot_events.c.type == "QUEUED")
            .order_by(bot_events.c.id)
        ).all()
    assert all(status == S.DEPLOYING for _data, status in rows)
    return [data["queuePosition"] for data, _status in rows]


def test_waiting_bots_get_their_place_in_line_and_move_up(db_url: str) -> None:
    engine = get_engine(db_url)
    registry = SlotRegistry()
    with engine.begin() as conn:
        user = accounts.create_user(conn, "line@example.com", "correct horse 1", "Line")
        ids = [bot_ops.create_bot(conn, user.id, BotCreate.model_validate(GOOGLE_BOT), SECRET).id for _ in range(4)]
        later = {**GOOGLE_BOT, "startTime": (now_utc() + timedelta(hours=1)).isoformat()}
        scheduled = bot_ops.create_bot(conn, user.id, BotCreate.model_validate(later), SECRET).id
    for bot_id in [*ids, scheduled]:
        with engine.begin() as conn:
            bot_ops.deploy_bot(conn, user.id, bot_id)
    first, second, third, fourth = ids

    assert announce_queue_positions(engine, registry) == {}  # no worker yet: no slot to wait for
    registry.offer(WorkerSlots("host-a:1", "host-a", slots=2))
    with engine.begin() as conn:
        assert transition(conn, first, S.JOINING_CALL, worker_id="host-a:1")  # 1 of 2 slots busy
    # One slot free: the second bot is about to take it; the third and fourth wait (1 = next). The scheduled bot
    # (startTime in an hour) is not waiting for a slot yet.
    assert announce_queue_positions(engine, registry) == {third: 1, fourth: 2}
    assert announce_queue_positions(engine, registry) == {}  # unchanged positions are not announced again

    with engine.begin() as conn:
        assert transition(conn, second, S.JOINING_CALL, worker_id="host-a:1")
        assert transition(conn, third, S.JOINING_CALL, worker_id="host-a:1")  # (a slot freed meanwhile)
    assert announce_queue_positions(engine, registry) == {fourth: 1}

    # A draining worker offers no slot; a second worker's free slot counts.
    registry.offer(WorkerSlots("host-a:1", "host-a", slots=2, draining=True))
    registry.offer(WorkerSlots("host-b:2", "host-b", slots=1))
    assert announce_queue_positions(engine, registry) == {}  # the fourth bot is next for host-b's free slot

    assert queued_positions(engine, third) == [1]
    assert queued_positions(engine, fourth) == [2, 1]
    assert queued_positions(engine, first) == queued_positions(engine, second) == []
    assert queued_positions(engine, scheduled) == []


def test_killing_a_waiting_bot_moves_those_behind_it_up_at_once(client: TestClient, alice: Account) -> None:
    """Through the API: deploys announce places in line, and a kill of a waiting bot re-announces them without
    waiting for a bot worker's next round."""
    registry = registry_for(None)  # the embedded mode's registry, which this app's routes read
    worker = WorkerSlots(f"host-kill:{time.time_ns()}", "host-kill", slots=0)  # a live worker with no free slot
    registry.offer(worker)
    try:
        ids = [client.post("/bots", json=GOOGLE_BOT, headers=alice.headers).json()["id"] for _ in range(3)]
        for bot_id in ids:
            assert client.post(f"/bots/{bot_id}/deploy", headers=alice.headers).status_code == 200

        def positions(bot_id: int) -> list[int]:
            page = client.get(f"/bots/{bot_id}/events?type=QUEUED", headers=alice.headers).json()
            return [event["data"]["queuePosition"] for event in page["events"]]

        assert [positions(bot_id) for bot_id in ids] == [[1], [2], [3]]
        assert client.post(f"/bots/{ids[0]}/kill", headers=alice.headers).json()["status"] == "DONE"
        assert positions(ids[1]) == [2, 1] and positions(ids[2]) == [3, 2]
    finally:
        registry.withdraw(worker.worker_id)
