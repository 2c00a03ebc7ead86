"""Reads the simulator's sync clock (meeting URL option sync=N, static/sync.js) back from a recording: flash onsets
in the video against beep onsets in the audio, i.e. the recording's A/V offset at its start and end."""

from __future__ import annotations

import bisect
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

_META = re.compile(r"pts_time:([\d.]+)\s+lavfi\.signalstats\.YAVG=([\d.]+)")
_SILENCE_END = re.compile(r"silence_end:\s*([\d.]+)")
FLASH_LUMA = 128  # the sync square is black (Y 16) or white (Y 235)
EDGE_EVENTS = 5  # events averaged (median) at each end


def flash_onsets(path: Path) -> list[float]:
    """Media times of the first frame of every white flash of the square in the top-left corner."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v", "-vf"]
    cmd += ["crop=48:48:24:24,signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    onsets, lit = [], False
    for time_s, luma in _META.findall(out.replace("\n", " ")):
        bright = float(luma) > FLASH_LUMA
        if bright and not lit:
            onsets.append(float(time_s))
        lit = bright
    return onsets


def beep_onsets(path: Path) -> list[float]:
    """Media times where a 1 kHz beep starts after silence (silencedetect's silence_end, sample-accurate)."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(path), "-map", "0:a"]
    cmd += ["-af", "bandpass=f=1000:width_type=q:w=2,silencedetect=noise=-35dB:d=0.3", "-f", "null", "-"]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    return [float(t) for t in _SILENCE_END.findall(err)]


def drift(path: Path, period: float, edge_events: int = EDGE_EVENTS) -> dict[str, Any]:
    """Audio minus video offset (ms) of the first and the last flash/beep pairs (median of `edge_events` each), their
    difference (the drift) and the worst deviation from the first offset along the way."""
    flashes, beeps = flash_onsets(path), beep_onsets(path)
    offsets: list[tuple[float, float]] = []
    for flash in flashes:
        i = bisect.bisect_left(beeps, flash)
        near = min(beeps[max(0, i - 1) : i + 1], key=lambda beep: abs(beep - flash), default=None)
        if near is not None and abs(near - flash) < period / 2:
            offsets.append((flash, near - flash))
    if len(offsets) < 2 * edge_events:
        return {
            "pairs": len(offsets),
            "flashes": len(flashes),
            "beeps": len(beeps),
            "error": "too few flash/beep pairs",
        }
    start = statistics.median(o for _, o in offsets[:edge_events])
    end = statistics.median(o for _, o in offsets[-edge_events:])
    return {
        "pairs": len(offsets),
        "span_s": round(offsets[-1][0] - offsets[0][0], 1),
        "offset_start_ms": round(1000 * start),
        "offset_end_ms": round(1000 * end),
        "drift_ms": round(1000 * (end - start)),
        "worst_deviation_ms": round(1000 * max(abs(o - start) for _, o in offsets)),
    }
