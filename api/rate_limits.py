"""Per-caller rate limits (per minute and per hour) with the seed's X-RateLimit-* headers.

Both windows are exact moving windows: a request is admitted when fewer than `limit` admitted requests of the caller
fall in the last minute (and the last hour). One atomic operation checks both windows, counts the request and
returns what is left, so two responses never show the same X-RateLimit-Remaining and no caller is ever served more
than its limit, however many API processes share the Redis server. A refused request is not counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import redis

from meetbot.errors import RateLimited
from meetbot.settings import Settings

MINUTE, HOUR = 60, 3600
KEY_PREFIX = "meetbot-rl2"

# KEYS: the caller's minute and hour lists (newest first). ARGV: now, then (limit, window) per key.
# Entries older than their window are dropped from the tail; a list never holds more than its limit.
# Returns {admitted, minute count, minute oldest, hour count, hour oldest} (counts after this request).
_HIT_SCRIPT = """
local now = tonumber(ARGV[1])
local counts, oldest = {}, {}
for i = 1, 2 do
  local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  while true do
    local tail = redis.call('LINDEX', KEYS[i], -1)
    if not tail or tonumber(tail) > now - window then break end
    redis.call('RPOP', KEYS[i])
  end
  counts[i] = redis.call('LLEN', KEYS[i])
  oldest[i] = redis.call('LINDEX', KEYS[i], -1) or ARGV[1]
end
local admitted = 1
for i = 1, 2 do
  if counts[i] >= tonumber(ARGV[2 * i]) then admitted = 0 end
end
if admitted == 1 then
  for i = 1, 2 do
    redis.call('LPUSH', KEYS[i], ARGV[1])
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2 * i + 1]))
    counts[i] = counts[i] + 1
  end
end
return {admitted, counts[1], oldest[1], counts[2], oldest[2]}
"""


@dataclass(frozen=True)
class WindowState:
    limit: int
    window: int
    count: int  # admitted requests in the window, this one included when it was admitted
    oldest: float  # the oldest of them (now when there is none): the window frees a request at oldest + window

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def reset_at(self) -> float:
        return self.oldest + self.window


class RateLimiter:
    """Moving-window limits in memory (one process) or in Redis (one Lua script, shared by all API processes)."""

    def __init__(self, settings: Settings) -> None:
        self.limits = ((settings.rate_limit_per_minute, MINUTE), (settings.rate_limit_per_hour, HOUR))
        self.redis = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
        self._script = self.redis.register_script(_HIT_SCRIPT) if self.redis is not None else None
        self._windows: dict[str, tuple[deque[float], deque[float]]] = {}
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        """Whether the counts live in Redis (a network round trip: callers run hit() off the event loop)."""
        return self.redis is not None

    def hit(self, key: str) -> dict[str, str]:
        """Count one request for key; returns the headers, or raises RateLimited (429) with them."""
        admitted, states = self._hit_redis(key) if self._script is not None else self._hit_memory(key)
        if not admitted:
            full = next(state for state in states if state.count >= state.limit)
            headers = self._headers(full)
            headers["Retry-After"] = str(max(1, math.ceil(full.reset_at - time.time())))
            raise RateLimited("Rate limit exceeded", headers=headers)
        # Report the limit the caller is closest to exhausting.
        return self._headers(min(states, key=lambda state: state.remaining))

    def _hit_memory(self, key: str) -> tuple[bool, list[WindowState]]:
        now = time.time()
        with self._lock:
            windows = self._windows.get(key)
            if windows is None:
                windows = self._windows[key] = (deque(), deque())
            for entries, (_limit, window) in zip(windows, self.limits, strict=True):
                while entries and entries[0] <= now - window:
                    entries.popleft()
            admitted = all(len(entries) < limit for entries, (limit, _w) in zip(windows, self.limits, strict=True))
            if admitted:
                for entries in windows:
                    entries.append(now)
            states = [
                WindowState(limit, window, len(entries), entries[0] if entries else now)
                for entries, (limit, window) in zip(windows, self.limits, strict=True)
            ]
            if len(self._windows) > 100_000:  # callers idle for an hour hold nothing
                self._forget_idle(now)
        return admitted, states

    def _forget_idle(self, now: float) -> None:
        for key in [key for key, (_m, hour) in self._windows.items() if not hour or hour[-1] <= now - HOUR]:
            del self._windows[key]

    def _hit_redis(self, key: str) -> tuple[bool, list[WindowState]]:
        assert self._script is not None
        (minute_limit, _), (hour_limit, _) = self.limits
        keys = [f"{KEY_PREFIX}:{key}:m", f"{KEY_PREFIX}:{key}:h"]
        args = [repr(time.time()), minute_limit, MINUTE, hour_limit, HOUR]
        admitted, minute_count, minute_oldest, hour_count, hour_oldest = self._script(keys=keys, args=args)
        states = [
            WindowState(minute_limit, MINUTE, int(minute_count), float(minute_oldest)),
            WindowState(hour_limit, HOUR, int(hour_count), float(hour_oldest)),
        ]
        return bool(admitted), states

    @staticmethod
    def _headers(state: WindowState) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(state.limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": str(math.ceil(state.reset_at)),
        }

    def ping(self) -> bool:
        return True if self.redis is None else bool(self.redis.ping())

    def reset(self) -> None:
        """Forget every count (tests)."""
        with self._lock:
            self._windows.clear()
        if self.redis is not None:
            keys = list(self.redis.scan_iter(f"{KEY_PREFIX}:*", count=1000))
            if keys:
                self.redis.delete(*keys)
