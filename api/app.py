"""The Starlette application: routes from every resource module, error handling, body limits, OpenAPI, docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import swagger_ui_bundle
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from api.errors import handle_any_exception, handle_http_exception
from api.openapi import build_openapi
from api.routes import (
    analytics,
    api_keys,
    auth,
    bots,
    events,
    recordings,
    share,
    system,
    transcripts,
    users,
    webhooks,
)
from api.routing import Endpoint, make_routes
from api.services import Services
from meetbot.metrics import RequestMetricsMiddleware
from meetbot.settings import Settings, get_settings

API_PREFIX = "/api/v1"
ROUTERS = (
    auth.router,
    users.router,
    api_keys.router,
    bots.router,
    recordings.router,
    share.router,
    transcripts.router,
    webhooks.router,
    events.router,
    analytics.router,
)


def all_endpoints() -> list[Endpoint]:
    return [endpoint for router in ROUTERS for endpoint in router.endpoints]


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    settings = settings or get_settings()
    services = services or Services.from_settings(settings)
    endpoints = all_endpoints()
    openapi = build_openapi(endpoints, API_PREFIX)

    async def openapi_json(_request: Request) -> Response:
        return JSONResponse(openapi)

    async def readyz(_request: Request) -> Response:
        status, body = await run_in_threadpool(system.readiness, services)
        return JSONResponse(body, status_code=status)

    api_routes = make_routes(endpoints, services)
    routes: list[Any] = [
        Route("/healthz", system.healthz),
        Route("/readyz", readyz),
        Route("/metrics", system.metrics_endpoint(services)),
        Route(f"{API_PREFIX}/openapi.json", openapi_json),
        Route("/docs", system.docs_page),
        Route("/docs/init.js", system.docs_init),
        Mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets"),
        Mount(API_PREFIX, routes=api_routes),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Fewer threads than anyio's 40 contend less for the GIL and the connection pool (bench/api.py).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_worker_threads
        yield
        # A clean stop (SIGTERM) writes the request-log rows still buffered: none is lost.
        await run_in_threadpool(services.request_log.close)

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: handle_http_exception, Exception: handle_any_exception},
        lifespan=lifespan,
    )
    app.add_middleware(RequestMetricsMiddleware)  # requests by route template and status, latency histograms
    app.state.services = services
    app.state.openapi = openapi
    return app
