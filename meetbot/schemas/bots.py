"""Request and response models of /bots: the bot resource of DESIGN.md §4."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AnyHttpUrl, Field, StrictBool, StrictInt, ValidationInfo, field_validator, model_validator

from meetbot.domain.meeting_urls import canonical_meeting_url
from meetbot.schemas.common import ApiModel, InputTimestamp, Page, PageQuery, ResponseModel, UTCTimestamp

DAY_MS = 24 * 3600 * 1000
# JSON numbers and booleans only: "5000", 5000.0, "yes" or 1 are refused, not coerced.
Ms = StrictInt


class BotStatus(StrEnum):
    READY_TO_DEPLOY = "READY_TO_DEPLOY"
    DEPLOYING = "DEPLOYING"
    JOINING_CALL = "JOINING_CALL"
    IN_WAITING_ROOM = "IN_WAITING_ROOM"
    IN_CALL = "IN_CALL"
    CALL_ENDED = "CALL_ENDED"
    DONE = "DONE"
    FATAL = "FATAL"


class EventType(StrEnum):
    STATUS_CHANGE = "STATUS_CHANGE"
    PARTICIPANT_JOIN = "PARTICIPANT_JOIN"
    PARTICIPANT_LEAVE = "PARTICIPANT_LEAVE"
    ACTIVE_SPEAKER = "ACTIVE_SPEAKER"
    LOG = "LOG"
    RECORDING_READY = "RECORDING_READY"
    RECORDING_DELETED = "RECORDING_DELETED"
    TRANSCRIPT_READY = "TRANSCRIPT_READY"
    TRANSCRIPT_FAILED = "TRANSCRIPT_FAILED"
    SUMMARY_READY = "SUMMARY_READY"
    SUMMARY_FAILED = "SUMMARY_FAILED"
    QUEUED = "QUEUED"  # every bot slot busy: data.queuePosition (1: next), again each time it changes


Platform = Literal["google", "zoom", "teams"]


class MeetingInfo(ApiModel):
    platform: Platform
    meeting_url: str = Field(min_length=8, max_length=2048)
    meeting_id: str | None = Field(None, max_length=256)
    meeting_password: str | None = Field(None, max_length=256)
    organizer_id: str | None = Field(None, max_length=256)
    tenant_id: str | None = Field(None, max_length=256)
    message_id: str | None = Field(None, max_length=256)
    thread_id: str | None = Field(None, max_length=256)

    @field_validator("meeting_url")
    @classmethod
    def _url_of_platform(cls, value: str, info: ValidationInfo) -> str:
        platform = info.data.get("platform")
        if platform is None or info.context is None:
            return value  # platform errors are reported on their own; stored bots were checked on input
        allow_simulator = bool(info.context.get("allow_simulator"))
        # The WHATWG serialization, as the bot's browser will read it, is what is stored and opened.
        return canonical_meeting_url(platform, value, allow_simulator)


class TimeoutRule(ApiModel):
    timeout: Ms = Field(ge=1000, le=DAY_MS, description="milliseconds")
    activate_after: Ms = Field(0, ge=0, le=DAY_MS, description="milliseconds after joining")


class ParticipantNamesRule(TimeoutRule):
    name_patterns: list[str] = Field(
        default_factory=lambda: ["bot", "notetaker", "note taker", "recorder", "assistant"],
        max_length=50,
        description="case-insensitive substrings that mark a participant as a bot",
    )


class BotDetection(ApiModel):
    using_participant_events: TimeoutRule | None = None
    using_participant_names: ParticipantNamesRule | None = None


class AutomaticLeave(ApiModel):
    silence_detection: TimeoutRule | None = None
    bot_detection: BotDetection | None = None
    waiting_room_timeout: Ms | None = Field(None, ge=1000, le=DAY_MS)
    no_one_joined_timeout: Ms | None = Field(None, ge=1000, le=DAY_MS)
    everyone_left_timeout: Ms | None = Field(None, ge=1000, le=DAY_MS)


RETENTION_DAYS_MAX = 36500


class RecordingSettings(ApiModel):
    audio_only: StrictBool = False
    retention_days: StrictInt | None = Field(
        None, ge=1, le=RETENTION_DAYS_MAX, description="delete the recording this many days after it is stored"
    )


class TranscriptionSettings(ApiModel):
    auto: StrictBool = False
    language: str | None = Field(None, min_length=2, max_length=8, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")


class SummarySettings(ApiModel):
    auto: StrictBool = False


class BotSettings(ApiModel):
    """Everything a caller may set on a bot; create requires meetingInfo."""

    bot_display_name: str = Field("MeetBot", min_length=1, max_length=100)
    bot_image: AnyHttpUrl | None = None
    meeting_title: str | None = Field(None, max_length=300)
    meeting_info: MeetingInfo
    start_time: InputTimestamp | None = None
    end_time: InputTimestamp | None = None
    heartbeat_interval: Ms = Field(5000, ge=1000, le=300_000)
    automatic_leave: AutomaticLeave = Field(default_factory=AutomaticLeave)
    recording_settings: RecordingSettings = Field(default_factory=RecordingSettings)
    transcription: TranscriptionSettings = Field(default_factory=TranscriptionSettings)
    summary: SummarySettings = Field(default_factory=SummarySettings)

    @model_validator(mode="after")
    def _times_in_order(self) -> BotSettings:
        if self.start_time and self.end_time and self.start_time >= self.end_time:
            raise ValueError("startTime must be before endTime")
        return self


class BotCreate(BotSettings):
    """The settings a bot is created (or re-validated on PATCH) with: its endTime must still be ahead."""

    @model_validator(mode="after")
    def _end_in_future(self) -> BotCreate:
        if self.end_time and self.end_time <= datetime.now(UTC):
            raise ValueError("endTime must be in the future")
        return self


# PATCH bodies are JSON merge patches (RFC 7396): an object merges into the stored one, a field left
# out keeps its value, null clears it (back to its default). Every field is optional here; the merged
# settings are validated as a whole, as on create (URL host vs platform, bounds, required fields).


class MeetingInfoPatch(ApiModel):
    platform: Platform | None = None
    meeting_url: str | None = Field(None, max_length=2048)
    meeting_id: str | None = Field(None, max_length=256)
    meeting_password: str | None = Field(None, max_length=256)
    organizer_id: str | None = Field(None, max_length=256)
    tenant_id: str | None = Field(None, max_length=256)
    message_id: str | None = Field(None, max_length=256)
    thread_id: str | None = Field(None, max_length=256)


class TimeoutRulePatch(ApiModel):
    timeout: Ms | None = None
    activate_after: Ms | None = None


class ParticipantNamesRulePatch(TimeoutRulePatch):
    name_patterns: list[str] | None = Field(None, max_length=50)


class BotDetectionPatch(ApiModel):
    using_participant_events: TimeoutRulePatch | None = None
    using_participant_names: ParticipantNamesRulePatch | None = None


class AutomaticLeavePatch(ApiModel):
    silence_detection: TimeoutRulePatch | None = None
    bot_detection: BotDetectionPatch | None = None
    waiting_room_timeout: Ms | None = None
    no_one_joined_timeout: Ms | None = None
    everyone_left_timeout: Ms | None = None


class RecordingSettingsPatch(ApiModel):
    audio_only: StrictBool | None = None
    retention_days: StrictInt | None = Field(None, ge=1, le=RETENTION_DAYS_MAX)


class TranscriptionSettingsPatch(ApiModel):
    auto: StrictBool | None = None
    language: str | None = Field(None, max_length=8)


class SummarySettingsPatch(ApiModel):
    auto: StrictBool | None = None


class BotUpdate(ApiModel):
    """PATCH body: a JSON merge patch (RFC 7396) of the settings."""

    bot_display_name: str | None = Field(None, min_length=1, max_length=100)
    bot_image: AnyHttpUrl | None = None
    meeting_title: str | None = Field(None, max_length=300)
    meeting_info: MeetingInfoPatch | None = None
    start_time: InputTimestamp | None = None
    end_time: InputTimestamp | None = None
    heartbeat_interval: Ms | None = Field(None, ge=1000, le=300_000)
    automatic_leave: AutomaticLeavePatch | None = None
    recording_settings: RecordingSettingsPatch | None = None
    transcription: TranscriptionSettingsPatch | None = None
    summary: SummarySettingsPatch | None = None


class Recording(ResponseModel):
    key: str
    size_bytes: int
    duration_seconds: float
    content_type: str = "video/mp4"
    has_audio: bool
    has_video: bool
    started_at: UTCTimestamp | None = Field(
        None, description="wall-clock time of the file's 0 s: lines events (ACTIVE_SPEAKER) up with the media"
    )
    created_at: UTCTimestamp


class Bot(BotSettings):
    id: int
    status: BotStatus
    deployment_error: str | None = None
    recording: Recording | None = None
    last_heartbeat: UTCTimestamp | None = None
    created_at: UTCTimestamp
    updated_at: UTCTimestamp


class BotList(Page):
    bots: list[Bot]


class BotListQuery(PageQuery):
    status: BotStatus | None = None
    platform: Platform | None = None


class BotEvent(ResponseModel):
    id: int
    bot_id: int
    type: str
    status: BotStatus | None
    data: dict[str, Any]
    created_at: UTCTimestamp


class BotEventList(Page):
    events: list[BotEvent]


class BotLog(ResponseModel):
    id: int
    bot_id: int
    level: str
    message: str
    created_at: UTCTimestamp


class BotLogList(Page):
    logs: list[BotLog]


class BotLogQuery(PageQuery):
    since: InputTimestamp | None = None
    page_size: int = Field(100, ge=1, le=100)


class BotEventQuery(PageQuery):
    type: EventType | None = None
