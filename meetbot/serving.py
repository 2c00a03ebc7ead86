"""Serving an ASGI app with uvicorn until SIGTERM/SIGINT, then returning so callers can clean up."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn


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
