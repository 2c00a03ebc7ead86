"""The API's request figures: requests by route and status, latency histograms, requests per API process.

With several API worker processes (`meetbot api --workers N`), each writes its figures to prometheus_client's
multiprocess folder (PROMETHEUS_MULTIPROC_DIR, set by meetbot/serving.py) and a scrape, whichever process answers
it, sums them all: one target, counters that never jump between processes.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

request_registry = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "meetbot_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=request_registry
)
REQUEST_SECONDS = Histogram(
    "meetbot_http_request_duration_seconds", "Time to answer a request", ["method", "route"], registry=request_registry
)
# One series per live API process (label pid, added in the multiprocess mode): how the load spreads over them.
PROCESS_REQUESTS = Gauge(
    "meetbot_api_process_requests",
    "Requests answered by this API process since it started (one series per live process)",
    registry=request_registry,
    multiprocess_mode="liveall",
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request (the routing layer may call this directly instead of using the middleware)."""
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(seconds)
    PROCESS_REQUESTS.inc()


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


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _forget_dead_processes(folder: Path) -> None:
    """Drop the per-process series of API workers that are gone (uvicorn replaced a crashed one): counters stay."""
    for path in folder.glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.search(path.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            mark_process_dead(int(match.group(1)), str(folder))


def request_figures() -> bytes:
    """This API's request figures: every worker process's, summed, in the multiprocess mode; else this process's."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return generate_latest(request_registry)
    _forget_dead_processes(Path(folder))
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=folder)
    return generate_latest(registry)
