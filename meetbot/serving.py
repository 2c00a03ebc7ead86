"""Serving an ASGI app with uvicorn until SIGTERM/SIGINT (one process, or N worker processes), then returning."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from meetbot.metrics.http import MULTIPROC_ENV  # where every API worker process writes its figures

log = logging.getLogger("meetbot.api")

# The app factory each API worker process imports (uvicorn starts them fresh: they get an import string).
API_APP_FACTORY = "meetbot.serving:api_app_from_environment"


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a captured SIGTERM after shutting down, which kills the process before the
        # caller's cleanup (stopping workers) runs; serve() handles the signals itself instead.
        yield


def serve(app: Any, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then return normally (exit status 0)."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    server = _Server(config)

    # The server's own handler (a second Ctrl-C forces the exit); being the server's bound method, it also lets
    # sse-starlette see the shutdown and end open event streams, which uvicorn would otherwise wait on forever.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, server.handle_exit)
    server.run()


def serve_workers(factory: str, host: str, port: int, workers: int, metrics_dir: Path) -> None:
    """N uvicorn worker processes on one listening socket, each building its app from `factory` (an import string).

    SIGTERM/SIGINT to this (parent) process is passed on to every worker, which finishes its requests and runs its
    app's lifespan shutdown (the request log's last rows are written) before it exits; then this returns (exit 0).
    The workers' Prometheus figures go to metrics_dir, emptied first and removed at the end.
    """
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(metrics_dir)  # the spawned workers inherit it
    config = uvicorn.Config(
        factory, factory=True, host=host, port=port, workers=workers, log_config=None, access_log=False
    )
    sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()  # its own SIGTERM/SIGINT handlers: stop, then join the workers
    finally:
        sock.close()
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def api_app_from_environment() -> Any:
    """The API app of one uvicorn worker process: settings from MEETBOT_* (as its parent's), logging as configured."""
    from api.app import create_app
    from meetbot.logs import configure_logging
    from meetbot.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    log.info("api worker process started", extra={"pid": os.getpid()})
    return create_app(settings)
