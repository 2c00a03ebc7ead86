"""Transcript summaries: the interface (backend.py) and its back-ends side by side (backends/)."""

from meetbot.summaries.backend import Style, Summarizer, summarizer_for

__all__ = ["Style", "Summarizer", "summarizer_for"]
