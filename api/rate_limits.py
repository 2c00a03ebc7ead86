"""Per-caller rate limits (per minute and per hour) with the seed's X-RateLimit-* headers."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from meetbot.errors import RateLimited
from meetbot.settings import Settings


class RateLimiter:
    """Moving-window limits in memory (one process) or in Redis (atomic Lua, shared by all API processes)."""

    def __init__(self, settings: Settings) -> None:
        self.storage: Storage = (
            RedisStorage(settings.redis_url, key_prefix="meetbot-rl") if settings.redis_url else MemoryStorage()
        )
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_minute = RateLimitItemPerMinute(settings.rate_limit_per_minute)
        self.per_hour = RateLimitItemPerHour(settings.rate_limit_per_hour)

    def hit(self, key: str) -> dict[str, str]:
        """Count one request for key; returns the headers, or raises RateLimited (429) with them."""
        for item in (self.per_minute, self.per_hour):
            if not self.limiter.hit(item, key):
                headers = self._headers(item, key)
                reset_at = self.limiter.get_window_stats(item, key).reset_time
                headers["Retry-After"] = str(max(1, math.ceil(reset_at - time.time())))
                raise RateLimited("Rate limit exceeded", headers=headers)
        minute = self._headers(self.per_minute, key)
        hour = self._headers(self.per_hour, key)
        # Report the limit the caller is closest to exhausting.
        return minute if int(minute["X-RateLimit-Remaining"]) <= int(hour["X-RateLimit-Remaining"]) else hour

    def _headers(self, item: RateLimitItemPerMinute | RateLimitItemPerHour, key: str) -> dict[str, str]:
        stats = self.limiter.get_window_stats(item, key)
        return {
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": str(max(0, stats.remaining)),
            "X-RateLimit-Reset": str(math.ceil(stats.reset_time)),
        }

    def ping(self) -> bool:
        return bool(self.storage.check())

    def reset(self) -> None:
        self.storage.reset()
