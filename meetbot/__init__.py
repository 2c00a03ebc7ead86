"""MeetBot: self-hostable meeting bots (shared core: settings, database, schemas, storage, domain)."""

__version__ = "0.1.0"
