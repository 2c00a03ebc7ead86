"""One page of rows and the total count, for the API's paginated lists."""

from __future__ import annotations

from collections.abc import Sequence
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
    total = conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    rows = conn.execute(
        sa.select(table).where(*where).order_by(order_by).offset(query.offset).limit(query.page_size)
    ).all()
    return list(rows), total


def count_and_page(
    conn: sa.Connection, select: sa.Select[Any], order_by: sa.ColumnElement[Any], query: PageQuery
) -> tuple[list[sa.Row], int]:
    """The total number of rows `select` gives, and the page of them `query` asks for."""
    total = conn.execute(sa.select(sa.func.count()).select_from(select.order_by(None).subquery())).scalar_one()
    rows = conn.execute(select.order_by(order_by).offset(query.offset).limit(query.page_size)).all()
    return list(rows), total
