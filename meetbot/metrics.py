"""Prometheus metrics: figures read from the database and broker at scrape time, and the API's request counters."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable

import dramatiq
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meetbot import queue
from meetbot.db import tables
from meetbot.schemas.bots import BotStatus
from meetbot.settings import Settings

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RECENT_TRANSCRIPTS = 50  # the real-time factor is taken over this many latest finished transcripts

# This process's HTTP figures (one set per API process; Prometheus sums them across processes).
request_registry = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "meetbot_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=request_registry
)
REQUEST_SECONDS = Histogram(
    "meetbot_http_request_duration_seconds", "Time to answer a request", ["method", "route"], registry=request_registry
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request (the routing layer may call this directly instead of using the middleware)."""
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(seconds)


class RequestMetricsMiddleware:
    """ASGI middleware counting requests by route template and status, with a latency histogram."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"  # a template, never raw ids: bounded labels
            observe_request(scope["method"], template, status, time.perf_counter() - started)


class StateCollector(Collector):
    """Figures read at scrape time from the shared database and broker, so any API process reports the same."""

    def __init__(self, engine: sa.Engine, broker: dramatiq.Broker) -> None:
        self.engine = engine
        self.broker = broker

    def collect(self) -> Iterable[Metric]:
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


def render(engine: sa.Engine, broker: dramatiq.Broker) -> bytes:
    """The Prometheus text exposition: database and broker figures, then this process's request figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(engine, broker))
    return generate_latest(registry) + generate_latest(request_registry)


def scrape_allowed(settings: Settings, authorization: str | None, client_host: str | None) -> bool:
    """With MEETBOT_METRICS_TOKEN set, `Authorization: Bearer <token>` is required; without it only loopback."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if token:  # an empty MEETBOT_METRICS_TOKEN (compose's default) counts as unset
        expected = f"Bearer {token}"
        return authorization is not None and hmac.compare_digest(authorization.encode(), expected.encode())
    try:
        return client_host is not None and ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False
