"""Live transcription, bot side: cut the recording's audio at silences while in call and queue each chunk."""

from __future__ import annotations

import logging
import threading
import wave
from pathlib import Path

from meetbot.domain import chunks
from workers.bots.recorder import MediaPosition
from workers.context import WorkerContext

log = logging.getLogger("meetbot.bot")
# ffmpeg has processed audio a little before it is in the file: fragments are written every 1-2 s. Under load the
# file can lag more; a chunk that comes out short raises the lag (up to MAX_FILE_LAG_S) and is cut again later.
FILE_LAG_S = 3.0
MAX_FILE_LAG_S = 12.0
SHORT_CHUNK_TOLERANCE_S = 0.25
INTO_SILENCE_S = 0.5  # a cut in a silence still going on lands this far into it, never on its edge


class LiveChunker:
    """Hands the audio recorded so far to the `transcribe` queue in chunks of about 30-60 s, cut in silences.

    poll() is called from the bot's loop and never blocks it: a cut (ffmpeg, upload, enqueue) runs in a
    thread, one at a time. finish() cuts the last chunk from the final file, so that when the meeting ends
    only that chunk is left to transcribe.
    """

    def __init__(self, ctx: WorkerContext, bot_id: int, user_id: int, recording: Path, language: str | None) -> None:
        self.ctx = ctx
        self.bot_id = bot_id
        self.user_id = user_id
        self.recording = recording
        self.options = {"language": language}
        self.cut_at = 0.0  # media seconds already handed over
        self.next_idx = 0
        self.failed = False
        self.file_lag = FILE_LAG_S
        self._thread: threading.Thread | None = None
        self._work = recording.parent / "chunks"

    def poll(self, position: MediaPosition | None) -> None:
        if position is None or self.failed or (self._thread is not None and self._thread.is_alive()):
            return
        cut = self.next_cut(position)
        if cut is not None:
            start, self.cut_at = self.cut_at, cut
            self._thread = threading.Thread(
                target=self._cut_safely, args=(start, cut, False), name=f"bot-{self.bot_id}-chunk", daemon=True
            )
            self._thread.start()

    def next_cut(self, position: MediaPosition) -> float | None:
        """Where to cut now, if anywhere: in the latest pause past the minimum length, else at the maximum.

        A pause that ended is cut in its middle, one going on INTO_SILENCE_S after it began: a cut never splits
        a word, which Whisper would drop or garble at both chunks' edges.
        """
        settings = self.ctx.settings
        ready_until = position.media_time - self.file_lag
        earliest = self.cut_at + settings.live_chunk_min_seconds
        if ready_until < earliest:
            return None
        points = [(start + end) / 2 for start, end in position.pauses]
        if position.silent_since is not None:
            points.append(position.silent_since + INTO_SILENCE_S)
        in_pauses = [point for point in points if earliest <= point <= ready_until]
        if in_pauses:
            return max(in_pauses)
        if ready_until - self.cut_at >= settings.live_chunk_max_seconds:
            return ready_until
        return None

    def finish(self) -> None:
        """Cut the last chunk from the finished recording (blocking) and mark it final."""
        if self._thread is not None:
            self._thread.join()
        if self.failed:
            raise RuntimeError("an earlier chunk could not be handed over")
        self._cut(self.cut_at, None, True)

    def _cut_safely(self, start: float, end: float, final: bool) -> None:
        try:
            self._cut(start, end, final)
        except Exception:
            self.failed = True  # the recording is complete anyway: the whole of it is transcribed after the call
            log.exception("live transcript chunk not handed over", extra={"bot_id": self.bot_id})

    def _cut(self, start: float, end: float | None, final: bool) -> None:
        from meetbot.transcription.audio import extract_audio
        from workers.bots.recording import upload_with_retries

        idx = self.next_idx
        self._work.mkdir(parents=True, exist_ok=True)
        wav = extract_audio(self.recording, self._work / f"{idx:05d}.wav", start, end)
        if end is not None and not self._reaches(wav, start, end):
            return
        key = f"users/{self.user_id}/bots/{self.bot_id}/chunks/{idx:05d}.wav"
        delays = self.ctx.settings.upload_retry_delays
        upload_with_retries(self.ctx.store, key, wav, "audio/wav", delays, self.ctx.shutdown)
        span = (start, end if end is not None else -1.0)
        with self.ctx.engine.begin() as conn:
            message = chunks.add_chunk(conn, self.bot_id, self.user_id, idx, span, key, final, self.options)
        self.ctx.broker.enqueue(message)
        self.next_idx = idx + 1
        wav.unlink(missing_ok=True)
        log.info("live transcript chunk queued", extra={"bot_id": self.bot_id, "chunk": idx, "start_s": start,
                                                        "end_s": end, "final": final})  # fmt: skip

    def _reaches(self, wav: Path, start: float, end: float) -> bool:
        """Whether the file held audio up to the cut; if not, the cut is undone and the file given more time.

        Handing over a short chunk would lose the audio between the file's end and the cut for good.
        """
        seconds = end - start
        with wave.open(str(wav), "rb") as audio:
            got = audio.getnframes() / audio.getframerate()
        if got >= seconds - SHORT_CHUNK_TOLERANCE_S:
            return True
        wav.unlink(missing_ok=True)
        self.cut_at = start  # the next poll cuts this chunk again
        self.file_lag = min(MAX_FILE_LAG_S, self.file_lag + (seconds - got) + 1.0)
        log.info("live transcript chunk deferred: the recording file is behind", extra={
            "bot_id": self.bot_id, "wanted_s": round(seconds, 2), "got_s": round(got, 2), "file_lag_s": self.file_lag,
        })  # fmt: skip
        return False
