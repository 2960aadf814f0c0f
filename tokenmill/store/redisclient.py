"""The Redis client the gateway's shared counters use (when ``TOKENMILL_REDIS_URL`` is set)."""

from __future__ import annotations

import redis.asyncio as aioredis

MAX_CONNECTIONS = 64


def connect(url: str, max_connections: int = MAX_CONNECTIONS) -> aioredis.Redis:
    """A client whose pool makes callers wait for a free connection rather than fail."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=30
    )
    return aioredis.Redis(connection_pool=pool)
