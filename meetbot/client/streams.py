"""Event-stream iterators (sync and async) that yield typed BotEvents and keep the stream's resume point."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

from meetbot.client import sse
from meetbot.schemas.bots import BotEvent


def _event(item: sse.StreamItem) -> BotEvent | None:
    """The BotEvent an SSE message carries (its data is the event as GET /events shows it); None for the rest."""
    if isinstance(item, sse.ServerSentEvent) and item is not sse.HEARTBEAT:
        return BotEvent.model_validate_json(item.data)
    return None


class EventStream:
    """`for event in stream:` each BotEvent as it happens; reconnects by itself, resuming after last_event_id.

    last_event_id is the stream's position: pass it to a later stream_*_events call to go on from there.
    Iterating blocks until the next event; close() (or leaving a `with` block) ends the connection.
    """

    def __init__(self, items: Generator[sse.StreamItem, None, None], link: sse.Reconnection) -> None:
        self._items = items
        self._link = link

    @property
    def last_event_id(self) -> str | None:
        return self._link.last_event_id

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> BotEvent:
        for item in self._items:
            event = _event(item)
            if event is not None:
                return event
        raise StopIteration

    def close(self) -> None:
        self._items.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class AsyncEventStream:
    """`async for event in stream:` each BotEvent as it happens; as EventStream, with aclose()."""

    def __init__(self, items: AsyncGenerator[sse.StreamItem, None], link: sse.Reconnection) -> None:
        self._items = items
        self._link = link

    @property
    def last_event_id(self) -> str | None:
        return self._link.last_event_id

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> BotEvent:
        async for item in self._items:
            event = _event(item)
            if event is not None:
                return event
        raise StopAsyncIteration

    async def aclose(self) -> None:
        await self._items.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
