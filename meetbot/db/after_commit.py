"""Run a callback once the transaction that asked for it has committed (never when it rolls back).

SQLAlchemy Core's `commit` event fires just before the database commits, so a message enqueued there could
reach a worker before the rows it names are visible. Here a callback registered on a connection is staged;
the commit moves it to ready, a rollback drops it, and ready callbacks run when the connection goes back to
its pool (`with engine.begin() as conn:` commits, then returns the connection) or begins its next
transaction. Callbacks must not raise into the caller's code path: failures are logged, and whatever they
would have done must have a fallback (the webhook sweep sends deliveries whose message was lost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("meetbot.db")
_STAGED = "meetbot.after_commit.staged"
_READY = "meetbot.after_commit.ready"
Callback = Callable[[], None]


def after_commit(conn: sa.Connection, callback: Callback) -> None:
    """Run callback after conn's current transaction commits (and the connection is released)."""
    conn.info.setdefault(_STAGED, []).append(callback)


def _on_commit(conn: sa.Connection) -> None:
    staged = conn.info.pop(_STAGED, None)
    if staged:
        conn.info.setdefault(_READY, []).extend(staged)


def _on_rollback(conn: sa.Connection) -> None:
    conn.info.pop(_STAGED, None)


def _run_ready(info: dict[Any, Any]) -> None:
    for callback in info.pop(_READY, None) or ():
        try:
            callback()
        except Exception:
            log.exception("an after-commit callback failed")


def _on_begin(conn: sa.Connection) -> None:
    _run_ready(conn.info)  # a connection kept open for another transaction: the last one's callbacks run now


def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is None:
        return
    record.info.pop(_STAGED, None)  # never committed
    _run_ready(record.info)


def install() -> None:
    """Listen on every engine and pool of the process (idempotent)."""
    for target, name, handler in (
        (sa.engine.Engine, "commit", _on_commit),
        (sa.engine.Engine, "rollback", _on_rollback),
        (sa.engine.Engine, "begin", _on_begin),
        (sa.pool.Pool, "checkin", _on_checkin),
    ):
        if not sa.event.contains(target, name, handler):
            sa.event.listen(target, name, handler)


install()
