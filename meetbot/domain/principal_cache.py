"""A short-lived in-process cache of authenticated callers (bearer token → Principal), and its revocation epoch."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meetbot.domain.accounts import Principal

_epoch = 0
_epoch_lock = threading.Lock()


def revocation_epoch() -> int:
    """How many revocations this process has seen: a lookup begun under another epoch may be out of date."""
    return _epoch


def bump_revocation_epoch() -> None:
    """Forget every cached caller in this process (called after a revocation commits)."""
    global _epoch
    with _epoch_lock:
        _epoch += 1


class PrincipalCache:
    """Token digest → (principal, expiry, epoch); bounded in size, entries ≤ ttl seconds old.

    A hit saves the database read of an authenticated request. An entry lives at most `principal_cache_seconds`
    (1 s at most), so a key revoked or a session ended through another API process is refused within that time; in
    this process a committed revocation bumps the epoch, which empties the cache at once. A JWT's entry never
    outlives the token's own expiry.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> Principal | None:
        if self.ttl <= 0:
            return None
        digest = self._digest(token)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, expires, epoch = entry
        if time.monotonic() >= expires or epoch != _epoch:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return principal

    def put(self, token: str, principal: Principal, token_expires_in: float | None = None) -> None:
        if self.ttl <= 0:
            return
        lifetime = self.ttl if token_expires_in is None else min(self.ttl, token_expires_in)
        if lifetime <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[self._digest(token)] = (principal, time.monotonic() + lifetime, _epoch)

    def authenticate(self, token: str, lookup: Callable[[str], tuple[Principal, float | None]]) -> Principal:
        """The cached principal of token, else lookup(token) → (principal, seconds the token still lives)."""
        cached = self.get(token)
        if cached is not None:
            return cached
        epoch_before = _epoch
        principal, expires_in = lookup(token)
        if epoch_before == _epoch:  # a revocation committed during the lookup may have come too late for it
            self.put(token, principal, expires_in)
        return principal
