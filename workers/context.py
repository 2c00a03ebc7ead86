"""What one worker process shares between its actors: settings, database, storage, broker, desktop services."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dramatiq
import sqlalchemy as sa

from meetbot.db import get_engine
from meetbot.event_bus import publish_commits
from meetbot.settings import Settings
from meetbot.signals import KillSignals, RedisKillSignals, kill_signals_for
from meetbot.storage import ObjectStore, store_from_url

if TYPE_CHECKING:
    from workers.bots.desktop import PulseAudioServer, SessionBus


def clean_dead_workers(runtime_root: Path) -> None:
    """Kill what a crashed worker process left running (its D-Bus, PulseAudio, browsers) and drop its files.

    Each worker keeps its daemons' sockets and profiles under runtime_root/worker-<pid>, so its leftovers
    are found by that path once the pid is gone.
    """
    from workers.bots.processes import kill_all, processes_matching

    if not runtime_root.is_dir():
        return
    for folder in runtime_root.glob("worker-*"):
        pid = folder.name.removeprefix("worker-")
        if not pid.isdigit() or int(pid) == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        kill_all(processes_matching(str(folder)))
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class WorkerContext:
    settings: Settings
    engine: sa.Engine
    store: ObjectStore
    broker: dramatiq.Broker
    kill_signals: KillSignals
    shutdown: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)  # stopping: take no new bot
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _bus: SessionBus | None = None
    _pulse: PulseAudioServer | None = None
    _desktop_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings, broker: dramatiq.Broker) -> WorkerContext:
        signals = kill_signals_for(settings.redis_url)
        if isinstance(signals, RedisKillSignals):
            signals.start_listening()
        engine = get_engine(settings.effective_database_url)
        publish_commits(engine, settings.redis_url)  # the bot events this process writes reach the live streams
        return cls(
            settings=settings,
            engine=engine,
            store=store_from_url(settings.effective_storage_url),
            broker=broker,
            kill_signals=signals,
        )

    def desktop(self) -> tuple[SessionBus, PulseAudioServer]:
        """The process's D-Bus session bus and PulseAudio daemon, started on first use."""
        from workers.bots.desktop import PulseAudioServer, SessionBus

        with self._desktop_lock:
            if self._bus is None or self._pulse is None:
                clean_dead_workers(self.settings.runtime_dir)
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
