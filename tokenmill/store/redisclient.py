"""The Redis client the gateway's shared counters use (when ``TOKENMILL_REDIS_URL`` is set)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

MAX_CONNECTIONS = 64


def connect(url: str, max_connections: int = MAX_CONNECTIONS) -> aioredis.Redis:
    """A client whose pool makes callers wait for a free connection rather than fail.

    A command that finds its pooled connection closed (Redis restarted since it was last
    used) is sent once more on a new one, so a restart costs no request. A command whose
    reply was lost after Redis ran it is sent twice too: a settle or a credit still counts
    once; a reservation takes its amount twice, which leaves the tenant's available credit
    short by one reservation (on the safe side) until the counters are seeded again."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    return aioredis.Redis(connection_pool=pool)
