"""Response models of the analytics: the caller's daily activity series and an API key's daily use."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from meetbot.schemas.common import ResponseModel


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(30, ge=1, le=365, description="how many days, today (UTC) included")


class ActivityCounts(ResponseModel):
    bots_created: int = 0
    bots_completed: int = Field(0, description="bots that reached DONE")
    bots_failed: int = Field(0, description="bots that reached FATAL")
    minutes_in_call: float = 0.0
    minutes_recorded: float = Field(0.0, description="minutes of the recordings stored that day")
    minutes_transcribed: float = Field(0.0, description="minutes of audio in the transcripts finished that day")
    api_requests: int = 0
    webhook_deliveries_ok: int = 0
    webhook_deliveries_failed: int = 0


class ActivityDay(ActivityCounts):
    date: dt.date = Field(description="the UTC day")


class Analytics(ResponseModel):
    days: int
    start: dt.date = Field(description="the first day of the series (UTC)")
    end: dt.date = Field(description="the last day of the series: today (UTC)")
    series: list[ActivityDay] = Field(description="one entry per day, oldest first; days without activity are zeros")
    totals: ActivityCounts


class DailyRequests(ResponseModel):
    date: dt.date
    requests: int


class EndpointCount(ResponseModel):
    method: str
    path: str = Field(description="the route's path template (e.g. /api/v1/bots/{id}) where one matches")
    requests: int
