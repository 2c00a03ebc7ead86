"""A caller's bot list and bots, answered from memory for at most a second and forgotten when they change."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from meetbot.event_bus import Notice

DEFAULT_MAX_BYTES = 32 * 2**20  # bodies kept at most; the oldest go first


@dataclass(frozen=True, slots=True)
class _Entry:
    body: bytes
    generation: int  # the owner's generation when the read began
    expires: float  # the read's start plus the cache's lifetime


@dataclass(slots=True)
class _Read:
    """A read under way: whose, under which key, begun when and under which generation of its owner."""

    user_id: int
    key: Hashable
    generation: int
    started: float
    future: asyncio.Future[bytes]


class PageCache:
    """(user id, key) → the JSON body of a successful read, trusted for at most `ttl_seconds` after the read began.

    Each user has a generation, bumped by `forget(user_id)`: after any write by that user through this process's
    API, and on every notice of the event bus (a bot event or a change announced by another API process). An entry
    serves only while its generation is the owner's current one, so a read that began before a change is never
    served after it. What changes with no notice (a heartbeat) shows within the lifetime.

    Concurrent misses of one key share one read (started after the last change): when an entry expires under load,
    one request reads the database, not every connection at once.
    """

    def __init__(self, ttl_seconds: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self._entries: dict[tuple[int, Hashable], _Entry] = {}
        self._bytes = 0
        self._generations: dict[int, int] = {}
        self._reads: dict[tuple[int, int, Hashable, int], _Read] = {}  # (loop, user, key, generation) -> read
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def forget(self, user_id: int) -> None:
        """The user's bots changed: no entry or read begun before now is served again (any thread)."""
        with self._lock:
            self._generations[user_id] = self._generations.get(user_id, 0) + 1

    def on_notice(self, notice: Notice) -> None:
        self.forget(notice.user_id)

    def get(self, user_id: int, key: Hashable) -> bytes | None:
        entry = self._entries.get((user_id, key))
        if entry is None or entry.generation != self._generations.get(user_id, 0) or time.monotonic() >= entry.expires:
            return None
        return entry.body

    async def fetch(self, user_id: int, key: Hashable, read: Callable[[], Awaitable[bytes]]) -> bytes:
        """The body under key: from memory while fresh, else from `read()`, shared by every caller that misses
        while it runs. An exception from read() reaches those callers and keeps nothing."""
        body = self.get(user_id, key)
        if body is not None:
            return body
        generation = self._generations.get(user_id, 0)
        shared_key = (id(asyncio.get_running_loop()), user_id, key, generation)
        shared = self._reads.get(shared_key)
        if shared is None:
            shared = _Read(user_id, key, generation, time.monotonic(), asyncio.ensure_future(read()))
            self._reads[shared_key] = shared
            shared.future.add_done_callback(lambda _: self._finish(shared_key, shared))  # type: ignore[arg-type]
        return await asyncio.shield(shared.future)  # one caller's disconnect does not cancel the others' read

    def _finish(self, shared_key: tuple[int, int, Hashable, int], shared: _Read) -> None:
        if self._reads.get(shared_key) is shared:
            del self._reads[shared_key]
        done = shared.future
        if done.cancelled() or done.exception() is not None:  # retrieved here: every waiter may have gone
            return
        if shared.generation != self._generations.get(shared.user_id, 0):  # a change came during the read
            return
        self._put(shared.user_id, shared.key, _Entry(done.result(), shared.generation, shared.started + self.ttl))

    def _put(self, user_id: int, key: Hashable, entry: _Entry) -> None:
        with self._lock:
            old = self._entries.pop((user_id, key), None)
            if old is not None:
                self._bytes -= len(old.body)
            if len(entry.body) > self.max_bytes:
                return
            while self._entries and self._bytes + len(entry.body) > self.max_bytes:
                oldest = next(iter(self._entries))
                self._bytes -= len(self._entries.pop(oldest).body)
            self._entries[(user_id, key)] = entry
            self._bytes += len(entry.body)
