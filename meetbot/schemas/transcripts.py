"""Models of transcripts and summaries: what engines produce, what the API returns, what jobs report."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from meetbot.schemas.common import ApiModel, ResponseModel, UTCTimestamp

JobStatus = Literal["queued", "processing", "done", "failed"]


class Word(ResponseModel):
    start: float
    end: float
    word: str
    probability: float


class Segment(ResponseModel):
    start: float = Field(description="seconds from the recording's 0 s")
    end: float
    speaker: str | None = Field(None, description="the participant speaking, from the meeting's speaker timeline")
    text: str
    words: list[Word] = Field(default_factory=list)


class TranscriptBody(ResponseModel):
    """What the engine produces for one recording (or one chunk of it)."""

    language: str | None = None
    duration_seconds: float
    model: str
    segments: list[Segment]

    @property
    def text(self) -> str:
        return " ".join(segment.text.strip() for segment in self.segments if segment.text.strip())


class ActionItem(ResponseModel):
    text: str
    owner: str | None = None


class SummaryBody(ResponseModel):
    """What a summarizer produces from a transcript."""

    summary: str
    key_points: list[str] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    model: str


class TranscribeRequest(ApiModel):
    language: StrictStr | None = Field(None, min_length=2, max_length=8, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    model: StrictStr | None = Field(None, min_length=1, max_length=200)


class SummarizeRequest(ApiModel):
    style: Literal["brief", "detailed"] = "brief"
    prompt: StrictStr | None = Field(None, max_length=4000)


class JobState(ResponseModel):
    bot_id: int
    status: JobStatus
    progress: float = Field(0, description="percent done while processing")
    error: str | None = None
    created_at: UTCTimestamp
    updated_at: UTCTimestamp


class TranscriptResource(ResponseModel):
    bot_id: int
    status: JobStatus
    progress: float = 0
    error: str | None = None
    language: str | None = None
    duration_seconds: float | None = None
    model: str | None = None
    segments: list[Segment] = Field(default_factory=list)
    text: str = ""
    created_at: UTCTimestamp
    updated_at: UTCTimestamp


class TranscriptQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "txt", "srt", "vtt"] = "json"


class SummaryResource(ResponseModel):
    bot_id: int
    status: JobStatus
    error: str | None = None
    summary: str | None = None
    key_points: list[str] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    model: str | None = None
    created_at: UTCTimestamp
    updated_at: UTCTimestamp
