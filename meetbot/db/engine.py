"""Engine construction per database URL, and the Alembic upgrade entry point."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from meetbot.json_codec import read_json, write_json

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def now_utc() -> datetime:
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Both databases: errors never quote SQL parameters, and JSON columns go through meetbot.json_codec (psycopg
# encodes and decodes JSONB itself; SQLAlchemy hands it these two).
_ENGINE_OPTIONS: dict[str, Any] = {
    "hide_parameters": True,
    "json_serializer": write_json,
    "json_deserializer": read_json,
}


def create_engine(url: str) -> sa.Engine:
    """An engine whose errors never quote SQL parameters (password and key hashes would reach the logs)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        pool: dict[str, int] = {}
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            pool = {"pool_size": 20, "max_overflow": 20}
        # Enough pooled connections for every request thread and the background writers: a connection opened past
        # the pool (and its PRAGMAs) for one request, then closed, cost more than the request's own SQL.
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, **_ENGINE_OPTIONS, **pool
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **_ENGINE_OPTIONS)


def get_engine(url: str) -> sa.Engine:
    """One engine (and pool) per URL per process."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = create_engine(url)
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at url to revision (creating it from nothing when empty)."""
    engine = get_engine(url)
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
