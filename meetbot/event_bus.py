"""Bot notices: an event row committed, or a user's bots changed; sent over Redis pub/sub or in-process."""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis
import sqlalchemy as sa

from meetbot.db.after_commit import after_commit

CHANNEL = "meetbot:bot-events"
LISTENER = "event-bus-listener"  # the thread that hears other processes' notices, while anyone watches
CHANGE = 0  # the event id of a change notice (event ids start at 1)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """That a bot event row exists now (ids only, the row itself is read from the database), or, with event_id
    CHANGE, that a user's bots changed without a new event (bot_id 0: any of them): a cue for caches."""

    event_id: int
    bot_id: int
    user_id: int

    @property
    def is_change(self) -> bool:
        return self.event_id == CHANGE


@dataclass(eq=False)
class Watch:
    """A watcher of one user's events (of one bot, or all of them), or of every user's (user_id None); change
    notices only where `changes` is set. The callback runs on the notifying thread."""

    user_id: int | None
    bot_id: int | None
    callback: Callable[[Notice], None]
    changes: bool = False

    def wants(self, notice: Notice) -> bool:
        if notice.is_change and not self.changes:
            return False
        return self.user_id in (None, notice.user_id) and self.bot_id in (None, notice.bot_id)


class EventBus(ABC):
    """publish(notices) reaches every watch(), in this process and (through Redis) in every other one."""

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()

    def watch(
        self, user_id: int | None, bot_id: int | None, callback: Callable[[Notice], None], changes: bool = False
    ) -> Watch:
        watch = Watch(user_id, bot_id, callback, changes)
        with self._lock:
            self._watches.add(watch)
        self._on_watch()
        return watch

    def unwatch(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _deliver(self, notices: Iterable[Notice]) -> None:
        with self._lock:
            watches = list(self._watches)
        for notice in notices:
            for watch in watches:
                if watch.wants(notice):
                    try:
                        watch.callback(notice)
                    except Exception:  # one broken watcher must not starve the others
                        log.exception("event watcher failed")

    def _on_watch(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def publish(self, notices: list[Notice]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LocalEventBus(EventBus):
    def publish(self, notices: list[Notice]) -> None:
        self._deliver(notices)


class RedisEventBus(EventBus):
    """Publishes from a background thread (a slow Redis never holds a database writer) and listens on demand."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._outbox: queue.SimpleQueue[list[Notice] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._threads_lock = threading.Lock()

    def _start(self, name: str, target: Callable[[], None]) -> bool:
        """Start the named thread unless it runs already; whether it was started now."""
        with self._threads_lock:
            if name in self._threads:
                return False
            self._threads[name] = threading.Thread(target=target, name=name, daemon=True)
            self._threads[name].start()
            return True

    def publish(self, notices: list[Notice]) -> None:
        if self._start("event-bus-publisher", self._publish_loop):
            atexit.register(self._drain)  # a process that writes an event and exits still sends its notice
        self._outbox.put(notices)

    def _drain(self, timeout: float = 2.0) -> None:
        publisher = self._threads.get("event-bus-publisher")
        if publisher is not None and publisher.is_alive():
            self._outbox.put(None)
            publisher.join(timeout)

    def _publish_loop(self) -> None:
        while not self._stop.is_set():
            batch = self._outbox.get()
            if batch is None:
                return
            while not self._outbox.empty():  # one message for whatever queued up meanwhile
                more = self._outbox.get()
                if more is None:
                    self._stop.set()
                    break
                batch = batch + more
            try:
                self._client.publish(CHANNEL, json.dumps([[n.event_id, n.bot_id, n.user_id] for n in batch]))
            except redis.RedisError as exc:  # streams also poll the database
                log.warning("event notice not published: %s", exc, extra={"events": len(batch)})

    def _on_watch(self) -> None:
        self._start(LISTENER, self._listen)

    def _listener_leaves(self) -> bool:
        """With no watcher left the listener leaves (the next watch starts another), so a bus that nobody watches
        holds no connection and retries none: true when it must leave now, its thread already forgotten."""
        with self._threads_lock:  # watch() adds its watcher before it starts a listener: none is missed
            with self._lock:
                if self._watches:
                    return False
            self._threads.pop(LISTENER, None)
            return True

    def _listen(self) -> None:
        while not self._stop.is_set() and not self._listener_leaves():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                while not self._stop.is_set() and not self._listener_leaves():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        try:
                            notices = _parse(message["data"])
                        except (ValueError, TypeError) as exc:
                            log.warning("event notice refused: %s", exc)
                            continue
                        self._deliver(notices)
                return
            except redis.RedisError as exc:  # streams poll the database meanwhile
                log.warning("event notice listener error: %s", exc)
                self._stop.wait(1.0)
            finally:
                pubsub.close()

    def close(self) -> None:
        self._stop.set()
        self._outbox.put(None)
        self._client.close()


def _parse(raw: Any) -> list[Notice]:
    """A published message back to notices; anything but triples of integers is refused."""
    items = json.loads(raw)
    if not isinstance(items, list):
        raise ValueError("not a list")
    notices = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 3 and all(type(v) is int for v in item)):
            raise ValueError("not an id triple")
        notices.append(Notice(*item))
    return notices


_local = LocalEventBus()
_redis: dict[str, RedisEventBus] = {}
_targets: dict[sa.Engine, set[EventBus]] = {}
_registry_lock = threading.Lock()


def event_bus_for(redis_url: str | None) -> EventBus:
    """The process's bus for this Redis (one per URL), or the in-process one."""
    if not redis_url:
        return _local
    with _registry_lock:
        bus = _redis.get(redis_url)
        if bus is None:
            bus = _redis[redis_url] = RedisEventBus(redis_url)
        return bus


def publish_commits(engine: sa.Engine, redis_url: str | None) -> EventBus:
    """Events committed through engine go out on this bus too (in-process watchers always hear of them)."""
    bus = event_bus_for(redis_url)
    with _registry_lock:
        _targets.setdefault(engine, set()).add(bus)
    return bus


def note_event(conn: sa.Connection, event_id: int, bot_id: int, user_id: int | None) -> None:
    """Called where the event row is written: its notice goes out once this transaction has committed."""
    if user_id is not None:  # None: no such bot, and the event's insert fails anyway
        after_commit(conn, partial(_publish, conn.engine, Notice(event_id, bot_id, user_id)))


def announce_change(engine: sa.Engine, user_id: int) -> None:
    """Tell every process that user_id's bots changed (call it once the change has committed)."""
    _publish(engine, Notice(CHANGE, 0, user_id))


def _publish(engine: sa.Engine, notice: Notice) -> None:
    with _registry_lock:
        buses = {_local, *_targets.get(engine, ())}
    for bus in buses:
        try:
            bus.publish([notice])
        except Exception:  # a notice only saves time: streams also poll the database
            log.exception("event notice not published")
