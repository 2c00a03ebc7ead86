"""Audio extraction: any recording (or a time window of it) to the 16 kHz mono PCM WAV the engine reads."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import ffmpeg

from meetbot.errors import TranscriptionError

log = logging.getLogger("meetbot.transcription")
SAMPLE_RATE = 16_000  # what Whisper models are trained on


def _reason(exc: ffmpeg.Error) -> str:
    """The last meaningful line ffmpeg/ffprobe wrote to stderr, e.g. 'Invalid data found when processing input'."""
    lines = [line.strip() for line in (exc.stderr or b"").decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    last = lines[-1]
    return last.split(": ", 1)[1] if last.startswith("/") and ": " in last else last  # drop the path prefix


def _audio_streams(media: Path) -> list[dict[str, Any]]:
    try:
        probe = ffmpeg.probe(str(media))
    except ffmpeg.Error as exc:
        raise TranscriptionError(f"The recording could not be read: {_reason(exc)}") from exc
    except FileNotFoundError as exc:
        raise TranscriptionError("ffprobe is not installed on this worker") from exc
    return [stream for stream in probe.get("streams", []) if stream.get("codec_type") == "audio"]


def extract_audio(media: Path, target: Path, start_s: float = 0.0, end_s: float | None = None) -> Path:
    """Write media's first audio track (from start_s to end_s, or to its end) to target as 16 kHz mono WAV.

    Raises TranscriptionError when media is missing, unreadable (corrupt, not a media file) or has no audio track.
    """
    if start_s < 0 or (end_s is not None and end_s <= start_s):
        raise ValueError(f"invalid audio window {start_s}..{end_s}")
    if not media.is_file():
        raise TranscriptionError(f"The recording file {media.name} does not exist")
    if not _audio_streams(media):
        raise TranscriptionError("The recording has no audio track")
    input_options: dict[str, float] = {}
    if start_s > 0:
        input_options["ss"] = start_s
    if end_s is not None:
        input_options["t"] = end_s - start_s
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stream = (
        ffmpeg.input(str(media), **input_options)
        .output(str(target), map="0:a:0", ac=1, ar=SAMPLE_RATE, acodec="pcm_s16le", format="wav", map_metadata=-1)
        .global_args("-nostdin", "-v", "error")
        .overwrite_output()
    )
    try:
        stream.run(capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as exc:
        raise TranscriptionError(f"The recording's audio could not be decoded: {_reason(exc)}") from exc
    except FileNotFoundError as exc:
        raise TranscriptionError("ffmpeg is not installed on this worker") from exc
    log.info(
        "audio extracted",
        extra={"media": media.name, "start_s": start_s, "end_s": end_s, "wall_s": round(time.monotonic() - started, 3)},
    )
    return target
