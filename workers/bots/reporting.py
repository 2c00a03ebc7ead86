"""How a running bot reports: status changes, events, log lines and heartbeats written to the database."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.tables import bots
from meetbot.domain import bot_states
from meetbot.schemas.bots import BotStatus

log = logging.getLogger("meetbot.bot")
T = TypeVar("T")
# A database outage (restart, failover) this long is waited out: a bot's status changes and events are never
# dropped on the floor, and the bot goes on. Longer than the reaper's stale-heartbeat limit makes no sense.
OUTAGE_WAIT_S = 60.0
CONNECTION_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


class BotReporter:
    def __init__(self, engine: sa.Engine, bot_id: int, outage_wait_s: float = OUTAGE_WAIT_S) -> None:
        self.engine = engine
        self.bot_id = bot_id
        self.outage_wait_s = outage_wait_s

    def _write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run work in a transaction, retrying while the database is unreachable (up to outage_wait_s)."""
        deadline = time.monotonic() + self.outage_wait_s
        delay = 0.25
        while True:
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except CONNECTION_ERRORS as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "database unavailable: the bot's write is retried",
                    extra={"bot_id": self.bot_id, "error": type(exc).__name__, "retry_in_s": delay},
                )
                time.sleep(delay)
                delay = min(delay * 2, 4.0)

    def log(self, message: str, level: str = "INFO") -> None:
        log.log(logging.getLevelName(level), message, extra={"bot_id": self.bot_id})
        try:
            self._write(lambda conn: bot_states.record_log(conn, self.bot_id, message, level))
        except sa.exc.SQLAlchemyError:
            log.exception("could not store a bot log line", extra={"bot_id": self.bot_id})

    def event(self, event_type: str, data: dict[str, Any]) -> None:
        self._write(lambda conn: bot_states.record_event(conn, self.bot_id, event_type, data))

    def transition(self, to: BotStatus, sub_code: str | None = None, description: str = "", **values: Any) -> bool:
        moved = self._write(lambda conn: bot_states.transition(conn, self.bot_id, to, sub_code, description, **values))
        if moved:
            self.log(
                f"status {to}" + (f" ({sub_code})" if sub_code else "") + (f": {description}" if description else ""),
                level="ERROR" if to == BotStatus.FATAL else "INFO",
            )
        return moved

    def update(self, **values: Any) -> None:
        statement = bots.update().where(bots.c.id == self.bot_id).values(updated_at=now_utc(), **values)
        self._write(lambda conn: conn.execute(statement))

    def status(self) -> BotStatus:
        query = sa.select(bots.c.status).where(bots.c.id == self.bot_id)
        return BotStatus(self._write(lambda conn: conn.execute(query).scalar_one()))


class Heartbeat(threading.Thread):
    """Writes lastHeartbeat every interval and watches the kill flag in the database.

    The kill flag is polled (every check_interval) as well as pushed by KillSignals, so a lost
    pub/sub notice still stops the bot within a second.
    """

    def __init__(
        self, engine: sa.Engine, bot_id: int, interval: float, check_interval: float, kill: threading.Event
    ) -> None:
        super().__init__(name=f"heartbeat-{bot_id}", daemon=True)
        self.engine = engine
        self.bot_id = bot_id
        self.interval = interval
        self.check_interval = check_interval
        self.kill = kill
        self._stop_event = threading.Event()

    def beat(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(bots.update().where(bots.c.id == self.bot_id).values(last_heartbeat=now_utc()))

    def run(self) -> None:
        next_beat = 0.0  # the first check also beats
        while not self._stop_event.wait(self.check_interval):
            try:
                with self.engine.connect() as conn:
                    flagged = conn.execute(sa.select(bots.c.kill_requested_at).where(bots.c.id == self.bot_id)).scalar()
                if flagged is not None:
                    self.kill.set()
                if time.monotonic() >= next_beat:
                    self.beat()
                    next_beat = time.monotonic() + self.interval
            except sa.exc.SQLAlchemyError:
                log.exception("heartbeat failed", extra={"bot_id": self.bot_id})

    def stop(self) -> None:
        self._stop_event.set()
