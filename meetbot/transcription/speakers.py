"""Speaker attribution: who said each word, from the meeting's active-speaker timeline, splitting segments."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from meetbot.schemas.transcripts import Segment, Word

Timeline = list[tuple[float, str | None]]


class _Turns:
    """The timeline as half-open turns [start, next start) of one speaker (None: nobody); the last one never ends."""

    def __init__(self, timeline: Timeline) -> None:
        ordered = sorted(timeline, key=lambda event: event[0])  # stable: of two events at one time the later wins
        self.starts = [float(at) for at, _ in ordered]
        self.ends = [*self.starts[1:], math.inf]
        self.names = [name or None for _, name in ordered]

    def at(self, moment: float) -> str | None:
        index = bisect.bisect_right(self.starts, moment) - 1
        return self.names[index] if index >= 0 else None

    def speaker(self, start: float, end: float) -> str | None:
        """The named speaker with the largest overlap with [start, end].

        "Nobody" turns do not compete with a named one: speech was heard, and the platforms' speaking indicator
        lags and drops out between words. None only where no named speaker overlaps at all (or before the first
        event). A zero-length span takes the speaker active at that moment.
        """
        if end <= start:
            return self.at(start)
        totals: dict[str, float] = {}
        index = max(0, bisect.bisect_right(self.starts, start) - 1)
        while index < len(self.starts) and self.starts[index] < end:
            overlap = min(end, self.ends[index]) - max(start, self.starts[index])
            name = self.names[index]
            if overlap > 0 and name is not None:
                totals[name] = totals.get(name, 0.0) + overlap
            index += 1
        return max(totals, key=lambda name: totals[name]) if totals else None


def _runs(words: Sequence[Word], speakers: Sequence[str | None]) -> list[tuple[str | None, list[Word]]]:
    runs: list[tuple[str | None, list[Word]]] = []
    for word, speaker in zip(words, speakers, strict=True):
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))
    return runs


def _text(words: Sequence[Word], glued: bool) -> str:
    """Words back to text: as whisper spelled them (leading spaces included) or, for bare words, space-joined."""
    if glued:
        return "".join(word.word for word in words).strip()
    return " ".join(word.word.strip() for word in words if word.word.strip())


def _split(segment: Segment, turns: _Turns) -> list[Segment]:
    speakers = [turns.speaker(word.start, word.end) for word in segment.words]
    runs = _runs(segment.words, speakers)
    if len(runs) == 1:
        return [segment.model_copy(update={"speaker": runs[0][0]})]
    glued = "".join(word.word for word in segment.words).strip() == segment.text.strip()
    pieces = []
    for number, (speaker, words) in enumerate(runs):
        start = segment.start if number == 0 else words[0].start
        end = segment.end if number == len(runs) - 1 else words[-1].end
        pieces.append(Segment(start=start, end=end, speaker=speaker, text=_text(words, glued), words=words))
    return pieces


def attribute_speakers(segments: list[Segment], timeline: list[tuple[float, str | None]]) -> list[Segment]:
    """Segments with their speaker set from timeline, split where the speaker changes within one.

    timeline: (seconds from the recording's 0 s at which this speaker became the active one, name or None for
    nobody). Each word gets the speaker of largest overlap with its span; a segment whose words change speaker
    becomes one segment per run of words with one speaker (start, end, text and words recomputed; the first keeps
    the segment's start, the last its end); a segment without words gets the speaker of largest overlap.
    """
    turns = _Turns(timeline)
    attributed: list[Segment] = []
    for segment in segments:
        if segment.words:
            attributed.extend(_split(segment, turns))
        else:
            attributed.append(segment.model_copy(update={"speaker": turns.speaker(segment.start, segment.end)}))
    return attributed
