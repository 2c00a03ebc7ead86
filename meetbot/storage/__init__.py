"""Object storage for recordings: the interface (backend.py) and its back-ends side by side (backends/)."""

from meetbot.storage.backend import CHUNK_SIZE, ObjectInfo, ObjectStore, recording_key, store_from_url

__all__ = ["CHUNK_SIZE", "ObjectInfo", "ObjectStore", "recording_key", "store_from_url"]
