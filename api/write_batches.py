"""Concurrent requests' writes of one kind committed together: one worker-thread hop and one transaction per batch."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Line(Generic[Item, Result]):
    """One event loop's waiting items and the task writing them."""

    waiting: list[tuple[Item, asyncio.Future[Result]]] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None


class WriteBatches(Generic[Item, Result]):
    """`await submit(item)` → the item's result, once the transaction that wrote it has committed.

    Items submitted while a batch is being written wait for the next one: a busy process writes many rows per
    transaction (a statement, a commit and a thread hop shared by all), a quiet one writes each item at once, with no
    timer and no added wait. `write(items)` runs in a worker thread and returns one result or exception per item, in
    order; an exception it raises is every item's.
    """

    def __init__(self, write: Callable[[list[Item]], Sequence[Result | Exception]], max_batch: int = 100) -> None:
        self.write = write
        self.max_batch = max_batch
        self._lines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Line[Item, Result]] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        line = self._lines.get(loop)
        if line is None:
            line = self._lines[loop] = _Line()
        future: asyncio.Future[Result] = loop.create_future()
        line.waiting.append((item, future))
        if line.writer is None:
            line.writer = loop.create_task(self._write_all(line))
        return await future  # a caller that goes away leaves its item to be written: as a handler thread would

    async def _write_all(self, line: _Line[Item, Result]) -> None:
        try:
            while line.waiting:
                batch, line.waiting = line.waiting[: self.max_batch], line.waiting[self.max_batch :]
                try:
                    results: Sequence[Result | Exception] = await run_in_threadpool(
                        self.write, [item for item, _ in batch]
                    )
                    if len(results) != len(batch):
                        raise RuntimeError(f"{len(results)} results for {len(batch)} items")
                except asyncio.CancelledError:  # the loop is closing: nobody will be answered
                    for _, future in batch + line.waiting:
                        future.cancel()
                    raise
                except Exception as exc:
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller went away
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            line.writer = None
