"""How a running bot reports: status changes, events, log lines and heartbeats written to the database."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.tables import bots
from meetbot.domain import bot_states
from meetbot.schemas.bots import BotStatus

log = logging.getLogger("meetbot.bot")


class BotReporter:
    def __init__(self, engine: sa.Engine, bot_id: int) -> None:
        self.engine = engine
        self.bot_id = bot_id

    def log(self, message: str, level: str = "INFO") -> None:
        log.log(logging.getLevelName(level), message, extra={"bot_id": self.bot_id})
        try:
            with self.engine.begin() as conn:
                bot_states.record_log(conn, self.bot_id, message, level)
        except sa.exc.SQLAlchemyError:
            log.exception("could not store a bot log line", extra={"bot_id": self.bot_id})

    def event(self, event_type: str, data: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            bot_states.record_event(conn, self.bot_id, event_type, data)

    def transition(self, to: BotStatus, sub_code: str | None = None, description: str = "", **values: Any) -> bool:
        with self.engine.begin() as conn:
            moved = bot_states.transition(conn, self.bot_id, to, sub_code, description, **values)
        if moved:
            self.log(
                f"status {to}" + (f" ({sub_code})" if sub_code else "") + (f": {description}" if description else ""),
                level="ERROR" if to == BotStatus.FATAL else "INFO",
            )
        return moved

    def update(self, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(bots.update().where(bots.c.id == self.bot_id).values(updated_at=now_utc(), **values))

    def status(self) -> BotStatus:
        with self.engine.connect() as conn:
            return BotStatus(conn.execute(sa.select(bots.c.status).where(bots.c.id == self.bot_id)).scalar_one())


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
