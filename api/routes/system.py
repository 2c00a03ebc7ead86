"""Health and readiness probes, Prometheus metrics, the OpenAPI document and the offline interactive docs page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pika
import sqlalchemy as sa
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from api.services import Services
from meetbot import metrics

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MeetBot API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body></html>
"""

DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout",
  persistAuthorization: true,
  validatorUrl: null
});
"""


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def readiness(services: Services) -> tuple[int, dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        with services.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, do not raise: this is a probe
        checks["database"] = f"error: {type(exc).__name__}"
    if services.settings.redis_url:
        try:
            checks["redis"] = "ok" if services.rate_limiter.ping() else "error: no answer"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    if isinstance(services.broker, RabbitmqBroker) and services.settings.broker_url:
        try:  # a fresh connection: the broker's own one may look open after the server went away
            parameters = pika.URLParameters(services.settings.broker_url)
            parameters.socket_timeout = parameters.blocked_connection_timeout = 3
            pika.BlockingConnection(parameters).close()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
    try:
        services.store.check()
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"error: {type(exc).__name__}"
    ok = all(value == "ok" for value in checks.values())
    return (200 if ok else 503), {"status": "ok" if ok else "unavailable", **checks}


def docs_page(_request: Request) -> Response:
    return HTMLResponse(DOCS_PAGE)


def docs_init(_request: Request) -> Response:
    return Response(DOCS_INIT, media_type="application/javascript")


def metrics_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """GET /metrics: Prometheus text for a scraper with MEETBOT_METRICS_TOKEN as its bearer token (or, with no
    token set, on loopback); anyone else gets 403 {"detail": …}."""

    async def metrics_page(request: Request) -> Response:
        client_host = request.client.host if request.client else None
        if not metrics.scrape_allowed(services.settings, request.headers.get("authorization"), client_host):
            return JSONResponse({"detail": "metrics need MEETBOT_METRICS_TOKEN as a bearer token"}, status_code=403)
        body = await run_in_threadpool(metrics.render, services.engine, services.broker, services.slot_registry)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    return metrics_page
