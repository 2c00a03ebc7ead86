"""What every request handler can reach: settings, database, broker, kill signals, rate limits, store, request log."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import dramatiq
import sqlalchemy as sa

from api.page_cache import PageCache
from api.rate_limits import RateLimiter
from api.request_log import RequestLogBuffer
from api.write_batches import WriteBatches
from meetbot.db import get_engine
from meetbot.domain.accounts import TokenPolicy
from meetbot.domain.bots import CreatedBot, create_bots_committed
from meetbot.domain.principal_cache import PrincipalCache
from meetbot.event_bus import EventBus, Notice, announce_change, publish_commits
from meetbot.queue import build_broker
from meetbot.schemas.bots import BotCreate
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
    page_cache: PageCache  # callers' bot lists and bots, for at most a second, forgotten on every change
    new_bots: WriteBatches[tuple[int, BotCreate], CreatedBot]  # POST /bots: concurrent creations share one transaction

    @property
    def token_policy(self) -> TokenPolicy:
        s = self.settings
        return TokenPolicy(self.secret_key, s.access_token_ttl_seconds, s.refresh_token_ttl_seconds)

    def bots_changed(self, user_id: int) -> None:
        """A write by user_id committed: this process forgets the user's cached bots now, the others on the notice."""
        self.page_cache.forget(user_id)
        announce_change(self.engine, user_id)

    @classmethod
    def from_settings(cls, settings: Settings, broker: dramatiq.Broker | None = None) -> Services:
        engine = get_engine(settings.effective_database_url)
        page_cache = PageCache(settings.page_cache_seconds)
        event_bus = publish_commits(engine, settings.redis_url)
        secret_key = settings.resolved_secret_key()
        if page_cache.enabled:
            watch = event_bus.watch(None, None, _weak_callback(page_cache.on_notice), changes=True)
            weakref.finalize(page_cache, event_bus.unwatch, watch)
        return cls(
            settings=settings,
            engine=engine,
            broker=broker or build_broker(settings),
            kill_signals=kill_signals_for(settings.redis_url),
            rate_limiter=RateLimiter(settings),
            store=store_from_url(settings.effective_storage_url),
            event_bus=event_bus,
            secret_key=secret_key,
            request_log=RequestLogBuffer(engine, settings.request_log_flush_seconds, settings.request_log_max_pending),
            principal_cache=PrincipalCache(settings.principal_cache_seconds),
            slot_registry=registry_for(settings.redis_url),
            page_cache=page_cache,
            new_bots=WriteBatches(partial(create_bots_committed, engine, secret_key=secret_key)),
        )

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn


def _weak_callback(method: Callable[[Notice], None]) -> Callable[[Notice], None]:
    """A bus watch that does not keep its cache alive (apps come and go in one process: tests, reloads); the
    watch itself goes when the cache does (weakref.finalize)."""
    ref = weakref.WeakMethod(method)

    def callback(notice: Notice) -> None:
        target = ref()
        if target is not None:
            target(notice)

    return callback
