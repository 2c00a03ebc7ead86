"""The summarizer interface every back-end implements, the choice of one from settings, and shared helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Literal

from meetbot.schemas.transcripts import SummaryBody, TranscriptBody

if TYPE_CHECKING:
    from meetbot.settings import Settings

Style = Literal["brief", "detailed"]
STYLES: tuple[Style, ...] = ("brief", "detailed")


class Summarizer(ABC):
    """Turns a transcript into a summary, key points and action items.

    Every implementation raises meetbot.errors.SummaryError when it cannot: a transcript without speech,
    or a model endpoint that failed or answered nonsense. It is safe to call from several threads.
    """

    #: a short name of the back-end, for logs and job records ("extractive", "llm")
    name: str

    @abstractmethod
    def summarize(self, transcript: TranscriptBody, style: Style = "brief", prompt: str | None = None) -> SummaryBody:
        """Summarize `transcript`; `style` sets the length, `prompt` adds the user's own instructions.

        `prompt` is honoured by back-ends that follow instructions (llm) and ignored by the others.
        """


def summarizer_for(settings: Settings) -> Summarizer:
    """The LLM summarizer when an endpoint and a model are configured, else the extractive one."""
    if settings.llm_base_url and settings.llm_model:
        from meetbot.summaries.backends.llm import LLMSummarizer

        return LLMSummarizer.from_settings(settings)
    from meetbot.summaries.backends.extractive import ExtractiveSummarizer

    return ExtractiveSummarizer()


def speaker_names(transcript: TranscriptBody) -> list[str]:
    """The distinct speaker names of a transcript, in order of first appearance."""
    names: dict[str, None] = {}
    for segment in transcript.segments:
        if segment.speaker and segment.speaker.strip():
            names.setdefault(segment.speaker.strip(), None)
    return list(names)


def match_speaker(name: str, speakers: list[str]) -> str | None:
    """The speaker `name` refers to: a case-insensitive match of the full name, else of exactly one first name."""
    wanted = name.strip().casefold()
    if not wanted:
        return None
    for speaker in speakers:
        if speaker.casefold() == wanted:
            return speaker
    by_first = [speaker for speaker in speakers if speaker.split()[0].casefold() == wanted]
    return by_first[0] if len(by_first) == 1 else None


def has_speech(transcript: TranscriptBody) -> bool:
    return any(segment.text.strip() for segment in transcript.segments)
