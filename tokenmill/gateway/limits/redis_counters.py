"""Rate-limit counters in Redis, shared by every gateway; one Lua script per step.

Per scope, three sorted sets, a hash and a counter (members are request ids):

    {ns}:r:{scope}   requests, scored by time
    {ns}:t:{scope}   token reservations, scored by time; {ns}:tv:{scope} holds their sizes
                     and {ns}:ts:{scope} their sum (kept as entries come, change and go)
    {ns}:c:{scope}   requests in flight, scored by when their slot lapses

The acquire script drops what left the window, checks every scope (the same three checks as
``policy.check_scope``) and only if all pass counts the request in each; it returns each
scope's counts, from which ``check_scope`` rebuilds the same decision with its headers. A
slot in flight lapses after ``lease_seconds`` even if its gateway died holding it.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tokenmill.billing.redis_counters import unreachable
from tokenmill.gateway.limits.policy import (
    WINDOW_SECONDS,
    RateDecision,
    RateRequest,
    ScopeLimits,
    WindowState,
    check_scope,
    tightest,
)
from tokenmill.store.redisclient import connect

_ACQUIRE = """
local now, id, tokens = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local window, lease = tonumber(ARGV[4]), tonumber(ARGV[5])
local horizon = now - window
local counts = {}
local refused = 0
for s = 0, (#KEYS / 5) - 1 do
  local r, t, tv, c, ts = KEYS[s * 5 + 1], KEYS[s * 5 + 2], KEYS[s * 5 + 3], KEYS[s * 5 + 4],
    KEYS[s * 5 + 5]
  local rpm = tonumber(ARGV[6 + s * 3])
  local tpm = tonumber(ARGV[7 + s * 3])
  local conc = tonumber(ARGV[8 + s * 3])
  redis.call('ZREMRANGEBYSCORE', r, '-inf', horizon)
  while true do  -- in slices: unpack() takes a few thousand values at most
    local old = redis.call('ZRANGEBYSCORE', t, '-inf', horizon, 'LIMIT', 0, 1000)
    if #old == 0 then break end
    local gone = 0
    for _, v in ipairs(redis.call('HMGET', tv, unpack(old))) do
      gone = gone + (tonumber(v) or 0)
    end
    redis.call('DECRBY', ts, gone)
    redis.call('HDEL', tv, unpack(old))
    redis.call('ZREM', t, unpack(old))
  end
  redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
  local count = redis.call('ZCARD', r)
  local first = redis.call('ZRANGE', r, 0, 0, 'WITHSCORES')
  local used = tonumber(redis.call('GET', ts) or '0')
  local tfirst = redis.call('ZRANGE', t, 0, 0, 'WITHSCORES')
  local inflight = redis.call('ZCARD', c)
  table.insert(counts, count)
  table.insert(counts, first[2] or '-1')
  table.insert(counts, used)
  table.insert(counts, tfirst[2] or '-1')
  table.insert(counts, inflight)
  if refused == 0 and ((rpm >= 0 and count + 1 > rpm) or (tpm >= 0 and used + tokens > tpm)
      or (conc >= 0 and inflight + 1 > conc)) then
    refused = s + 1
  end
end
if refused == 0 then
  for s = 0, (#KEYS / 5) - 1 do
    local r, t, tv, c, ts = KEYS[s * 5 + 1], KEYS[s * 5 + 2], KEYS[s * 5 + 3], KEYS[s * 5 + 4],
      KEYS[s * 5 + 5]
    redis.call('ZADD', r, now, id)
    redis.call('ZADD', t, now, id)
    redis.call('HSET', tv, id, tokens)
    redis.call('INCRBY', ts, tokens)
    redis.call('ZADD', c, now + lease, id)
    for _, key in ipairs({r, t, tv, c, ts}) do
      redis.call('EXPIRE', key, math.ceil(window + lease))
    end
  end
end
table.insert(counts, 1, refused)
return counts
"""

# KEYS: per scope r, t, tv, c, ts. ARGV: request id, actual tokens (-1: take back entirely).
_FINISH = """
local id, actual = ARGV[1], tonumber(ARGV[2])
for s = 0, (#KEYS / 5) - 1 do
  local r, t, tv, c, ts = KEYS[s * 5 + 1], KEYS[s * 5 + 2], KEYS[s * 5 + 3], KEYS[s * 5 + 4],
    KEYS[s * 5 + 5]
  redis.call('ZREM', c, id)
  local old = redis.call('HGET', tv, id)
  if actual < 0 then
    redis.call('ZREM', r, id)
    if old then
      redis.call('ZREM', t, id)
      redis.call('HDEL', tv, id)
      redis.call('DECRBY', ts, old)
    end
  elseif old then
    redis.call('HSET', tv, id, actual)
    redis.call('INCRBY', ts, actual - tonumber(old))
  end
end
return 1
"""


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisRateCounters:
    def __init__(
        self, client: aioredis.Redis, namespace: str = "tm:rate", lease_seconds: float = 900.0
    ) -> None:
        self._redis = client
        self._ns = namespace
        self._lease_seconds = lease_seconds
        self._acquire = client.register_script(_ACQUIRE)
        self._finish = client.register_script(_FINISH)

    @classmethod
    def from_url(cls, url: str, namespace: str = "tm:rate") -> RedisRateCounters:
        return cls(connect(url), namespace)

    def _keys(self, scopes: tuple[ScopeLimits, ...]) -> list[str]:
        return [
            f"{self._ns}:{kind}:{limits.scope}"
            for limits in scopes
            for kind in ("r", "t", "tv", "c", "ts")
        ]

    async def acquire(self, request: RateRequest) -> RateDecision:
        args: list[Any] = [
            repr(request.now),
            request.request_id,
            request.tokens,
            WINDOW_SECONDS,
            self._lease_seconds,
        ]
        for limits in request.scopes:
            args += [_limit(limits.rpm), _limit(limits.tpm), _limit(limits.concurrency)]
        try:
            reply = await self._acquire(keys=self._keys(request.scopes), args=args)
        except RedisError as error:
            raise unreachable("Rate limits") from error
        refused = int(reply[0])
        decisions = []
        for index, limits in enumerate(request.scopes):
            count, first, used, tfirst, in_flight = reply[1 + index * 5 : 6 + index * 5]
            state = await self._state(
                limits,
                int(count),
                float(first),
                int(used),
                float(tfirst),
                int(in_flight),
                need_entries=refused == index + 1,
            )
            decision = check_scope(limits, state, request.tokens, request.now)
            if refused == index + 1:
                return decision
            decisions.append(decision)
        return tightest(decisions)

    async def _state(
        self,
        limits: ScopeLimits,
        count: int,
        first: float,
        used: int,
        tfirst: float,
        in_flight: int,
        *,
        need_entries: bool,
    ) -> WindowState:
        """The counts as ``check_scope`` reads them; a refused scope's token entries are read
        again (outside the script: they only shape the Retry-After advice)."""
        entries: list[tuple[float, int]] = []
        if need_entries and limits.tpm is not None:
            key = f"{self._ns}:t:{limits.scope}"
            members: list[Any] = await self._redis.zrange(key, 0, -1, withscores=True)
            sizes: list[Any] = await self._redis.hmget(
                f"{self._ns}:tv:{limits.scope}", [member for member, _ in members]
            )
            entries = [
                (float(at), int(size or 0)) for (_, at), size in zip(members, sizes, strict=True)
            ]
        return WindowState(
            count,
            first if first >= 0 else None,
            used,
            tfirst if tfirst >= 0 else None,
            in_flight,
            lambda: entries,
        )

    async def finish(self, request: RateRequest, actual_tokens: int | None) -> None:
        await self._finish(
            keys=self._keys(request.scopes),
            args=[request.request_id, -1 if actual_tokens is None else actual_tokens],
        )

    async def close(self) -> None:
        await self._redis.aclose()
