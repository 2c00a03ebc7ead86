"""A real webhook receiver for tests and benchmarks: uvicorn + Starlette on a loopback port, in a thread.

It records every request (path, headers, body, time) and answers as told: fail the first N requests, answer
with a status, a huge or endless body, never, or a redirect. It can stop and start again on the same port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import free_port


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    fail_first: int = 0  # the first N requests get 500
    status: int = 200
    reply: bytes = b"ok"
    mode: str = "normal"  # normal | endless (an infinite body) | never (no answer) | redirect
    redirect_to: str = ""
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            failing = len(self.hits) < self.fail_first
            status = 500 if failing else self.status
            self.hits.append(Hit(request.url.path, dict(request.headers), body, time.time(), status))
        if self.mode == "never" and not failing:
            await asyncio.sleep(3600)
        if self.mode == "redirect" and not failing:
            return RedirectResponse(self.redirect_to, status_code=302)
        if self.mode == "endless" and not failing:
            return StreamingResponse(_endless(), status_code=status)
        return Response(b"receiver failing" if failing else self.reply, status_code=status)

    def accepted(self) -> list[Hit]:
        with self._lock:
            return [hit for hit in self.hits if 200 <= hit.status < 300]

    def start(self) -> Receiver:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST", "GET"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None


async def _endless() -> AsyncIterator[bytes]:
    chunk = b"x" * 65536
    while True:
        yield chunk
        await asyncio.sleep(0)
