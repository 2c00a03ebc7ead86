"""Prometheus metrics: the API's GET /metrics (state read at scrape time + request figures) and who may read it.

Modules: http (request figures, summed over API worker processes), state (database, broker and slot figures read
at scrape time), queues (oldest-message age per queue), worker (a worker process's own figures on its own port).
"""

from __future__ import annotations

import hmac
import ipaddress
import sys

import dramatiq
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from meetbot import slots
from meetbot.metrics.http import RequestMetricsMiddleware, observe_request, request_figures, request_registry
from meetbot.metrics.state import RECENT_TRANSCRIPTS, StateCollector
from meetbot.settings import Settings

__all__ = [
    "CONTENT_TYPE",
    "RECENT_TRANSCRIPTS",
    "RequestMetricsMiddleware",
    "StateCollector",
    "observe_request",
    "render",
    "request_registry",
    "scrape_allowed",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(engine: sa.Engine, broker: dramatiq.Broker, slot_registry: slots.SlotRegistry | None = None) -> bytes:
    """The Prometheus text exposition: shared-state figures, this API's request figures, and (embedded mode, where
    the workers run in this process) the workers' own figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(engine, broker, slot_registry))
    body = generate_latest(registry) + request_figures()
    worker = sys.modules.get("meetbot.metrics.worker")  # imported by worker processes only
    if worker is not None and worker.IN_THIS_PROCESS.is_set():
        body += generate_latest(worker.worker_registry)
    return body


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
