"""/users/me/analytics: the caller's activity per UTC day and its totals."""

from __future__ import annotations

from api.routing import Context, Router
from meetbot.db import now_utc
from meetbot.domain.analytics import user_activity
from meetbot.schemas.analytics import Analytics, AnalyticsQuery

router = Router()
TAG = "Users"


@router.route(
    "GET",
    "/users/me/analytics",
    "Daily activity (bots created, completed, failed; minutes in call, recorded, transcribed; API requests; "
    "webhook deliveries) over the last `days` UTC days, today included, and totals",
    TAG,
    query=AnalyticsQuery,
    response=Analytics,
    reads_request_log=True,
)
def analytics(ctx: Context, query: AnalyticsQuery) -> Analytics:
    with ctx.transaction() as conn:
        return user_activity(conn, ctx.user_id, query.days, now_utc())
