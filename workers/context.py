"""What one worker process shares between its actors: settings, database, storage, broker, desktop services."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dramatiq
import sqlalchemy as sa

from meetbot.db import get_engine
from meetbot.settings import Settings
from meetbot.signals import KillSignals, RedisKillSignals, kill_signals_for
from meetbot.storage import ObjectStore, store_from_url

if TYPE_CHECKING:
    from workers.bots.desktop import PulseAudioServer, SessionBus


@dataclass
class WorkerContext:
    settings: Settings
    engine: sa.Engine
    store: ObjectStore
    broker: dramatiq.Broker
    kill_signals: KillSignals
    shutdown: threading.Event = field(default_factory=threading.Event)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _bus: SessionBus | None = None
    _pulse: PulseAudioServer | None = None
    _desktop_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings, broker: dramatiq.Broker) -> WorkerContext:
        signals = kill_signals_for(settings.redis_url)
        if isinstance(signals, RedisKillSignals):
            signals.start_listening()
        return cls(
            settings=settings,
            engine=get_engine(settings.effective_database_url),
            store=store_from_url(settings.effective_storage_url),
            broker=broker,
            kill_signals=signals,
        )

    def desktop(self) -> tuple[SessionBus, PulseAudioServer]:
        """The process's D-Bus session bus and PulseAudio daemon, started on first use."""
        from workers.bots.desktop import PulseAudioServer, SessionBus

        with self._desktop_lock:
            if self._bus is None or self._pulse is None:
                runtime = self.settings.runtime_dir / f"worker-{os.getpid()}"
                runtime.mkdir(parents=True, exist_ok=True)
                self._bus = SessionBus(runtime)
                self._bus.start()
                self._pulse = PulseAudioServer(runtime)
                self._pulse.start()
            return self._bus, self._pulse

    def close(self) -> None:
        with self._desktop_lock:
            if self._pulse is not None:
                self._pulse.stop()
            if self._bus is not None:
                self._bus.stop()
            self._pulse = self._bus = None
        self.kill_signals.close()
