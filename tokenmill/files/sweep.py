"""Removes expired files: marks them deleted and drops their bytes, every few minutes.

Reads already hide an expired file the moment it expires; the sweep frees the disk. Safe to
run in every gateway at once: marking deleted and removing a blob are both idempotent.
"""

from __future__ import annotations

import asyncio
import logging

from tokenmill.files.service import FileService

log = logging.getLogger(__name__)


class ExpiredFileSweep:
    def __init__(self, files: FileService, interval_seconds: float) -> None:
        self._files = files
        self._interval_seconds = interval_seconds

    async def run(self) -> None:
        while True:
            try:
                removed = await asyncio.to_thread(self._files.purge_expired)
                if removed:
                    log.info("removed %d expired files", removed)
            except Exception:
                log.exception("removing expired files failed; retrying")
            await asyncio.sleep(self._interval_seconds)
