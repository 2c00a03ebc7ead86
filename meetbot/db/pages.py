"""One page of rows and the total count (counted only when the page does not tell it), for the paginated lists."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from meetbot.schemas.common import PageQuery


def fetch_page(
    conn: sa.Connection,
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    order_by: sa.ColumnElement[object] | sa.Column[object],
    query: PageQuery,
) -> tuple[list[sa.Row], int]:
    """The page of table's rows that query asks for, and how many rows match in all (counted only when needed)."""
    rows = list(
        conn.execute(sa.select(table).where(*where).order_by(order_by).offset(query.offset).limit(query.page_size))
    )
    total = _total_from_page(rows, query)
    if total is None:
        total = conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    return rows, total


def _total_from_page(rows: list[sa.Row], query: PageQuery) -> int | None:
    """The total when the page itself tells it (a short page that is not past the end), else None: count."""
    if len(rows) < query.page_size and (rows or query.offset == 0):
        return query.offset + len(rows)
    return None


def count_and_page(
    conn: sa.Connection, select: sa.Select[Any], order_by: sa.ColumnElement[Any], query: PageQuery
) -> tuple[list[sa.Row], int]:
    """The total number of rows `select` gives, and the page of them `query` asks for."""
    rows = list(conn.execute(select.order_by(order_by).offset(query.offset).limit(query.page_size)))
    total = _total_from_page(rows, query)
    if total is None:
        total = conn.execute(sa.select(sa.func.count()).select_from(select.order_by(None).subquery())).scalar_one()
    return rows, total


def fetch_page_where_equal(
    conn: sa.Connection,
    table: sa.Table,
    equal: Mapping[str, object],
    order_by: str,
    descending: bool,
    query: PageQuery,
    columns: tuple[str, ...] = (),
) -> tuple[list[sa.Row], int]:
    """fetch_page for filters that are all `column = value`, reading `columns` (default: all): its two statements
    are built once per shape and reused with bound values (building a SELECT cost more than running it, and every
    column read is converted: bench/api.py's listing, on SQLite)."""
    page, count = _page_statements(table, tuple(sorted(equal)), order_by, descending, columns)
    values = {f"eq_{name}": value for name, value in equal.items()}
    rows = list(conn.execute(page, {**values, "page_offset": query.offset, "page_limit": query.page_size}))
    total = _total_from_page(rows, query)
    if total is None:
        total = conn.execute(count, values).scalar_one()
    return rows, total


@functools.cache
def _page_statements(
    table: sa.Table, filters: tuple[str, ...], order_by: str, descending: bool, columns: tuple[str, ...]
) -> tuple[sa.Select[Any], sa.Select[Any]]:
    where = [table.c[name] == sa.bindparam(f"eq_{name}") for name in filters]
    order = table.c[order_by].desc() if descending else table.c[order_by].asc()
    read = [table.c[name] for name in columns] if columns else [table]
    page = sa.select(*read).where(*where).order_by(order)
    page = page.offset(sa.bindparam("page_offset")).limit(sa.bindparam("page_limit"))
    count = sa.select(sa.func.count()).select_from(table).where(*where)
    return page, count
