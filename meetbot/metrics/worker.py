"""A worker process's own figures (deploy → IN_CALL latency, its bot slots), served on its own metrics port.

MEETBOT_WORKER_METRICS_PORT (0: off) is the first port tried on MEETBOT_WORKER_METRICS_HOST; when it is taken (another
worker process of this host has it), the next one is tried, up to PORT_SPAN ports: with honcho's `worker=3` the
processes get port, port+1, port+2 (each logs the port it got, "worker metrics served"). In containers (compose's
`--scale`) every process has its own network namespace and they all get the first port.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server

from meetbot.db import now_utc
from meetbot.errors import MeetBotError
from meetbot.settings import Settings

log = logging.getLogger("meetbot.worker")

PORT_SPAN = 32  # ports tried from MEETBOT_WORKER_METRICS_PORT on
JOIN_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)

IN_THIS_PROCESS = threading.Event()  # set once a worker runs here (the embedded mode: the API shows these too)
worker_registry = CollectorRegistry(auto_describe=True)
BOT_JOIN_SECONDS = Histogram(
    "meetbot_bot_deploy_to_in_call_seconds",
    "Seconds from a bot's deploy (or its startTime, when later) to IN_CALL, observed by the worker that ran it",
    buckets=JOIN_BUCKETS,
    registry=worker_registry,
)
PROCESS_BOT_SLOTS = Gauge(
    "meetbot_worker_bot_slots", "This worker process's bot slots, busy or free", ["state"], registry=worker_registry
)


_servers: list[WSGIServer] = []


class MetricsPortError(MeetBotError):
    """No port left for a worker's metrics."""


def observe_join(deployed_at: datetime | None, start_time: datetime | None) -> None:
    """A bot reached IN_CALL now: count its deploy → IN_CALL seconds."""
    if deployed_at is None:
        return
    since = max(deployed_at, start_time) if start_time is not None else deployed_at
    BOT_JOIN_SECONDS.observe(max(0.0, (now_utc() - since).total_seconds()))


def set_bot_slots(busy: int, total: int) -> None:
    PROCESS_BOT_SLOTS.labels("busy").set(busy)
    PROCESS_BOT_SLOTS.labels("free").set(max(0, total - busy))


def serve_worker_metrics(settings: Settings) -> int | None:
    """Serve this process's figures over HTTP from the configured port on (see above); the port, or None when off."""
    IN_THIS_PROCESS.set()
    first = settings.worker_metrics_port
    if not first:
        return None
    for port in range(first, min(first + PORT_SPAN, 65536)):
        try:
            server, _thread = start_http_server(port, addr=settings.worker_metrics_host, registry=worker_registry)
        except OSError:  # taken: another worker process of this host has it
            continue
        _servers.append(server)
        log.info("worker metrics served", extra={"port": port, "host": settings.worker_metrics_host})
        return port
    raise MetricsPortError(f"no free port for the worker's metrics in {first}-{first + PORT_SPAN - 1}")


def stop_worker_metrics() -> None:
    """Close the metrics ports this process opened (a worker stopping inside a longer-lived process: tests, `up`)."""
    while _servers:
        server = _servers.pop()
        server.shutdown()
        server.server_close()
