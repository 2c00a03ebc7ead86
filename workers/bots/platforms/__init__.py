"""Platform adapters (Google Meet, Zoom, Teams web clients) and the lookup by platform name."""

from __future__ import annotations

from workers.bots.platforms.base import JoinCancelled, JoinRequest, PageState, Phase, PlatformAdapter
from workers.bots.platforms.google import GoogleMeetAdapter
from workers.bots.platforms.teams import TeamsAdapter
from workers.bots.platforms.zoom import ZoomAdapter

ADAPTERS: dict[str, type[PlatformAdapter]] = {
    "google": GoogleMeetAdapter,
    "zoom": ZoomAdapter,
    "teams": TeamsAdapter,
}


def adapter_for(platform: str) -> type[PlatformAdapter]:
    """The adapter class for "google" | "zoom" | "teams"; ValueError for anything else."""
    try:
        return ADAPTERS[platform]
    except KeyError:
        raise ValueError(f"Unknown platform {platform!r}; expected one of {sorted(ADAPTERS)}") from None


__all__ = [
    "ADAPTERS",
    "GoogleMeetAdapter",
    "JoinCancelled",
    "JoinRequest",
    "PageState",
    "Phase",
    "PlatformAdapter",
    "TeamsAdapter",
    "ZoomAdapter",
    "adapter_for",
]
