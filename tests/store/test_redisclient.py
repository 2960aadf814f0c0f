"""The shared counters' Redis client against a real Redis."""

from __future__ import annotations

import pytest
import redis

from tokenmill.store.redisclient import connect


@pytest.mark.redis
async def test_a_connection_redis_closed_is_replaced_without_failing_the_command(
    redis_server: str,
) -> None:
    """As after a Redis restart: the pooled connection is dead when it is next used."""
    client = connect(redis_server, max_connections=1)
    own = await client.client_id()
    plain = redis.Redis.from_url(redis_server)
    assert plain.client_kill_filter(_id=own) == 1
    assert await client.ping()
    assert await client.client_id() != own  # a new connection answered
    plain.close()
    await client.aclose()
