"""Bot slots across the fleet: what each bot worker offers (Redis, or this process when embedded), and the queue
positions of bots waiting for one (their QUEUED events)."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis
import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.tables import bot_events, bots
from meetbot.domain.bot_states import RUNNING, record_event
from meetbot.schemas.bots import BotStatus as S
from meetbot.schemas.bots import EventType

log = logging.getLogger("meetbot.slots")

REFRESH_SECONDS = 5.0  # a bot worker renews its offer this often (and re-announces the queue)
EXPIRY_SECONDS = 3 * REFRESH_SECONDS  # an offer not renewed for this long is a worker that is gone
REDIS_KEY = "meetbot:bot-workers"  # sorted set: worker id → last renewal (Redis server time, seconds)
REDIS_INFO_KEY = "meetbot:bot-workers:info"  # hash: worker id → its offer (JSON)
ADVISORY_LOCK_KEY = 0x6D62_5155  # PostgreSQL advisory lock: one announcer at a time across processes


@dataclass(frozen=True)
class WorkerSlots:
    """One bot worker process's offer: its bot slots, and whether it is draining (then it takes no new bot)."""

    worker_id: str  # "<host>:<pid>", as in bots.worker_id
    host: str
    slots: int
    draining: bool = False


@dataclass(frozen=True)
class SlotUse:
    worker: WorkerSlots
    busy: int  # its bots between claim and DONE/FATAL (bots.worker_id, status JOINING_CALL … CALL_ENDED)

    @property
    def free(self) -> int:
        return 0 if self.worker.draining else max(0, self.worker.slots - self.busy)


class SlotRegistry:
    """The offers of this process's workers (embedded mode: the API and the workers share one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offers: dict[str, tuple[WorkerSlots, float]] = {}

    def offer(self, worker: WorkerSlots) -> None:
        with self._lock:
            self._offers[worker.worker_id] = (worker, time.monotonic())

    def withdraw(self, worker_id: str) -> None:
        with self._lock:
            self._offers.pop(worker_id, None)

    def live(self) -> list[WorkerSlots]:
        cutoff = time.monotonic() - EXPIRY_SECONDS
        with self._lock:
            return [worker for worker, renewed in self._offers.values() if renewed >= cutoff]


class RedisSlotRegistry(SlotRegistry):
    """Offers kept in Redis, renewed by each worker; Redis's clock judges staleness (hosts' clocks may differ)."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.client = client

    def _now(self) -> float:
        seconds, micros = self.client.time()
        return float(seconds) + micros / 1e6

    def offer(self, worker: WorkerSlots) -> None:
        pipe = self.client.pipeline()
        pipe.zadd(REDIS_KEY, {worker.worker_id: self._now()})
        pipe.hset(REDIS_INFO_KEY, worker.worker_id, json.dumps(asdict(worker)))
        pipe.execute()

    def withdraw(self, worker_id: str) -> None:
        pipe = self.client.pipeline()
        pipe.zrem(REDIS_KEY, worker_id)
        pipe.hdel(REDIS_INFO_KEY, worker_id)
        pipe.execute()

    def live(self) -> list[WorkerSlots]:
        cutoff = self._now() - EXPIRY_SECONDS
        gone = self.client.zrangebyscore(REDIS_KEY, "-inf", f"({cutoff}")
        if gone:  # workers that died without withdrawing (SIGKILL, a lost host)
            pipe = self.client.pipeline()
            pipe.zremrangebyscore(REDIS_KEY, "-inf", f"({cutoff}")
            pipe.hdel(REDIS_INFO_KEY, *gone)
            pipe.execute()
        ids = self.client.zrangebyscore(REDIS_KEY, cutoff, "+inf")
        if not ids:
            return []
        offers = self.client.hmget(REDIS_INFO_KEY, ids)
        return [WorkerSlots(**json.loads(raw)) for raw in offers if raw is not None]


_LOCAL = SlotRegistry()


