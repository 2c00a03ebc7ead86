"""Query models of the events feed (GET /events) and of the live event streams (Server-Sent Events)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meetbot.schemas.bots import EventType
from meetbot.schemas.common import InputTimestamp, PageQuery

MAX_ID = 2**63 - 1


class EventFeedQuery(PageQuery):
    bot_id: int | None = Field(None, ge=1, le=MAX_ID, description="only this bot's events")
    type: EventType | None = None
    since: InputTimestamp | None = Field(None, description="events created at or after this time (ISO 8601)")
    until: InputTimestamp | None = Field(None, description="events created before this time (ISO 8601)")

    @model_validator(mode="after")
    def _since_before_until(self) -> EventFeedQuery:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class EventStreamQuery(BaseModel):
    """Where a stream starts: after this event id (the Last-Event-ID header, when sent, takes precedence)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    last_event_id: int | None = Field(
        None,
        alias="lastEventId",
        ge=0,
        le=MAX_ID,
        description="send the events after this id (as the Last-Event-ID header does on a reconnect)",
    )
