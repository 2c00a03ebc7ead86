"""Request and response models of /bots: the bot resource of DESIGN.md §4."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from meetbot.domain.meeting_urls import canonical_meeting_url
from meetbot.schemas.common import (
    ApiModel,
    InputTimestamp,
    JsonInt,
    OptionalJsonInt,
    Page,
    PageQuery,
    ResponseModel,
    UTCTimestamp,
)

DAY_MS = 24 * 3600 * 1000
# JSON numbers and booleans only: "5000", 5000.5, "yes" or 1 are refused, not coerced (5000.0 is the number 5000).
Ms = JsonInt
OptionalMs = OptionalJsonInt
# What the document promises for an image URL: an http(s) URL with a plain host (the server takes any http(s) URL).
# The host: DNS labels, the last one starting with a letter (a numeric one would be read as an IPv4 address).
HOST_PATTERN = r"(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)*[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
HTTP_URL_PATTERN = rf"^https?://{HOST_PATTERN}(?::[1-9][0-9]{{0,3}})?(?:/[A-Za-z0-9._~-]*)*$"
# The meeting links the document promises each platform accepts (a subset of what docs/platforms.md lists).
MEETING_URL_PATTERNS = {
    "google": r"^https://meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}$",
    "zoom": r"^https://(?:[a-z0-9]+\.)?zoom\.us/j/[0-9]{9,11}$",
    "teams": r"^https://teams\.microsoft\.com/l/meetup-join/[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*$",
}


# An image URL on input: the document promises this shape; answers show what was stored, whatever its shape.
ImageUrl = Annotated[
    AnyHttpUrl,
    WithJsonSchema({"type": "string", "format": "uri", "minLength": 1, "pattern": HTTP_URL_PATTERN}, mode="validation"),
]


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
    QUEUED = "QUEUED"  # every bot slot busy: data.queuePosition (1: next), again each time it changes
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


Platform = Literal["google", "zoom", "teams"]


class MeetingInfo(ApiModel):
    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """On input, the document says meetingUrl must be a link of the chosen platform (one variant per platform);
        answers show the stored link as it is (the simulator's too, where allowed)."""
        json_schema = handler(schema)
        if handler.mode == "validation":
            handler.resolve_ref_schema(json_schema)["oneOf"] = [
                {"properties": {"platform": {"const": platform}, "meetingUrl": {"pattern": pattern}}}
                for platform, pattern in MEETING_URL_PATTERNS.items()
            ]
        return json_schema

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
    waiting_room_timeout: OptionalMs = Field(None, ge=1000, le=DAY_MS)
    no_one_joined_timeout: OptionalMs = Field(None, ge=1000, le=DAY_MS)
    everyone_left_timeout: OptionalMs = Field(None, ge=1000, le=DAY_MS)


RETENTION_DAYS_MAX = 36500


class RecordingSettings(ApiModel):
    audio_only: StrictBool = False
    retention_days: OptionalJsonInt = Field(
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
    bot_image: ImageUrl | None = None
    meeting_title: str | None = Field(None, max_length=300)
    meeting_info: MeetingInfo
    start_time: InputTimestamp | None = None
    end_time: InputTimestamp | None = Field(None, description="after startTime and, on create or PATCH, in the future")
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
    """platform and meetingUrl cannot be null: a meeting always has both (the merged URL must fit the platform)."""

    platform: Platform = None  # type: ignore[assignment]  # omitted: kept; null: refused
    meeting_url: str = Field(None, max_length=2048)  # type: ignore[assignment]
    meeting_id: str | None = Field(None, max_length=256)
    meeting_password: str | None = Field(None, max_length=256)
    organizer_id: str | None = Field(None, max_length=256)
    tenant_id: str | None = Field(None, max_length=256)
    message_id: str | None = Field(None, max_length=256)
    thread_id: str | None = Field(None, max_length=256)


class TimeoutRulePatch(ApiModel):
    timeout: OptionalMs = None
    activate_after: OptionalMs = None


class ParticipantNamesRulePatch(TimeoutRulePatch):
    name_patterns: list[str] | None = Field(None, max_length=50)


class BotDetectionPatch(ApiModel):
    using_participant_events: TimeoutRulePatch | None = None
    using_participant_names: ParticipantNamesRulePatch | None = None


class AutomaticLeavePatch(ApiModel):
    silence_detection: TimeoutRulePatch | None = None
    bot_detection: BotDetectionPatch | None = None
    waiting_room_timeout: OptionalMs = None
    no_one_joined_timeout: OptionalMs = None
    everyone_left_timeout: OptionalMs = None


class RecordingSettingsPatch(ApiModel):
    audio_only: StrictBool | None = None
    retention_days: OptionalJsonInt = Field(None, ge=1, le=RETENTION_DAYS_MAX)


class TranscriptionSettingsPatch(ApiModel):
    auto: StrictBool | None = None
    language: str | None = Field(None, max_length=8)


class SummarySettingsPatch(ApiModel):
    auto: StrictBool | None = None


class BotUpdate(ApiModel):
    """PATCH body: a JSON merge patch (RFC 7396) of the settings."""

    bot_display_name: str | None = Field(None, min_length=1, max_length=100)
    bot_image: ImageUrl | None = None
    meeting_title: str | None = Field(None, max_length=300)
    meeting_info: MeetingInfoPatch = None  # type: ignore[assignment]  # omitted: kept; null: refused (required)
    start_time: InputTimestamp | None = None
    end_time: InputTimestamp | None = None
    heartbeat_interval: OptionalMs = Field(None, ge=1000, le=300_000)
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
