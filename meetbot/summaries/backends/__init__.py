"""Summarizer back-ends: extractive.py (the default, no model) and llm.py (any OpenAI-compatible chat endpoint)."""
