"""Kill notices from the API to the bot runners: Redis pub/sub, or an in-process registry (embedded)."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

import redis

CHANNEL = "meetbot:bot-kill"
log = logging.getLogger(__name__)


class KillSignals(ABC):
    """notify(bot_id) wakes the runner of that bot, wherever it runs, at once."""

    def __init__(self) -> None:
        self._events: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def watch(self, bot_id: int) -> threading.Event:
        with self._lock:
            return self._events.setdefault(bot_id, threading.Event())

    def unwatch(self, bot_id: int) -> None:
        with self._lock:
            self._events.pop(bot_id, None)

    def _deliver(self, bot_id: int) -> None:
        with self._lock:
            event = self._events.get(bot_id)
        if event is not None:
            event.set()

    @abstractmethod
    def notify(self, bot_id: int) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LocalKillSignals(KillSignals):
    def notify(self, bot_id: int) -> None:
        self._deliver(bot_id)


class RedisKillSignals(KillSignals):
    def __init__(self, url: str) -> None:
        super().__init__()
        self._client = redis.Redis.from_url(url)
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    def notify(self, bot_id: int) -> None:
        self._client.publish(CHANNEL, str(bot_id))

    def start_listening(self) -> None:
        if self._listener is None:
            self._listener = threading.Thread(target=self._listen, name="kill-signals", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._deliver(int(message["data"]))
            except (redis.RedisError, ValueError) as exc:  # runners also poll the database
                log.warning("kill signal listener error: %s", exc)
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self._client.close()


_local = LocalKillSignals()


def kill_signals_for(redis_url: str | None) -> KillSignals:
    return RedisKillSignals(redis_url) if redis_url else _local
