"""What one worker process shares between its actors: settings, database, storage, broker, desktop services."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import threading
from collections.abc import Iterator
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


def clean_dead_workers(runtime_root: Path, host: str | None = None) -> None:
    """Kill what a crashed worker process of this host left running (its D-Bus and PulseAudio) and drop its files.

    Each worker keeps its daemons' sockets and state under runtime_root/worker-<pid> (runtime_root is this host's
    own: workers_runtime_dir), so its leftovers are found by that path, matched at its boundaries (worker-12 is
    not worker-123), and by their worker tag "<host>:<pid>", once the pid is gone.
    """
    import psutil

    from workers.bots.processes import WORKER_TAG_ENV, kill_all, processes_matching, processes_owned_by

    if not runtime_root.is_dir():
        return
    for folder in runtime_root.glob("worker-*"):
        pid = folder.name.removeprefix("worker-")
        if not pid.isdigit() or int(pid) == os.getpid() or psutil.pid_exists(int(pid)):
            continue
        tagged = processes_owned_by(f"{host}:{pid}", WORKER_TAG_ENV) if host else []
        kill_all([*processes_matching(str(folder)), *tagged])
        shutil.rmtree(folder, ignore_errors=True)


def workers_runtime_dir(settings: Settings) -> Path:
    """This host's worker runtime folders (run/<host>/worker-<pid>): hosts sharing a data volume never meet."""
    return settings.runtime_dir / settings.effective_worker_host


@dataclass
class WorkerContext:
    settings: Settings
    engine: sa.Engine
    store: ObjectStore
    broker: dramatiq.Broker
    kill_signals: KillSignals
    shutdown: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)  # stopping: take no new bot
    slots_changed: threading.Event = field(default_factory=threading.Event)  # a bot was claimed or ended
    bot_slots: int = 0  # this process's bot slots (0: it runs no bots)
    bots_running: int = 0
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")  # "<host>:<pid>"
    _bus: SessionBus | None = None
    _pulse: PulseAudioServer | None = None
    _desktop_lock: threading.Lock = field(default_factory=threading.Lock)
    _slot_lock: threading.Lock = field(default_factory=threading.Lock)

    @functools.cached_property
    def secret_keys(self) -> tuple[str, ...]:
        """What opens the secrets sealed in the database (a meeting's password): the same keys as the API's."""
        return self.settings.secret_keys()

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
            worker_id=f"{settings.effective_worker_host}:{os.getpid()}",
        )

    @contextlib.contextmanager
    def bot_slot(self) -> Iterator[None]:
        """One bot slot held while a bot message runs: this process's slot figures, and a re-announce of the queue."""
        from meetbot.metrics.worker import set_bot_slots

        with self._slot_lock:
            self.bots_running += 1
            set_bot_slots(self.bots_running, self.bot_slots)
        try:
            yield
        finally:
            with self._slot_lock:
                self.bots_running -= 1
                set_bot_slots(self.bots_running, self.bot_slots)
            self.slots_changed.set()

    def desktop(self) -> tuple[SessionBus, PulseAudioServer]:
        """The process's D-Bus session bus and PulseAudio daemon, started on first use."""
        from workers.bots.desktop import PulseAudioServer, SessionBus

        with self._desktop_lock:
            if self._bus is None or self._pulse is None:
                runtime_root = workers_runtime_dir(self.settings)
                clean_dead_workers(runtime_root, self.settings.effective_worker_host)
                runtime = runtime_root / f"worker-{os.getpid()}"
                runtime.mkdir(parents=True, exist_ok=True)
                self._bus = SessionBus(runtime, worker_tag=self.worker_id)
                self._bus.start()
                self._pulse = PulseAudioServer(runtime, worker_tag=self.worker_id)
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
