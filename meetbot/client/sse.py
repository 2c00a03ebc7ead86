"""Server-Sent Events: the line decoder of the WHATWG spec, and the reconnection state of one stream."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from meetbot.client._core import DEFAULT_TIMEOUT, STREAM_READ_TIMEOUT, check


@dataclass(frozen=True)
class ServerSentEvent:
    """One event as sent: `event` (its type, "message" when unnamed), `data` (text), `id` (Last-Event-ID)."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


HEARTBEAT = ServerSentEvent(event="", data="")  # a comment line (": ping"): the link is alive, nothing happened


@dataclass
class SSEDecoder:
    """Feed it the stream's lines; it returns an event on each blank line that ends one, or HEARTBEAT on comments."""

    last_event_id: str | None = None
    retry_ms: int | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return HEARTBEAT
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\x00" not in value:
            self.last_event_id = value or None
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:  # no data: nothing to dispatch (the spec drops it; its id still counts)
            return None
        return ServerSentEvent(
            event=event or "message", data="\n".join(data), id=self.last_event_id, retry=self.retry_ms
        )


@dataclass
class Reconnection:
    """When and how a dropped event stream is opened again: with Last-Event-ID, after the server's retry delay."""

    max_reconnects: int | None = 10  # consecutive failed attempts; None: forever
    delay: float = 1.0
    last_event_id: str | None = None
    failures: int = 0

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def opened(self, response: httpx.Response) -> bool:
        """Check the stream's answer: False when the server said not to reconnect (204), an error raised."""
        if response.status_code == 204:
            return False
        check(response)
        return True

    def seen(self, decoder: SSEDecoder) -> None:
        """Something arrived (an event or a heartbeat): the link works; resume after the last id."""
        self.failures = 0
        self.last_event_id = decoder.last_event_id
        if decoder.retry_ms is not None:
            self.delay = decoder.retry_ms / 1000

    def dropped(self, exc: Exception | None) -> float:
        """The wait before the next attempt; re-raises exc once too many attempts in a row have failed."""
        self.failures += 1
        if self.max_reconnects is not None and self.failures > self.max_reconnects:
            if exc is not None:
                raise exc
            raise httpx.RemoteProtocolError("the event stream kept closing")
        return self.delay * min(self.failures, 5)


RETRYABLE = (httpx.TransportError,)


class Opened:
    """Yielded by the raw stream each time a connection is (re)established."""


OPENED = Opened()
StreamItem = ServerSentEvent | Opened


def read_timeout(deadline: float | None) -> httpx.Timeout:
    """The stream's timeouts: a read waits for the next heartbeat, but never past the deadline."""
    read = STREAM_READ_TIMEOUT
    if deadline is not None:
        read = max(0.05, min(read, deadline - time.monotonic()))
    return httpx.Timeout(DEFAULT_TIMEOUT, read=read)
