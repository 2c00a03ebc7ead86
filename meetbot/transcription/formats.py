"""Transcript export formats: the API's JSON, plain text, SubRip (SRT) and WebVTT."""

from __future__ import annotations

import json
from typing import Literal

from meetbot.schemas.transcripts import Segment, TranscriptBody

Format = Literal["json", "txt", "srt", "vtt"]
CONTENT_TYPES: dict[str, str] = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip",
    "vtt": "text/vtt; charset=utf-8",
}


def _millis(seconds: float) -> tuple[int, int, int, int]:
    total = max(0, round(seconds * 1000))
    hours, rest = divmod(total, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return hours, minutes, secs, millis


def clock(seconds: float) -> str:
    """hh:mm:ss (whole seconds, rounded down), as txt lines show it."""
    hours, minutes, secs, _ = _millis(int(max(0.0, seconds)))
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def timestamp(seconds: float, separator: str) -> str:
    """hh:mm:ss,mmm (SRT, separator ',') or hh:mm:ss.mmm (WebVTT, separator '.')."""
    hours, minutes, secs, millis = _millis(seconds)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _one_line(text: str) -> str:
    """Cue text on one line: a blank line would end an SRT/VTT cue early."""
    return " ".join(text.split())


def _cues(transcript: TranscriptBody) -> list[tuple[float, float, Segment, str]]:
    """Segments with text, with times that never run backwards (end >= start)."""
    cues = []
    for segment in transcript.segments:
        text = _one_line(segment.text)
        if text:
            cues.append((segment.start, max(segment.start, segment.end), segment, text))
    return cues


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_json(transcript: TranscriptBody) -> str:
    body = {**transcript.model_dump(mode="json", by_alias=True), "text": transcript.text}
    return json.dumps(body, ensure_ascii=False)


def render_txt(transcript: TranscriptBody) -> str:
    lines = []
    for start, _, segment, text in _cues(transcript):
        speaker = f"{_one_line(segment.speaker)}: " if segment.speaker and segment.speaker.strip() else ""
        lines.append(f"[{clock(start)}] {speaker}{text}")
    return "".join(f"{line}\n" for line in lines)


def render_srt(transcript: TranscriptBody) -> str:
    blocks = []
    for index, (start, end, segment, text) in enumerate(_cues(transcript), start=1):
        speaker = f"{_one_line(segment.speaker)}: " if segment.speaker and segment.speaker.strip() else ""
        blocks.append(f"{index}\n{timestamp(start, ',')} --> {timestamp(end, ',')}\n{speaker}{text}\n")
    return "\n".join(blocks)


def render_vtt(transcript: TranscriptBody) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, segment, text in _cues(transcript):
        voice = f"<v {_vtt_escape(_one_line(segment.speaker))}>" if segment.speaker and segment.speaker.strip() else ""
        blocks.append(f"{timestamp(start, '.')} --> {timestamp(end, '.')}\n{voice}{_vtt_escape(text)}\n")
    return "\n".join(blocks)


_RENDERERS = {"json": render_json, "txt": render_txt, "srt": render_srt, "vtt": render_vtt}


def render(transcript: TranscriptBody, fmt: Format) -> tuple[str, str]:
    """The transcript as a document of the format asked for, with that document's content type."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown transcript format {fmt!r}; expected one of {', '.join(_RENDERERS)}") from None
    return renderer(transcript), CONTENT_TYPES[fmt]
