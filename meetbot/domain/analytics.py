"""Analytics: a user's activity per UTC day (bots, call and media minutes, API requests, webhook deliveries)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from meetbot.db.tables import api_request_logs, bot_events, bots, recordings, transcripts, webhook_deliveries
from meetbot.domain.jobs import DONE
from meetbot.schemas.analytics import ActivityCounts, ActivityDay, Analytics, DailyRequests, EndpointCount
from meetbot.schemas.bots import BotStatus


def day_of(conn: sa.Connection, column: Any) -> sa.ColumnElement[str]:
    """The UTC day of a timestamp column as 'YYYY-MM-DD', computed by the database."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d", column)  # SQLite keeps naive UTC


def first_day(days: int, now: dt.datetime) -> tuple[dt.date, dt.datetime]:
    """The first day of a series of `days` days ending today (UTC), and its midnight."""
    start = now.astimezone(dt.UTC).date() - dt.timedelta(days=days - 1)
    return start, dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)


def _by_day(conn: sa.Connection, column: Any, value: Any, *where: Any, by: Any = None) -> list[sa.Row]:
    """(day, [by,] value) rows: `value` aggregated per UTC day of `column` (and per `by`)."""
    day = day_of(conn, column)
    keys = [day] if by is None else [day, by]
    return list(conn.execute(sa.select(*keys, value).where(*where).group_by(*keys)).all())


def _split_by_day(start: dt.datetime, end: dt.datetime) -> list[tuple[str, float]]:
    """The seconds of [start, end) that fall on each UTC day."""
    parts = []
    while start < end:
        midnight = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        stop = min(end, midnight)
        parts.append((start.date().isoformat(), (stop - start).total_seconds()))
        start = stop
    return parts


def user_activity(conn: sa.Connection, user_id: int, days: int, now: dt.datetime) -> Analytics:
    start_day, since = first_day(days, now)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    minutes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(rows: list[sa.Row], field: str | Callable[[sa.Row], str | None]) -> None:
        for row in rows:
            name = field if isinstance(field, str) else field(row)
            if name:
                counts[row[0]][name] += int(row[-1])

    mine = bots.c.user_id == user_id
    add(_by_day(conn, bots.c.created_at, sa.func.count(), mine, bots.c.created_at >= since), "bots_created")
    finished = {BotStatus.DONE: "bots_completed", BotStatus.FATAL: "bots_failed"}
    ends = _by_day(
        conn,
        bot_events.c.created_at,
        sa.func.count(),
        bot_events.c.bot_id.in_(sa.select(bots.c.id).where(mine)),
        bot_events.c.type == "STATUS_CHANGE",
        bot_events.c.status.in_([str(status) for status in finished]),
        bot_events.c.created_at >= since,
        by=bot_events.c.status,
    )
    add(ends, lambda row: finished.get(BotStatus(row[1])))
    requests = api_request_logs.c
    add(_by_day(conn, requests.created_at, sa.func.count(), requests.user_id == user_id, requests.created_at >= since),
        "api_requests")  # fmt: skip
    outcome = {"delivered": "webhook_deliveries_ok", "failed": "webhook_deliveries_failed"}
    deliveries = webhook_deliveries.c
    add(
        _by_day(
            conn,
            deliveries.created_at,
            sa.func.count(),
            deliveries.user_id == user_id,
            deliveries.status.in_(list(outcome)),
            deliveries.created_at >= since,
            by=deliveries.status,
        ),
        lambda row: outcome.get(row[1]),
    )

    spans = conn.execute(
        sa.select(bots.c.joined_at, bots.c.left_at).where(
            mine, bots.c.joined_at.is_not(None), sa.or_(bots.c.left_at.is_(None), bots.c.left_at >= since)
        )
    ).all()
    for joined, left in spans:
        for day, seconds in _split_by_day(max(joined, since), min(left or now, now)):
            minutes[day]["minutes_in_call"] += seconds / 60
    recorded = _by_day(
        conn,
        recordings.c.created_at,
        sa.func.sum(recordings.c.duration_seconds),
        recordings.c.user_id == user_id,
        recordings.c.created_at >= since,
    )
    for day, seconds in recorded:
        minutes[day]["minutes_recorded"] += float(seconds or 0) / 60
    done = conn.execute(
        sa.select(transcripts.c.updated_at, transcripts.c.result).where(
            transcripts.c.user_id == user_id, transcripts.c.status == DONE, transcripts.c.updated_at >= since
        )
    ).all()
    for finished_at, result in done:
        seconds = (result or {}).get("durationSeconds") or 0
        minutes[finished_at.date().isoformat()]["minutes_transcribed"] += float(seconds) / 60

    series = []
    for offset in range(days):
        day = start_day + dt.timedelta(days=offset)
        key = day.isoformat()
        rounded = {name: round(value, 2) for name, value in minutes[key].items()}
        series.append(ActivityDay(date=day, **counts[key], **rounded))
    totals = {name: sum(getattr(day, name) for day in series) for name in ActivityCounts.model_fields if name != "date"}
    totals.update({name: round(value, 2) for name, value in totals.items() if name.startswith("minutes")})
    return Analytics(days=days, start=start_day, end=series[-1].date, series=series, totals=ActivityCounts(**totals))


def key_daily_requests(conn: sa.Connection, api_key_id: int, days: int, now: dt.datetime) -> list[DailyRequests]:
    start_day, since = first_day(days, now)
    requests = api_request_logs.c
    rows = _by_day(conn, requests.created_at, sa.func.count(), requests.api_key_id == api_key_id,
                   requests.created_at >= since)  # fmt: skip
    counts = {day: int(count) for day, count in rows}
    dates = [start_day + dt.timedelta(days=offset) for offset in range(days)]
    return [DailyRequests(date=day, requests=counts.get(day.isoformat(), 0)) for day in dates]


def key_top_endpoints(
    conn: sa.Connection,
    api_key_id: int,
    since: dt.datetime,
    template_of: Callable[[str, str], str | None],
    limit: int = 10,
) -> list[EndpointCount]:
    """The key's most requested endpoints since `since`: paths grouped under their route template where one matches."""
    requests = api_request_logs.c
    rows = conn.execute(
        sa.select(requests.method, requests.path, sa.func.count())
        .where(requests.api_key_id == api_key_id, requests.created_at >= since)
        .group_by(requests.method, requests.path)
    ).all()
    totals: Counter[tuple[str, str]] = Counter()
    for method, path, count in rows:
        totals[(method, template_of(method, path) or path)] += int(count)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [EndpointCount(method=method, path=path, requests=count) for (method, path), count in ranked]
