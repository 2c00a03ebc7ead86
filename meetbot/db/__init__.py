"""Database access: engine creation and migrations, one code path for SQLite and PostgreSQL."""

from meetbot.db.engine import get_engine, migrate, now_utc
from meetbot.db.tables import metadata

__all__ = ["get_engine", "metadata", "migrate", "now_utc"]
