"""Figures read at scrape time from the shared database, broker and slot registry: any API process reports the same."""

from __future__ import annotations

from collections.abc import Iterable

import dramatiq
import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meetbot import queue, slots
from meetbot.db import tables
from meetbot.metrics.queues import oldest_message_ages
from meetbot.schemas.bots import BotStatus

RECENT_TRANSCRIPTS = 50  # the real-time factor is taken over this many latest finished transcripts


class StateCollector(Collector):
    """Bots by status, recording bytes, webhook attempts, transcription speed, queues, and every worker's bot slots."""

    def __init__(self, engine: sa.Engine, broker: dramatiq.Broker, registry: slots.SlotRegistry | None = None) -> None:
        self.engine = engine
        self.broker = broker
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        workers = self.registry.live() if self.registry is not None else []
        with self.engine.connect() as conn:
            bot_counts = dict(
                conn.execute(sa.select(tables.bots.c.status, sa.func.count()).group_by(tables.bots.c.status)).all()
            )
            recording_bytes = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(tables.recordings.c.size_bytes), 0)))
            total_bytes = int(recording_bytes.scalar_one())
            codes = conn.execute(
                sa.select(tables.webhook_attempts.c.status_code, sa.func.count()).group_by(
                    tables.webhook_attempts.c.status_code
                )
            ).all()
            finished = conn.execute(
                sa.select(
                    tables.transcripts.c.created_at,
                    tables.transcripts.c.updated_at,
                    tables.recordings.c.duration_seconds,
                )
                .join(tables.recordings, tables.recordings.c.bot_id == tables.transcripts.c.bot_id)
                .where(tables.transcripts.c.status == "done")
                .order_by(tables.transcripts.c.updated_at.desc())
                .limit(RECENT_TRANSCRIPTS)
            ).all()
            slot_use = slots.slot_use(conn, workers)

        bots = GaugeMetricFamily("meetbot_bots", "Bots by status", labels=["status"])
        for status in BotStatus:
            bots.add_metric([status.value], bot_counts.get(status.value, 0))
        yield bots

        yield GaugeMetricFamily("meetbot_recording_bytes", "Bytes of stored recordings", value=total_bytes)

        attempts = CounterMetricFamily("meetbot_webhook_attempts", "Webhook delivery attempts", labels=["outcome"])
        outcomes = {"success": 0, "http_error": 0, "network_error": 0}
        for code, count in codes:
            outcome = "network_error" if code is None else "success" if 200 <= code < 300 else "http_error"
            outcomes[outcome] += count
        for outcome, count in outcomes.items():
            attempts.add_metric([outcome], count)
        yield attempts

        audio_seconds = sum(duration for _created, _updated, duration in finished)
        busy_seconds = sum((updated - created).total_seconds() for created, updated, _duration in finished)
        yield GaugeMetricFamily(
            "meetbot_transcription_realtime_factor",
            f"Request-to-done seconds per audio second over the last {RECENT_TRANSCRIPTS} transcripts (0: none yet)",
            value=busy_seconds / audio_seconds if audio_seconds > 0 else 0.0,
        )

        depth = GaugeMetricFamily(
            "meetbot_queue_depth", "Messages held per queue (autoscale on bots)", labels=["queue"]
        )
        for name, count in queue.queue_depths(self.broker).items():
            depth.add_metric([name], count)
        yield depth

        ages = oldest_message_ages(self.broker)
        if ages:  # RabbitMQ: depth only
            age = GaugeMetricFamily(
                "meetbot_queue_oldest_message_age_seconds",
                "How long the oldest message waiting on each queue has waited (0: none waits; Redis broker only)",
                labels=["queue"],
            )
            for name, seconds in ages.items():
                age.add_metric([name], seconds)
            yield age

        slot_family = GaugeMetricFamily(
            "meetbot_bot_slots",
            "Bot slots of each live bot worker process, busy (a bot from claim to DONE/FATAL) or free",
            labels=["worker", "host", "state"],
        )
        for use in slot_use:
            slot_family.add_metric([use.worker.worker_id, use.worker.host, "busy"], use.busy)
            slot_family.add_metric([use.worker.worker_id, use.worker.host, "free"], use.free)
        yield slot_family
