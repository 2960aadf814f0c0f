"""Carries key revocations and changed terms (caps, rate limits, tiers), made anywhere (CLI,
another gateway), into this process's key cache.

Every gateway polls the shared database for keys revoked or changed lately and drops its
cached copies, so a change takes effect everywhere within one poll interval instead of one
cache TTL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Protocol

from tokenmill.clock import Clock

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(seconds=5)


class KeyChanges(Protocol):
    def changed_since(self, since: datetime) -> list[str]: ...


class Invalidator(Protocol):
    def invalidate(self, key_id: str) -> None: ...


class KeyChangeWatcher:
    def __init__(
        self,
        source: KeyChanges,
        cache: Invalidator,
        clock: Clock,
        interval_seconds: float = 1.0,
    ) -> None:
        self._source = source
        self._cache = cache
        self._clock = clock
        self._interval_seconds = interval_seconds
        self._since = clock.utcnow() - CLOCK_SKEW

    def poll_once(self) -> list[str]:
        """Invalidates every key revoked or changed since the last poll; returns their ids.

        Each poll looks back a little before the previous one (another process's clock may
        run behind ours), so a key may be invalidated more than once, which is harmless.
        """
        started = self._clock.utcnow()
        changed = self._source.changed_since(self._since)
        for key_id in changed:
            self._cache.invalidate(key_id)
        self._since = started - CLOCK_SKEW
        return changed

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.poll_once)
            except Exception:
                log.exception("polling for changed keys failed; retrying")
            await asyncio.sleep(self._interval_seconds)
