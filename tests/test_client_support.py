"""Helpers of the SDK tests (no tests here): the API over HTTP, a connection-cutting proxy, a webhook receiver."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dramatiq
import sqlalchemy as sa
import uvicorn

from api.app import create_app
from api.services import Services
from meetbot.client import MeetBotClient
from meetbot.db import migrate, now_utc
from meetbot.domain import bot_states
from meetbot.queue import build_broker
from meetbot.schemas.bots import BotStatus as S
from meetbot.settings import Settings
from meetbot.signals import kill_signals_for
from tests.conftest import make_settings
from tests.support import free_port
from workers.bots.recording import store_recording
from workers.bots.reporting import BotReporter
from workers.context import WorkerContext
from workers.process import WorkerProcess

MEETING = {"platform": "google", "meeting_url": "https://meet.google.com/abc-defg-hij"}
PASSWORD = "correct horse 1"


@dataclass
class Served:
    """The API running in this process: its base URL (as an SDK user gives it) and its services."""

    url: str
    services: Services

    def user(self) -> MeetBotClient:
        """A new account's client, authenticated with an API key made for it."""
        email = f"sdk-{uuid.uuid4().hex[:10]}@example.com"
        with MeetBotClient(self.url) as login:
            login.register(email, PASSWORD, "SDK User")
            login.login(email, PASSWORD)
            key = login.create_api_key("sdk").key
        return MeetBotClient(self.url, api_key=key)


@contextmanager
def serving(settings: Settings, broker: dramatiq.Broker | None = None) -> Iterator[Served]:
    """create_app served by uvicorn in a thread on a free loopback port."""
    services = Services.from_settings(settings, broker=broker)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, services), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", services)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sqlite_settings(tmp: Path, **overrides: Any) -> Settings:
    db_url = f"sqlite:///{tmp / 'meetbot.db'}"
    migrate(db_url)
    return make_settings(tmp, db_url, storage_url=f"file://{tmp / 'store'}", **overrides)


@contextmanager
def served_with_workers(tmp: Path, queues: set[str]) -> Iterator[Served]:
    """The API and workers on `queues` sharing one broker (no bot runner unless asked), with fast streams."""
    fast = {"webhook_allow_private": True, "sse_poll_seconds": 0.5, "sse_heartbeat_seconds": 1}
    settings = sqlite_settings(tmp, **fast)
    broker = build_broker(settings)
    workers = WorkerProcess(settings, broker, queues=queues)
    workers.start()
    try:
        with serving(settings, broker) as served:
            yield served
    finally:
        workers.stop()


class CuttingProxy:
    """A loopback TCP proxy in front of the API that can cut connections: after N response bytes, or on demand."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.cut_after: int | None = None  # the next connection is cut after this many response bytes
        self.connections = 0
        self.live: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            cut, self.cut_after = self.cut_after, None
            self.connections += 1
            self.live.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, cut), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, cut: int | None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if cut is not None and sent + len(data) >= cut:
                    sink.sendall(data[: max(0, cut - sent)])
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        self._close(source, sink)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            self.live.discard(sock)
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def drop(self) -> None:
        """Cut every open connection now (a network failure, as the client sees it)."""
        self._close(*list(self.live))

    def close(self) -> None:
        self.listener.close()
        self.drop()


def finished_bot_with_recording(served: Served, client: MeetBotClient, media: Path) -> int:
    """A bot of the client's user that has ended, with media stored as its recording by the worker's own code."""
    bot = client.create_bot(meeting_info=MEETING, meeting_title="SDK sync")
    engine = served.services.engine
    with engine.begin() as conn:
        bot_states.transition(conn, bot.id, S.CALL_ENDED, "meeting_ended", "test", left_at=now_utc())
        bot_states.transition(conn, bot.id, S.DONE, "meeting_ended", "test")
        user_id = conn.execute(sa.text("select user_id from bots where id = :id"), {"id": bot.id}).scalar_one()
    services = served.services
    ctx = WorkerContext(services.settings, engine, services.store, services.broker, kill_signals_for(None))
    content_type = "audio/mp4" if media.suffix == ".m4a" else "video/mp4"
    store_recording(ctx, user_id, bot.id, media, BotReporter(engine, bot.id), content_type=content_type)
    return bot.id


def emit(served: Served, bot_id: int, count: int) -> list[int]:
    """Bot events written as a worker writes them (each in its own transaction); their ids."""
    ids = []
    for n in range(count):
        with served.services.engine.begin() as conn:
            ids.append(bot_states.record_event(conn, bot_id, "PARTICIPANT_JOIN", {"name": f"Guest {n}"}))
    return ids


@contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    """A real HTTP receiver on loopback: keeps each POST's body and headers, answers 204."""
    received: list[tuple[bytes, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            received.append((body, dict(self.headers.items())))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/meetbot", received
    finally:
        server.shutdown()
        server.server_close()
