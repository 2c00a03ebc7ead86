"""The API request log and API keys' last-used times, buffered in memory and written in batches off the request path."""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.bulk import bulk_insert
from meetbot.db.tables import api_keys, api_request_logs

log = logging.getLogger("meetbot.api")


COLUMNS = ("user_id", "api_key_id", "method", "path", "status_code", "duration_ms", "created_at")


@dataclass(frozen=True)
class RequestLogRow:
    user_id: int
    api_key_id: int | None
    method: str
    path: str
    status_code: int
    duration_ms: float
    created_at: datetime

    def values(self) -> tuple[object, ...]:
        """In the order of COLUMNS."""
        return (
            self.user_id,
            self.api_key_id,
            self.method,
            self.path[:500],
            self.status_code,
            round(self.duration_ms, 2),
            self.created_at,
        )


class RequestLogBuffer:
    """Rows and last-used times waiting for the next batch; thread-safe, flushed by one background thread.

    A request only appends to a list. The thread writes what has gathered in one transaction at least every
    `flush_seconds` (at most 1 s), and `close()` (the app's lifespan shutdown, which SIGTERM triggers) writes the
    rest, so a clean stop loses nothing. Endpoints that read the log flush first, so a caller sees its own earlier
    requests at once; other API processes' requests show within a flush interval.
    """

    def __init__(self, engine: sa.Engine, flush_seconds: float, max_pending: int) -> None:
        self.engine = engine
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending  # a database that stays down must not grow the buffer without bound
        self._rows: list[RequestLogRow] = []
        self._keys_used: dict[int, datetime] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one batch at a time, so rows are written in the order they came
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def record(self, row: RequestLogRow) -> None:
        with self._lock:
            if len(self._rows) >= self.max_pending:
                del self._rows[: len(self._rows) - self.max_pending + 1]
                log.warning("the request log buffer is full; dropping its oldest row")
            self._rows.append(row)
            if row.api_key_id is not None:
                self._keys_used[row.api_key_id] = row.created_at
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="request-log-flush", daemon=True)
                self._thread.start()

    @property
    def pending(self) -> int:
        """Rows not yet written (a batch being written counts until it is)."""
        with self._flush_lock, self._lock:
            return len(self._rows)

    def flush(self) -> None:
        """Write everything recorded so far (one transaction); rows stay pending when the database refuses."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
                keys_used, self._keys_used = self._keys_used, {}
            if not rows and not keys_used:
                return
            try:
                self._write(rows, keys_used)
            except Exception:
                with self._lock:  # put them back in front of what came meanwhile, for the next attempt
                    self._rows[:0] = rows
                    for key_id, at in keys_used.items():
                        self._keys_used[key_id] = max(at, self._keys_used.get(key_id, at))
                raise

    def _write(self, rows: list[RequestLogRow], keys_used: dict[int, datetime]) -> None:
        with self.engine.begin() as conn:
            if keys_used:
                conn.execute(
                    api_keys.update().where(api_keys.c.id == sa.bindparam("key_id")),
                    [{"key_id": key_id, "last_used_at": at} for key_id, at in keys_used.items()],
                )
            if not rows:
                return
            try:
                bulk_insert(conn, api_request_logs, COLUMNS, [row.values() for row in rows])
            except sa.exc.IntegrityError:  # a user deleted since its request: keep every row that still fits
                for row in rows:
                    with contextlib.suppress(sa.exc.IntegrityError):
                        bulk_insert(conn, api_request_logs, COLUMNS, [row.values()])

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            try:
                self.flush()
            except Exception:
                log.exception("could not write the API request log; retrying")

    def close(self) -> None:
        """Stop the background thread and write what is left (the app's shutdown)."""
        self._closed = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        self.flush()
        self._wake.clear()
        self._closed = False  # a later request starts the thread again (an app served twice, as in tests)


def request_log_row(
    user_id: int, api_key_id: int | None, method: str, path: str, status_code: int, duration_ms: float
) -> RequestLogRow:
    return RequestLogRow(user_id, api_key_id, method, path, status_code, duration_ms, now_utc())
