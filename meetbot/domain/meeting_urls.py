"""Which meeting URLs belong to which platform (real hosts, and simulator shapes when allowed)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

PLATFORMS = ("google", "zoom", "teams")

# Link shapes: docs/platforms.md#google-url, #zoom-url, #teams-url. Google Meet codes are 3-4-3 lowercase letters;
# lookup codes/nicknames also exist.
_GOOGLE_PATH = re.compile(r"^/([a-z]{3}-[a-z]{4}-[a-z]{3}|lookup/[A-Za-z0-9_-]+|[a-z0-9-]{3,64})/?$")
_ZOOM_PATH = re.compile(r"^/(j|w|s|wc(/join)?)/\d{9,11}(/join|/start)?/?$|^/my/[A-Za-z0-9._-]+/?$")
_TEAMS_PATHS = (
    re.compile(r"^/l/meetup-join/.+"),
    re.compile(r"^/meet/\d{9,15}/?$"),
    re.compile(r"^/dl/launcher/launcher\.html$"),
    re.compile(r"^/v2/?$"),
    re.compile(r"^/_$"),
)
_SIMULATOR_PATH = re.compile(r"^/(google|zoom|teams)/([A-Za-z0-9_-]{1,64})/?$")


def _host_matches(platform: str, host: str) -> bool:
    if platform == "google":
        return host == "meet.google.com"
    if platform == "zoom":
        return host == "zoom.us" or host.endswith(".zoom.us")
    return host in ("teams.microsoft.com", "teams.live.com")


def _path_matches(platform: str, path: str) -> bool:
    if platform == "google":
        return bool(_GOOGLE_PATH.match(path))
    if platform == "zoom":
        return bool(_ZOOM_PATH.match(path))
    return any(pattern.match(path) for pattern in _TEAMS_PATHS)


def simulator_platform(url: str) -> str | None:
    """The platform of a simulator-shaped URL (http(s)://any-host/<platform>/<id>), else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    match = _SIMULATOR_PATH.match(parts.path)
    return match.group(1) if match else None


def _has_space_or_control(url: str) -> bool:
    """urlsplit silently strips or drops these (WHATWG rules), so a URL carrying them is refused instead."""
    return any(char.isspace() or unicodedata.category(char) == "Cc" for char in url)


def check_meeting_url(platform: str, url: str, allow_simulator: bool) -> str | None:
    """None when url is a meeting URL of platform, else the reason it is not."""
    if platform not in PLATFORMS:
        return f"unknown platform {platform!r}"
    if _has_space_or_control(url):
        return "URL must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        return "not a valid URL"
    if allow_simulator and simulator_platform(url) == platform:
        return None
    if parts.scheme != "https":
        return "meeting URL must use https"
    if not _host_matches(platform, host):
        return f"URL host {host or '(none)'!r} is not a {platform} meeting host"
    if port not in (None, 443):
        return f"{platform} meeting URLs use the default https port, not {port}"
    if platform == "teams" and parts.path.startswith("/dl/launcher") and "meetup-join" not in url:
        return "Teams launcher URL does not carry a meetup-join link"
    if not _path_matches(platform, parts.path):
        return f"URL path is not a {platform} meeting link"
    return None
