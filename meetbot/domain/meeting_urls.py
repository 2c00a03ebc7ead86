"""Which meeting URLs belong to which platform (real hosts, and simulator shapes when allowed)."""

from __future__ import annotations

import re

import ada_url

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
# The simulator's meetings, and its Zoom personal rooms (/zoom/my/<name>, which open its launcher page).
_SIMULATOR_PATH = re.compile(r"^/(google|zoom|teams)/([A-Za-z0-9_-]{1,64})/?$|^/(zoom)/my/[A-Za-z0-9._-]{1,64}/?$")
# What comes between the scheme and the path as written: a userinfo there ("user:pass@"), even an empty one, is
# refused rather than silently dropped.
_WRITTEN_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/*([^/?#]*)")


class MeetingUrlError(ValueError):
    """A meeting URL refused; the message says why, in words fit for the API's 422 detail."""


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


# The parts of a parsed URL the checks read, fetched from ada in one call (each attribute read apart costs as much
# as the parse itself).
_PARTS = ("href", "username", "password", "protocol", "hostname", "port", "pathname")
# What a browser strips or drops (WHATWG rules: whitespace and C0/C1 controls), so a URL carrying any is refused.
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _whatwg_parse(url: str) -> dict[str, str] | None:
    """The URL's parts as a browser reads it (WHATWG URL Standard), or None when a browser would not open it."""
    try:
        return ada_url.parse_url(url, attributes=_PARTS)
    except ValueError:
        return None


def _simulator_platform(parts: dict[str, str]) -> str | None:
    """The platform of a simulator-shaped URL (http(s)://any-host/<platform>/<id>), else None."""
    if parts["protocol"] not in ("http:", "https:") or not parts["hostname"]:
        return None
    match = _SIMULATOR_PATH.match(parts["pathname"])
    return (match.group(1) or match.group(3)) if match else None


def canonical_meeting_url(platform: str, url: str, allow_simulator: bool) -> str:
    """The WHATWG serialization of url, the exact URL the bot's browser opens; MeetingUrlError when it is not a
    meeting URL of platform.

    Every check reads the URL as Chromium will (backslashes as '/', percent- and IDNA-encoded hosts decoded,
    IPv4 in any notation canonicalized), so no host can hide from them. Only the canonical form is stored.
    """
    if platform not in PLATFORMS:
        raise MeetingUrlError(f"unknown platform {platform!r}")
    if _SPACE_OR_CONTROL.search(url):
        raise MeetingUrlError("URL must not contain whitespace or control characters")
    if "\\" in url:
        raise MeetingUrlError("URL must not contain backslashes (a browser reads them as '/')")
    parts = _whatwg_parse(url)
    if parts is None:
        raise MeetingUrlError("not a valid URL")
    written = _WRITTEN_AUTHORITY.match(url)
    if parts["username"] or parts["password"] or (written and "@" in written.group(1)):
        raise MeetingUrlError("URL must not carry a user name or password before the host")
    if allow_simulator and _simulator_platform(parts) == platform:
        return parts["href"]
    if parts["protocol"] != "https:":
        raise MeetingUrlError("meeting URL must use https")
    host = parts["hostname"]
    if not _host_matches(platform, host):
        raise MeetingUrlError(f"URL host {host or '(none)'!r} is not a {platform} meeting host")
    if parts["port"]:  # the WHATWG serialization drops the default port, so any port left is another one
        raise MeetingUrlError(f"{platform} meeting URLs use the default https port, not {parts['port']}")
    path = parts["pathname"]
    if platform == "teams" and path.startswith("/dl/launcher") and "meetup-join" not in parts["href"]:
        raise MeetingUrlError("Teams launcher URL does not carry a meetup-join link")
    if not _path_matches(platform, path):
        raise MeetingUrlError(f"URL path is not a {platform} meeting link")
    return parts["href"]


def check_meeting_url(platform: str, url: str, allow_simulator: bool) -> str | None:
    """None when url is a meeting URL of platform, else the reason it is not."""
    try:
        canonical_meeting_url(platform, url, allow_simulator)
    except MeetingUrlError as refused:
        return str(refused)
    return None