@functools.lru_cache(maxsize=8)
def registry_for(redis_url: str | None) -> SlotRegistry:
    """The fleet's registry (MEETBOT_REDIS_URL), or this process's own in the embedded mode."""
    if redis_url is None:
        return _LOCAL
    return RedisSlotRegistry(redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5))


def slot_use(conn: sa.Connection, workers: list[WorkerSlots]) -> list[SlotUse]:
    """Each live worker's slots with how many hold a bot (read from the bots table: claimed and not finished)."""
    if not workers:
        return []
    busy = dict(
        conn.execute(
            sa.select(bots.c.worker_id, sa.func.count())
            .where(bots.c.status.in_([str(status) for status in RUNNING]), bots.c.worker_id.is_not(None))
            .group_by(bots.c.worker_id)
        ).all()
    )
    return [SlotUse(worker, int(busy.get(worker.worker_id, 0))) for worker in workers]


def _due(deployed_at: datetime | None, config: dict[str, object]) -> datetime:
    """When a deployed bot wants a slot: at its deploy, or at its startTime when that is later."""
    due = deployed_at or now_utc()
    start = config.get("startTime")
    if isinstance(start, str):
        due = max(due, datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC))
    return due


def waiting_bots(conn: sa.Connection) -> list[int]:
    """Bots waiting for a slot (DEPLOYING: not yet claimed by a worker; due now), in the order they came."""
    now = now_utc()
    rows = conn.execute(sa.select(bots.c.id, bots.c.deployed_at, bots.c.config).where(bots.c.status == S.DEPLOYING))
    due = [(_due(row.deployed_at, row.config), row.id) for row in rows]
    return [bot_id for when, bot_id in sorted(due) if when <= now]


def queue_positions(conn: sa.Connection, registry: SlotRegistry) -> dict[int, int]:
    """Waiting bot → its queue position (1: next when a slot frees). Bots that a free slot awaits are left out.

    None while no bot worker is live (none started yet, or all restarting): with no slot anywhere a position says
    nothing; the first worker to come up announces them.
    """
    workers = registry.live()
    if not workers:
        return {}
    free = sum(use.free for use in slot_use(conn, workers))
    waiting = waiting_bots(conn)
    return {bot_id: rank - free for rank, bot_id in enumerate(waiting, 1) if rank > free}


_ANNOUNCE_LOCK = threading.Lock()  # this process's announcers take turns (SQLite: the embedded mode's one process)


def announce_queue_positions(engine: sa.Engine, registry: SlotRegistry) -> dict[int, int]:
    """Record a QUEUED event (data.queuePosition) for each waiting bot whose position is new or changed.

    Called by the API after a deploy and by bot workers after a claim and every few seconds; one announcer at a
    time (an advisory lock on PostgreSQL), so a position is announced once. Returns the positions announced.
    """
    announced: dict[int, int] = {}
    with _ANNOUNCE_LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        positions = queue_positions(conn, registry)
        if not positions:
            return announced
        last: dict[int, object] = {}
        for bot_id, data in conn.execute(
            sa.select(bot_events.c.bot_id, bot_events.c.data)
            .where(bot_events.c.type == EventType.QUEUED, bot_events.c.bot_id.in_(list(positions)))
            .order_by(bot_events.c.id)
        ):
            last[bot_id] = data.get("queuePosition")
        for bot_id, position in positions.items():
            if last.get(bot_id) == position:
                continue
            # Locks the row: a worker claiming this bot meanwhile waits, and a bot claimed already gets no event.
            status = conn.execute(sa.select(bots.c.status).where(bots.c.id == bot_id).with_for_update()).scalar()
            if status != S.DEPLOYING:
                continue
            ahead = "next for a free bot slot" if position == 1 else f"{position - 1} bot(s) ahead of it"
            data = {"queuePosition": position, "description": f"Every bot slot is busy: waiting, {ahead}"}
            record_event(conn, bot_id, EventType.QUEUED, data, status=S.DEPLOYING)
            announced[bot_id] = position
    if announced:
        log.info("queue positions announced", extra={"positions": announced})
    return announced
