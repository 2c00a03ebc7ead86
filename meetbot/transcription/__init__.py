"""Speech to text for recordings: audio extraction, the faster-whisper engine, speaker attribution, export formats."""
