"""Where a bot cuts its live-transcript chunks: in the pauses between sentences, and never past what the file holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meetbot.db import migrate
from meetbot.queue import build_broker
from meetbot.transcription.audio import extract_audio
from tests.conftest import make_settings
from workers.bots.live_chunks import FILE_LAG_S, LiveChunker
from workers.bots.recorder import MediaPosition, SoundTracker
from workers.context import WorkerContext


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    db_url = f"sqlite:///{tmp_path / 'meetbot.db'}"
    migrate(db_url)
    settings = make_settings(tmp_path, db_url, live_chunk_min_seconds=30, live_chunk_max_seconds=60)
    ctx = WorkerContext.create(settings, build_broker(settings))
    yield ctx
    ctx.engine.dispose()


def chunker_for(ctx: WorkerContext, recording: Path) -> LiveChunker:
    return LiveChunker(ctx, bot_id=1, user_id=1, recording=recording, language="en")


def test_the_tracker_remembers_the_pauses_that_ended() -> None:
    tracker = SoundTracker(min_silence=0.6, zero_mono=0.0)
    for line in ("silence_start: 0", "silence_end: 1.2", "silence_start: 4.0", "silence_end: 6.5", "silence_start: 9"):
        tracker.feed(f"[silencedetect @ 0x1] {line}")
    position = tracker.position()
    assert position.pauses == ((0.0, 1.2), (4.0, 6.5))
    assert position.silent_since == 9.0


def test_a_chunk_is_cut_in_the_middle_of_the_last_pause_past_the_minimum(context: WorkerContext) -> None:
    chunker = chunker_for(context, Path("unused.mp4"))
    # Sentences with 2.5 s pauses; the file is ready up to 44 s. Pauses before 30 s are too early to cut in.
    pauses = ((20.0, 22.5), (31.0, 33.5), (37.0, 39.5), (43.0, 45.5))
    ready = 44.0 + FILE_LAG_S
    assert chunker.next_cut(MediaPosition(ready, None, pauses)) == pytest.approx(38.25)
    # In the middle of a sentence, with no pause since the minimum: wait, and cut at the maximum only.
    assert chunker.next_cut(MediaPosition(50.0 + FILE_LAG_S, None, pauses[:1])) is None
    assert chunker.next_cut(MediaPosition(61.0 + FILE_LAG_S, None, pauses[:1])) == pytest.approx(61.0)
    # A silence still going on is cut just inside it.
    assert chunker.next_cut(MediaPosition(40.0 + FILE_LAG_S, 35.0, pauses[:1])) == pytest.approx(35.5)
    # Nothing before the minimum, whatever the pauses.
    assert chunker.next_cut(MediaPosition(25.0 + FILE_LAG_S, 24.0, pauses[:1])) is None


def test_a_cut_past_the_end_of_the_file_is_deferred_not_handed_over_short(
    context: WorkerContext, audio_recording_file: Path
) -> None:
    chunker = chunker_for(context, audio_recording_file)
    chunker.cut_at = 20.0  # what poll() set before handing the cut 0..20 s to its thread (the file holds 12 s)
    chunker._cut(0.0, 20.0, final=False)
    assert chunker.cut_at == 0.0 and chunker.next_idx == 0  # nothing handed over; the same audio is cut again later
    assert chunker.file_lag > FILE_LAG_S  # and the file is given more time from now on
    assert not any((audio_recording_file.parent / "chunks").glob("*.wav"))


def test_a_cut_inside_the_file_is_complete(context: WorkerContext, audio_recording_file: Path, tmp_path: Path) -> None:
    chunker = chunker_for(context, audio_recording_file)
    wav = extract_audio(audio_recording_file, tmp_path / "part.wav", 2.0, 10.0)
    assert chunker._reaches(wav, 2.0, 10.0)
    assert chunker.file_lag == FILE_LAG_S
