"""Page states an adapter cannot classify: the one log line per distinct unknown screen that lasts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from workers.bots.platforms.base import Phase, redact_url


class UnknownPageLog:
    """Watches the phases read from a page; a state not recognised for `after_seconds` is described once
    (title, URL with secrets redacted, visible button texts) so a new screen can be diagnosed from the
    bot's logs alone (docs/platforms.md#unknown-screens)."""

    def __init__(self, after_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after_seconds = after_seconds
        self.clock = clock
        self._current: tuple[tuple[str, ...], float] | None = None  # (page key, since)
        self._logged: set[tuple[str, ...]] = set()

    def note(self, phase: Phase, page: dict[str, Any] | None) -> str | None:
        """The message to log now, or None. `page` is the probe's {title, url, buttons} of an unknown state."""
        if phase != Phase.UNKNOWN or not page:
            self._current = None
            return None
        title = str(page.get("title") or "")
        url = redact_url(str(page.get("url") or ""))
        buttons = tuple(str(text) for text in page.get("buttons") or ())
        key = (title, url, *buttons)
        now = self.clock()
        if self._current is None or self._current[0] != key:
            self._current = (key, now)
            return None
        since = self._current[1]
        if now - since < self.after_seconds or key in self._logged:
            return None
        self._logged.add(key)
        shown = ", ".join(f"'{text}'" for text in buttons) or "none"
        return f"page not recognised for {now - since:.0f}s: title '{title}', url {url}, buttons: {shown}"
