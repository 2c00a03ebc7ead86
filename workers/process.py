"""A worker process: Dramatiq workers for the chosen queues, the reaper's clock, and a clean SIGTERM shutdown."""

from __future__ import annotations

import logging
import threading
import time

import dramatiq

from meetbot import queue
from meetbot.settings import Settings
from workers.actors import declare_actors
from workers.bots.recording import recover_spooled_recordings
from workers.context import WorkerContext, clean_dead_workers

log = logging.getLogger("meetbot.worker")


class _SecondWorkerNotice(logging.Filter):
    """Hides Dramatiq's warning that a broker got a second worker's middleware.

    Bots and short jobs run in two Worker objects on one broker on purpose (a bot holds its thread for
    the whole meeting); each worker consumes only its own whitelisted queues, so the warning is noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "_WorkerMiddleware" not in record.getMessage()


class WorkerProcess:
    """Consumes `queues`; bots get their own worker threads (one per bot slot) apart from short jobs."""

    def __init__(
        self, settings: Settings, broker: dramatiq.Broker, queues: set[str] | None = None, bots_per_process: int = 0
    ) -> None:
        self.settings = settings
        self.broker = broker
        broker.logger.addFilter(_SecondWorkerNotice())
        self.queues = set(queues or queue.QUEUES)
        unknown = self.queues - set(queue.QUEUES)
        if unknown:
            raise ValueError(f"unknown queues: {', '.join(sorted(unknown))}")
        self.bot_slots = bots_per_process or settings.bots_per_process
        self.ctx = WorkerContext.create(settings, broker)
        declare_actors(broker, self.ctx)
        self.workers: list[dramatiq.Worker] = []
        self._clock_stop = threading.Event()
        self._clock: threading.Thread | None = None

    def start(self) -> None:
        if queue.QUEUE_BOTS in self.queues:
            clean_dead_workers(self.settings.runtime_dir)
            recovered = recover_spooled_recordings(self.ctx)  # what a crashed predecessor left here
            if recovered:
                log.info("recordings recovered from the spool", extra={"count": recovered})
            bots = dramatiq.Worker(self.broker, queues={queue.QUEUE_BOTS}, worker_threads=self.bot_slots)
            bots.queue_prefetch = self.bot_slots  # never hold a bot message that another process could run now
            self.workers.append(bots)
        if queue.QUEUE_WEBHOOKS in self.queues:
            # Deliveries wait on receivers (up to the timeout each): their own threads, apart from short jobs.
            # A short poll keeps retries (delayed messages) close to their due time.
            threads = self.settings.webhook_concurrency
            self.workers.append(
                dramatiq.Worker(self.broker, queues={queue.QUEUE_WEBHOOKS}, worker_threads=threads, worker_timeout=200)
            )
        others = self.queues - {queue.QUEUE_BOTS, queue.QUEUE_WEBHOOKS}
        if others:
            self.workers.append(dramatiq.Worker(self.broker, queues=others, worker_threads=2))
        for worker in self.workers:
            worker.start()
        if queue.QUEUE_MAINTENANCE in self.queues:
            self._clock = threading.Thread(target=self._tick, name="reaper-clock", daemon=True)
            self._clock.start()
        log.info(
            "worker started",
            extra={"queues": sorted(self.queues), "bot_slots": self.bot_slots, "worker_id": self.ctx.worker_id},
        )

    def _tick(self) -> None:
        """Schedules the maintenance jobs: the reaper, retention and the webhook sweep, each at its interval."""
        s = self.settings
        schedule = {
            queue.ACTOR_REAP: s.reaper_interval_seconds,
            queue.ACTOR_EXPIRE_RECORDINGS: s.retention_interval_seconds,
            queue.ACTOR_SEND_DUE_WEBHOOKS: s.webhook_sweep_interval_seconds,
        }
        due = {actor: time.monotonic() + interval for actor, interval in schedule.items()}
        due[queue.ACTOR_EXPIRE_RECORDINGS] = time.monotonic()  # retention also runs once at start
        while not self._clock_stop.wait(max(0.0, min(due.values()) - time.monotonic())):
            now = time.monotonic()
            for actor in [name for name, when in due.items() if when <= now]:
                due[actor] = now + schedule[actor]
                try:
                    queue.send(self.broker, queue.QUEUE_MAINTENANCE, actor)
                except Exception:
                    log.exception("could not schedule a maintenance job", extra={"actor": actor})

    def stop(self, timeout_s: float = 60.0) -> None:
        """Bots leave their calls and store their recordings, then the threads and daemons stop."""
        log.info("worker stopping")
        self.ctx.shutdown.set()
        self._clock_stop.set()
        # Side by side: each Dramatiq worker waits out its consumers' poll, so one after another adds up.
        stoppers = [
            threading.Thread(target=worker.stop, kwargs={"timeout": int(timeout_s * 1000)}, name="worker-stop")
            for worker in self.workers
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        self.ctx.close()
        log.info("worker stopped")
