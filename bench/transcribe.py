"""Transcription benchmark: real-time factor and word error rate of faster-whisper on a two-voice espeak-ng meeting.

Prints JSON lines: one per configuration (sequential/batched x compute type x beam size), then the live-transcript
end phase (what is left to do when a meeting ends: its last chunk, <= live_chunk_max_seconds + the file lag) set
beside transcribing a whole meeting after it ends. Runs on CPU here; on a GPU node pass --device cuda.

    python bench/transcribe.py [--minutes 10] [--device auto] [--model DIR_OR_SIZE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jiwer

from meetbot.settings import Settings
from meetbot.transcription.audio import extract_audio
from meetbot.transcription.engine import TranscriptionEngine

LINES = [
    ("Alice", "Good morning everyone, let us start with the quarterly review of the product roadmap."),
    ("Bob", "Thanks Alice. The sales numbers for the last three months are ahead of our forecast."),
    ("Alice", "That is great news. What did the customers say about the new billing page?"),
    ("Bob", "Most of them liked it, but two large accounts asked for invoices in their own currency."),
    ("Alice", "We should add that to the plan for next month and ask the finance team for help."),
    ("Bob", "I will write a short proposal and send it to the finance team by Friday."),
    ("Alice", "Please also check how long the support tickets waited during the holidays."),
    ("Bob", "The average waiting time was four hours, which is twice as long as usual."),
    ("Alice", "Then we need two more people on the support rota for the next holiday season."),
    ("Bob", "Agreed. I will talk to the support lead this afternoon and report back tomorrow."),
]
VOICES = {"Alice": ["-v", "en-us", "-s", "160"], "Bob": ["-v", "en-gb+m3", "-s", "150", "-p", "35"]}
PAUSE_S = 1.2


def make_meeting(folder: Path, minutes: float) -> tuple[Path, str, float]:
    """(wav, the words spoken, seconds): the script's lines over and over, each voice in turn, with pauses."""
    parts: list[Path] = []
    words: list[str] = []
    total = 0.0
    silence = folder / "pause.wav"
    subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", str(silence), "trim", "0", str(PAUSE_S)], check=True)
    rendered: dict[int, tuple[Path, float]] = {}
    index = 0
    while total < minutes * 60:
        line = index % len(LINES)
        if line not in rendered:
            wav = folder / f"line{line}.wav"
            name, text = LINES[line]
            subprocess.run(["espeak-ng", *VOICES[name], "-w", str(wav), text], check=True, capture_output=True)
            seconds = float(subprocess.run(["soxi", "-D", str(wav)], capture_output=True, text=True).stdout)
            rendered[line] = (wav, seconds)
        wav, seconds = rendered[line]
        parts += [wav, silence]
        words.append(LINES[line][1])
        total += seconds + PAUSE_S
        index += 1
    meeting = folder / "meeting.wav"
    subprocess.run(["sox", *map(str, parts), str(meeting)], check=True)
    return meeting, " ".join(words), total


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("'", ""))).strip()


def run(settings: Settings, audio: Path, reference: str, seconds: float) -> dict[str, object]:
    engine = TranscriptionEngine(settings)
    engine.load()
    started = time.perf_counter()
    body = engine.transcribe(audio, language="en")
    wall = time.perf_counter() - started
    wer = jiwer.wer(normalise(reference), normalise(body.text))
    return {
        "audio_s": round(seconds, 1),
        "wall_s": round(wall, 2),
        "rtf": round(seconds / wall, 1),
        "wer": round(wer, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="a model directory or a size already in the local cache")
    parser.add_argument("--quick", action="store_true", help="only the default configuration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meetbot-bench-transcribe-") as tmp:
        folder = Path(tmp)
        meeting, reference, seconds = make_meeting(folder, args.minutes)
        audio = extract_audio(meeting, folder / "meeting16k.wav")
        base = {"data_dir": folder / "data", "whisper_device": args.device, "whisper_model": args.model}
        print(json.dumps({"setup": f"{seconds / 60:.1f} min two-voice espeak-ng meeting", "device": args.device}))
        on_gpu = args.device == "cuda"
        computes = ["float16"] if on_gpu else ["int8", "float32"]
        configs = [(8, computes[0], 1)] if args.quick else [
            (batch, compute, beam) for batch in (0, 8) for compute in computes for beam in (1, 5)
        ]  # fmt: skip
        for batch, compute, beam in configs:
            settings = Settings(**base, whisper_batch_size=batch, whisper_compute_type=compute, whisper_beam_size=beam)
            result = run(settings, audio, reference, seconds)
            pipeline = "batched" if batch else "sequential"
            print(json.dumps({"pipeline": pipeline, "compute_type": compute, "beam": beam, **result}), flush=True)

        # What is left when a meeting ends, live (its last chunk) or not (all of it).
        settings = Settings(**base)
        last = settings.live_chunk_max_seconds + 3.0
        tail = extract_audio(meeting, folder / "tail.wav", max(0.0, seconds - last), None)
        engine = TranscriptionEngine(settings)
        engine.load()
        started = time.perf_counter()
        engine.transcribe(tail, language="en", offset_s=max(0.0, seconds - last))
        tail_s = time.perf_counter() - started
        default = run(settings, audio, reference, seconds)
        per_audio_s = default["wall_s"] / seconds  # type: ignore[operator]
        print(json.dumps({
            "end_phase": "meeting end -> transcript done (transcribing the last chunk; the rest was done in call)",
            "live_last_chunk_s": round(last, 1), "live_end_to_done_s": round(tail_s, 2),
            "after_call_30min_s": round(per_audio_s * 1800, 1), "after_call_this_meeting_s": default["wall_s"],
            "note": "live: the same whatever the meeting's length; the transcriber keeps up while rtf > 1",
        }))  # fmt: skip


if __name__ == "__main__":
    main()
