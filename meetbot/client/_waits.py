"""Waiting for a transcript or summary job: which stream items call for a look at its state, and what ends it."""

from __future__ import annotations

from dataclasses import dataclass

from meetbot.client import sse
from meetbot.client.errors import TranscriptFailedError
from meetbot.schemas.transcripts import JobState


def event_kind(name: str) -> str:
    """An event type in one spelling: "TRANSCRIPT_READY" and "transcript.ready" are both "transcript.ready"."""
    return name.strip().lower().replace("_", ".")


@dataclass(frozen=True)
class JobWait:
    bot_id: int
    kind: str  # "transcript" or "summary"
    status_path: str
    poll_interval: float = 2.0  # when the server has no event stream

    @classmethod
    def transcript(cls, bot_id: int) -> JobWait:
        return cls(bot_id, "transcript", f"/transcripts/{bot_id}/status")

    @classmethod
    def summary(cls, bot_id: int) -> JobWait:
        return cls(bot_id, "summary", f"/summaries/{bot_id}/status")

    def relevant(self, item: sse.StreamItem) -> bool:
        """Whether to read the job's state now: on each (re)connection, heartbeat, and the job's own events."""
        if not isinstance(item, sse.ServerSentEvent) or item is sse.HEARTBEAT:
            return True
        names = {event_kind(item.event)}
        try:
            data = item.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            names.add(event_kind(data["type"]))
        return any(name.startswith(f"{self.kind}.") for name in names)

    def finished(self, state: JobState | None) -> bool:
        """True once done; TranscriptFailedError when failed; False while not started, queued or processing."""
        if state is None or state.status in ("queued", "processing"):
            return False
        if state.status == "failed":
            raise TranscriptFailedError(self.bot_id, state.error)
        return True
