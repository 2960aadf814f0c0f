"""Replicas the gateway could not reach stay out of their pools until they answer again.

The fleet lists a replica as ready until it sees it die, and when the fleet's leader itself
died, nobody says otherwise until a new one takes over: a gateway that put such a replica back
at every listing would send it a request each time, to fail. ``SuspectProber`` holds them out
(``Router.hold_suspects``) and gives one back once it accepts a TCP connection again.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from tokenmill.gateway.routing import Router

PROBE_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 1.0


async def reachable(url: str, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port), timeout_seconds
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class SuspectProber:
    def __init__(self, router: Router, interval_seconds: float = PROBE_SECONDS) -> None:
        self.router = router
        self.interval_seconds = interval_seconds
        router.hold_suspects = True

    async def run(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self.interval_seconds)

    async def probe_once(self) -> None:
        for pool in list(self.router.pools.values()):
            for replica_id, url in list(pool.suspects.items()):
                if await reachable(url):
                    pool.suspects.pop(replica_id, None)
