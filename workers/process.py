"""A worker process: Dramatiq workers for the chosen queues, the reaper's clock, and a clean SIGTERM shutdown."""

from __future__ import annotations

import logging
import threading
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import iter_queue

from meetbot import queue, slots
from meetbot.metrics.worker import serve_worker_metrics, set_bot_slots, stop_worker_metrics
from meetbot.settings import Settings
from workers.actors import declare_actors
from workers.bots.recording import recover_spooled_recordings
from workers.context import WorkerContext, clean_dead_workers, workers_runtime_dir

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
        self.ctx.bot_slots = self.bot_slots if queue.QUEUE_BOTS in self.queues else 0
        declare_actors(broker, self.ctx)
        self.workers: list[dramatiq.Worker] = []
        self.bot_worker: dramatiq.Worker | None = None
        self._clock_stop = threading.Event()
        self._clock: threading.Thread | None = None
        self._offers_stop = threading.Event()
        self._offers: threading.Thread | None = None

    def start(self) -> None:
        if queue.QUEUE_BOTS in self.queues:
            clean_dead_workers(workers_runtime_dir(self.settings), self.settings.effective_worker_host)
            clean_dead_workers(self.settings.runtime_dir)  # run/worker-<pid>: from before folders named a host
            recovered = recover_spooled_recordings(self.ctx)  # what a crashed predecessor left here
            if recovered:
                log.info("recordings recovered from the spool", extra={"count": recovered})
            bots = dramatiq.Worker(self.broker, queues={queue.QUEUE_BOTS}, worker_threads=self.bot_slots)
            bots.queue_prefetch = self.bot_slots  # never hold a bot message that another process could run now
            self.workers.append(bots)
            self.bot_worker = bots
            set_bot_slots(0, self.bot_slots)
            self._offers = threading.Thread(target=self._offer_slots, name="bot-slots", daemon=True)
            self._offers.start()
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
        serve_worker_metrics(self.settings)
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

    def _offer_slots(self) -> None:
        """Keeps this process's bot slots on offer to the fleet (draining: none), and re-announces the queue positions
        of waiting bots after each claim or end of one of its bots, and every few seconds (a kill elsewhere)."""
        registry = slots.registry_for(self.settings.redis_url)
        host = self.settings.effective_worker_host
        while True:
            self.ctx.slots_changed.clear()
            try:
                offer = slots.WorkerSlots(self.ctx.worker_id, host, self.bot_slots, self.ctx.draining.is_set())
                registry.offer(offer)
                slots.announce_queue_positions(self.ctx.engine, registry)
            except Exception:  # Redis or the database away for a moment: the next round tries again
                log.exception("bot slots not offered")
            if self._offers_stop.is_set():
                break
            self.ctx.slots_changed.wait(slots.REFRESH_SECONDS)
        try:
            registry.withdraw(self.ctx.worker_id)
        except Exception:  # its offer expires by itself
            log.exception("bot slots not withdrawn")

    def stop(self, timeout_s: float = 30.0, drain_timeout_s: float | None = None) -> None:
        """Drain, then stop: no new bot is taken; bots in a call go on until their calls end or the drain timeout
        (MEETBOT_DRAIN_TIMEOUT) passes, then leave and store their recordings. Short jobs get timeout_s."""
        drain_s = self.settings.drain_timeout if drain_timeout_s is None else drain_timeout_s
        log.info("worker stopping", extra={"drain_timeout_s": drain_s if self.bot_worker else 0})
        self.ctx.draining.set()
        self.ctx.slots_changed.set()  # its slots are withdrawn from the queue's count at once
        self._clock_stop.set()
        if self.bot_worker is not None:
            self._drain_bots(self.bot_worker, drain_s)
        self.ctx.shutdown.set()  # bots still in a call leave now (sub_code worker_shutdown) and upload
        # Side by side: each Dramatiq worker waits out its consumers' poll, so one after another adds up. The bot
        # worker waits for its bots to have left and uploaded (a few seconds; the upload retries are cut short).
        stoppers = [
            threading.Thread(target=worker.stop, kwargs={"timeout": int(timeout_s * 1000)}, name="worker-stop")
            for worker in self.workers
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        if self._offers is not None:
            self._offers_stop.set()
            self.ctx.slots_changed.set()
            self._offers.join(timeout=30)
        stop_worker_metrics()
        self.ctx.close()
        log.info("worker stopped")

    def _drain_bots(self, worker: dramatiq.Worker, drain_s: float) -> None:
        """Wait for the running bots to finish, up to drain_s, handing back to the broker any bot message taken.

        Dramatiq's worker threads stop taking work but finish the message they hold; its consumers stay up, so
        the broker keeps seeing heartbeats for the bots that go on (a silent consumer's messages are redelivered).
        """
        for thread in worker.workers:
            thread.stop()
        deadline = time.monotonic() + drain_s
        while True:
            self._hand_back_waiting(worker)
            busy = sum(thread.is_alive() for thread in worker.workers)
            if not busy:
                log.info("worker drained: no bot left in a call")
                return
            if time.monotonic() >= deadline:
                log.info("drain timeout: the bots left in a call leave now", extra={"bots": busy})
                return
            time.sleep(0.5)

    @staticmethod
    def _hand_back_waiting(worker: dramatiq.Worker) -> None:
        """Bot messages prefetched but not started go back on their queue for another worker now.

        Only Redis consumers can requeue one message while they run; RabbitMQ redelivers what a consumer held
        when it closes, and the in-process broker has no other worker: there the message waits for the stop.
        """
        if not isinstance(worker.broker, RedisBroker):
            return
        for item in iter_queue(worker.work_queue):
            message = item.message
            try:
                worker.consumers[message.queue_name].requeue_messages([message])
                log.info("bot message handed back while draining", extra={"message_id": message.message_id})
            except Exception:  # the broker is unreachable: the message is redelivered once its lease runs out
                log.exception("bot message not handed back", extra={"message_id": message.message_id})
