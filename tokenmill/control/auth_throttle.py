"""Failed authentication, throttled per client address and per key prefix.

Every refused credential (missing, unknown, revoked, expired) counts one failure against the
client's address and against the first characters of the key it offered. Once either has
``limit`` failures within a minute, that address (or prefix) is refused with 429 and
``Retry-After`` until the minute's count falls back under the limit, before the key is looked
up, so guessing costs the database nothing. A key already known to be valid (in the key
cache) is never throttled: a client behind the same address as a guesser, or whose key shares
a prefix with one, is not slowed.

Counts are per gateway process, in a sliding window of two one-minute buckets (the previous
minute's count weighs by how much of it is still inside the window), kept in bounded LRUs.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from tokenmill.clock import Clock
from tokenmill.errors import RateLimited

WINDOW_SECONDS = 60.0
PREFIX_CHARS = 12  # "tm-" and nine characters of the secret: a guesser's fixed part
MAX_TRACKED = 50_000


@dataclass(slots=True)
class _Window:
    minute: int
    current: int
    previous: int

    def count(self, minute: int, into: float) -> float:
        self._roll(minute)
        return self.current + self.previous * (1.0 - into)

    def add(self, minute: int) -> None:
        self._roll(minute)
        self.current += 1

    def _roll(self, minute: int) -> None:
        if minute == self.minute:
            return
        self.previous = self.current if minute == self.minute + 1 else 0
        self.current, self.minute = 0, minute


class AuthThrottle:
    """``limit`` failures a minute per address and per key prefix; 0 turns it off."""

    def __init__(self, clock: Clock, limit: int, max_tracked: int = MAX_TRACKED) -> None:
        self._clock = clock
        self._limit = limit
        self._max_tracked = max_tracked
        self._lock = threading.Lock()
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    def refusal(self, address: str | None, secret: str | None) -> RateLimited | None:
        """The 429 to answer while the address or the key's prefix is over its limit."""
        if not self.enabled:
            return None
        minute, into = self._now()
        with self._lock:
            for name in self._names(address, secret):
                window = self._windows.get(name)
                if window is not None and window.count(minute, into) >= self._limit:
                    wait = self._retry_after(window, minute, into)
                    return RateLimited(
                        "Too many failed authentication attempts from this client. "
                        f"Try again in {wait} seconds.",
                        code="too_many_auth_failures",
                        headers={"retry-after": str(wait)},
                    )
        return None

    def failed(self, address: str | None, secret: str | None) -> None:
        if not self.enabled:
            return
        minute, _ = self._now()
        with self._lock:
            for name in self._names(address, secret):
                window = self._windows.get(name)
                if window is None:
                    window = self._windows[name] = _Window(minute, 0, 0)
                window.add(minute)
                self._windows.move_to_end(name)
            while len(self._windows) > self._max_tracked:
                self._windows.popitem(last=False)

    def _now(self) -> tuple[int, float]:
        seconds = self._clock.monotonic() / WINDOW_SECONDS
        minute = math.floor(seconds)
        return minute, seconds - minute

    def _retry_after(self, window: _Window, minute: int, into: float) -> int:
        """Seconds until the sliding count falls under the limit with no new failure."""
        if window.current >= self._limit:
            # this minute's count becomes the previous one and shrinks under the limit
            left = (1.0 - into) + (1.0 - self._limit / window.current)
            return math.ceil(left * WINDOW_SECONDS) + 1
        # the previous minute's share shrinks linearly: below the limit at ``into + need``
        need = (window.count(minute, into) - self._limit) / max(window.previous, 1)
        return max(1, math.ceil(need * WINDOW_SECONDS) + 1)

    @staticmethod
    def _names(address: str | None, secret: str | None) -> list[str]:
        names = []
        if address:
            names.append(f"address:{address}")
        if secret:
            names.append(f"prefix:{secret[:PREFIX_CHARS]}")
        return names
