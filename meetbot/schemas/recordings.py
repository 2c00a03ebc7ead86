"""Request and response models of /recordings and the public /share pages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from meetbot.schemas.bots import BotStatus, Platform
from meetbot.schemas.common import (
    ApiModel,
    InputTimestamp,
    OptionalJsonInt,
    Page,
    PageQuery,
    ResponseModel,
    UTCTimestamp,
)

SHARE_SECONDS_MAX = 365 * 24 * 3600


class MediaStream(ResponseModel):
    """One stream of a recording, as ffprobe reads it."""

    type: Literal["video", "audio"]
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration_seconds: float | None = None


class RecordingResource(ResponseModel):
    bot_id: int
    status: BotStatus = Field(description="the bot's status")
    platform: Platform
    meeting_title: str | None = None
    content_type: str
    size_bytes: int
    duration_seconds: float
    streams: list[MediaStream]
    started_at: UTCTimestamp | None = Field(None, description="wall-clock time of the media's 0 s")
    created_at: UTCTimestamp
    expires_at: UTCTimestamp | None = Field(None, description="when retention deletes it; null: kept")
    has_transcript: bool = False
    has_summary: bool = False
    share_url: str | None = Field(None, description="the active share link's page, when shared")


class RecordingList(Page):
    recordings: list[RecordingResource]


class RecordingListQuery(PageQuery):
    status: BotStatus | None = Field(None, description="only recordings of bots in this status")
    since: InputTimestamp | None = Field(None, description="stored at or after this time")
    until: InputTimestamp | None = Field(None, description="stored before this time")


class DownloadLink(ResponseModel):
    url: str
    expires_at: UTCTimestamp


class FileQuery(BaseModel):
    """The query of an API-signed download URL (local store)."""

    model_config = ConfigDict(extra="forbid")

    expires: int = Field(ge=0, le=2**40)
    signature: str = Field(min_length=1, max_length=100)


class ShareCreate(ApiModel):
    expires_in: OptionalJsonInt = Field(
        None, ge=60, le=SHARE_SECONDS_MAX, description="seconds the link works; omitted: until revoked"
    )


class ShareLink(ResponseModel):
    token: str
    url: str
    created_at: UTCTimestamp
    expires_at: UTCTimestamp | None
    view_count: int = 0


class SharedRecording(ResponseModel):
    """What a share link shows to anyone who holds it."""

    title: str
    platform: Platform
    duration_seconds: float
    created_at: UTCTimestamp
    content_type: str
    audio_only: bool
    stream_url: str
    transcript_url: str
