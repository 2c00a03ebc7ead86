"""What every request handler can reach: settings, database, broker, kill signals, rate limits, store, request log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dramatiq
import sqlalchemy as sa

from api.rate_limits import RateLimiter
from api.request_log import RequestLogBuffer
from meetbot.db import get_engine
from meetbot.domain.accounts import TokenPolicy
from meetbot.domain.principal_cache import PrincipalCache
from meetbot.event_bus import EventBus, publish_commits
from meetbot.queue import build_broker
from meetbot.settings import Settings
from meetbot.signals import KillSignals, kill_signals_for
from meetbot.slots import SlotRegistry, registry_for
from meetbot.storage import ObjectStore, store_from_url


@dataclass
class Services:
    settings: Settings
    engine: sa.Engine
    broker: dramatiq.Broker
    kill_signals: KillSignals
    rate_limiter: RateLimiter
    store: ObjectStore
    event_bus: EventBus  # notices of committed bot events, for the live streams
    secret_key: str = field(repr=False)
    request_log: RequestLogBuffer  # request-log rows and keys' last-used times, written in batches
    principal_cache: PrincipalCache  # checked bearer tokens, trusted for at most a second
    slot_registry: SlotRegistry  # the bot workers' slot offers, for queue positions and /metrics

    @property
    def token_policy(self) -> TokenPolicy:
        s = self.settings
        return TokenPolicy(self.secret_key, s.access_token_ttl_seconds, s.refresh_token_ttl_seconds)

    @classmethod
    def from_settings(cls, settings: Settings, broker: dramatiq.Broker | None = None) -> Services:
        engine = get_engine(settings.effective_database_url)
        return cls(
            settings=settings,
            engine=engine,
            broker=broker or build_broker(settings),
            kill_signals=kill_signals_for(settings.redis_url),
            rate_limiter=RateLimiter(settings),
            store=store_from_url(settings.effective_storage_url),
            event_bus=publish_commits(engine, settings.redis_url),
            secret_key=settings.resolved_secret_key(),
            request_log=RequestLogBuffer(engine, settings.request_log_flush_seconds, settings.request_log_max_pending),
            principal_cache=PrincipalCache(settings.principal_cache_seconds),
            slot_registry=registry_for(settings.redis_url),
        )

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn
