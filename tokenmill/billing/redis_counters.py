"""Budget counters in Redis, shared by every gateway process; each step is one Lua script.

The scripts mirror ``tokenmill.billing.budget.decide`` (the same three checks, in the same
order) so a check and its reservation cannot interleave with another gateway's. Keys:

    {ns}:avail:{tenant}          credit available (micros)
    {ns}:tmonth:{tenant}:{month} tenant's spend this month, reservations included
    {ns}:kmonth:{key}:{month}    key's spend this month, reservations included
    {ns}:credited                ledger entry ids already added to ``avail``
    {ns}:seeded                  set once the ledger's numbers are loaded
    {ns}:held:{holder}           reservations a gateway holds: request id -> "tenant|key|month|
                                 amount|deadline"
    {ns}:holders                 holders with reservations
    {ns}:done:{request}          "settled", or "released|tenant|key|month" (for two days)

A reservation is held in its gateway's hash until settled. A gateway that dies mid-request
cannot settle: when it starts again in the same journal slot (its holder name), ``reclaim``
settles what it held to the costs its journal replayed and gives back the rest; a holder that
never comes back loses its reservations to ``expire`` once their lease (an hour) is over. A
settle that comes after its reservation was given back charges the whole cost, and a settle
is done once per request, so neither path counts twice.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tokenmill.billing.budget import BudgetRefusal, BudgetRequest, BudgetState
from tokenmill.billing.counters import BudgetSeed
from tokenmill.errors import ServiceUnavailable
from tokenmill.store.redisclient import connect

MONTH_TTL_SECONDS = 62 * 24 * 3600
RESERVATION_LEASE_SECONDS = 3600  # a holder that never settles gives it back after this
DONE_TTL_SECONDS = 2 * 24 * 3600  # how long a settled or given-back request is remembered
RETRY_AFTER_SECONDS = 2  # told to a client while Redis is unreachable


def unreachable(what: str) -> ServiceUnavailable:
    """A 503 for a request whose admission needs the shared counters while Redis is down."""
    return ServiceUnavailable(
        f"{what} cannot be checked right now (their Redis is unreachable); try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# KEYS: avail, tmonth, kmonth, held, holders. ARGV: amount, tenant cap (-1: none), key cap
# (-1: none), ttl, request id ('' holds nothing), held entry, holder.
_RESERVE = """
local amount = tonumber(ARGV[1])
if amount <= 0 then return 'ok' end
local avail = tonumber(redis.call('GET', KEYS[1]) or '0')
if avail < amount then return 'credit' end
local tcap = tonumber(ARGV[2])
if tcap >= 0 and tonumber(redis.call('GET', KEYS[2]) or '0') + amount > tcap then
  return 'tenant_cap'
end
local kcap = tonumber(ARGV[3])
if kcap >= 0 and tonumber(redis.call('GET', KEYS[3]) or '0') + amount > kcap then
  return 'key_cap'
end
redis.call('DECRBY', KEYS[1], amount)
redis.call('INCRBY', KEYS[2], amount)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('INCRBY', KEYS[3], amount)
redis.call('EXPIRE', KEYS[3], ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
  redis.call('SADD', KEYS[5], ARGV[7])
end
return 'ok'
"""

# Shared by the scripts below: spend (signed) for a tenant and key in a month; a held
# reservation given back; a held reservation settled to its cost.
_FUNCTIONS = """
local function move(ns, tenant, key, month, spend, ttl)
  if spend == 0 then return end
  redis.call('DECRBY', ns .. ':avail:' .. tenant, spend)
  local tmonth = ns .. ':tmonth:' .. tenant .. ':' .. month
  local kmonth = ns .. ':kmonth:' .. key .. ':' .. month
  redis.call('INCRBY', tmonth, spend)
  redis.call('EXPIRE', tmonth, ttl)
  redis.call('INCRBY', kmonth, spend)
  redis.call('EXPIRE', kmonth, ttl)
end
local function parse(entry)
  local tenant, key, month, amount, deadline =
    string.match(entry, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  return tenant, key, month, tonumber(amount), tonumber(deadline)
end
local function release(ns, held, id, entry, ttl, done_ttl)
  local tenant, key, month, amount = parse(entry)
  move(ns, tenant, key, month, -amount, ttl)
  redis.call('HDEL', held, id)
  redis.call('SET', ns .. ':done:' .. id, 'released|' .. tenant .. '|' .. key .. '|' .. month,
             'EX', done_ttl)
end
local function settle_held(ns, held, id, entry, actual, ttl, done_ttl)
  local tenant, key, month, amount = parse(entry)
  move(ns, tenant, key, month, actual - amount, ttl)
  redis.call('HDEL', held, id)
  redis.call('SET', ns .. ':done:' .. id, 'settled', 'EX', done_ttl)
end
"""

# KEYS: held. ARGV: ns, ttl, done ttl, request id, actual, tenant, key, month, reserved.
_SETTLE = (
    _FUNCTIONS
    + """
local ns, id, actual = ARGV[1], ARGV[4], tonumber(ARGV[5])
if id == '' then
  move(ns, ARGV[6], ARGV[7], ARGV[8], actual - tonumber(ARGV[9]), ARGV[2])
  return 1
end
local state = redis.call('GET', ns .. ':done:' .. id)
if state == 'settled' then return 0 end
local entry = redis.call('HGET', KEYS[1], id)
if entry then
  settle_held(ns, KEYS[1], id, entry, actual, ARGV[2], ARGV[3])
  return 1
end
if not state then actual = actual - tonumber(ARGV[9]) end  -- held by no one: its own amount
move(ns, ARGV[6], ARGV[7], ARGV[8], actual, ARGV[2])
redis.call('SET', ns .. ':done:' .. id, 'settled', 'EX', ARGV[3])
return 1
"""
)

# KEYS: held, holders. ARGV: ns, ttl, done ttl, holder, then (request id, cost) pairs.
_RECLAIM = (
    _FUNCTIONS
    + """
local ns, reclaimed = ARGV[1], 0
for i = 5, #ARGV, 2 do
  local id, cost = ARGV[i], tonumber(ARGV[i + 1])
  local entry = redis.call('HGET', KEYS[1], id)
  local state = redis.call('GET', ns .. ':done:' .. id)
  if entry then
    settle_held(ns, KEYS[1], id, entry, cost, ARGV[2], ARGV[3])
    reclaimed = reclaimed + 1
  elseif state and string.sub(state, 1, 9) == 'released|' then
    local _, tenant, key, month = string.match(state, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
    move(ns, tenant, key, month, cost, ARGV[2])
    redis.call('SET', ns .. ':done:' .. id, 'settled', 'EX', ARGV[3])
  end
end
local rest = redis.call('HGETALL', KEYS[1])
for j = 1, #rest, 2 do
  release(ns, KEYS[1], rest[j], rest[j + 1], ARGV[2], ARGV[3])
  reclaimed = reclaimed + 1
end
redis.call('SREM', KEYS[2], ARGV[4])
return reclaimed
"""
)

# KEYS: held, holders. ARGV: ns, ttl, done ttl, holder, now.
_EXPIRE = (
    _FUNCTIONS
    + """
local ns, now, expired = ARGV[1], tonumber(ARGV[5]), 0
local held = redis.call('HGETALL', KEYS[1])
for j = 1, #held, 2 do
  local _, _, _, _, deadline = parse(held[j + 1])
  if deadline < now then
    release(ns, KEYS[1], held[j], held[j + 1], ARGV[2], ARGV[3])
    expired = expired + 1
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[4]) end
return expired
"""
)

# KEYS: credited set, avail. ARGV: entry id, amount.
_CREDIT = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('INCRBY', KEYS[2], ARGV[2])
return 1
"""

# KEYS: seeded flag, credited set. ARGV: ns, month, then triples (kind, id, value).
_SEED = """
if redis.call('SET', KEYS[1], '1', 'NX') == false then return 0 end
local ns, month = ARGV[1], ARGV[2]
local i = 3
while i <= #ARGV do
  local kind, id, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if kind == 'a' then redis.call('SET', ns .. ':avail:' .. id, value)
  elseif kind == 't' then redis.call('SET', ns .. ':tmonth:' .. id .. ':' .. month, value)
  elseif kind == 'k' then redis.call('SET', ns .. ':kmonth:' .. id .. ':' .. month, value)
  else redis.call('SADD', KEYS[2], id) end
  i = i + 3
end
return 1
"""


class RedisBudgetCounters:
    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str = "tm:budget",
        holder: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``holder``: this gateway's name for the reservations it holds; the same name
        after a restart (its journal slot) lets it reclaim them. Unnamed: unique to this
        process, so only the lease gives its reservations back if it dies."""
        self._redis = client
        self._ns = namespace
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._now = now
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._reclaim = client.register_script(_RECLAIM)
        self._expire = client.register_script(_EXPIRE)
        self._credit = client.register_script(_CREDIT)
        self._seed = client.register_script(_SEED)

    @classmethod
    def from_url(
        cls, url: str, namespace: str = "tm:budget", holder: str | None = None
    ) -> RedisBudgetCounters:
        return cls(connect(url), namespace, holder)

    def _keys(self, tenant_id: str, key_id: str, month: str) -> list[str]:
        return [
            f"{self._ns}:avail:{tenant_id}",
            f"{self._ns}:tmonth:{tenant_id}:{month}",
            f"{self._ns}:kmonth:{key_id}:{month}",
        ]

    def _held(self, holder: str) -> str:
        return f"{self._ns}:held:{holder}"

    async def seed(self, seed: BudgetSeed) -> bool:
        args: list[Any] = [self._ns, seed.month]
        for kind, values in (
            ("a", seed.balances_micros),
            ("t", seed.tenant_spend_micros),
            ("k", seed.key_spend_micros),
        ):
            for subject, value in values.items():
                args += [kind, subject, value]
        for entry_id in seed.credit_entry_ids:
            args += ["c", entry_id, 0]
        keys = [f"{self._ns}:seeded", f"{self._ns}:credited"]
        return bool(await self._seed(keys=keys, args=args))

    async def seeded(self) -> bool:
        return bool(await self._redis.exists(f"{self._ns}:seeded"))

    async def reserve(self, request: BudgetRequest) -> BudgetRefusal | None:
        deadline = self._now() + RESERVATION_LEASE_SECONDS
        held = request.request_id if request.amount_micros > 0 else ""
        entry = (
            f"{request.tenant_id}|{request.key_id}|{request.month}|{request.amount_micros}|"
            f"{deadline:.0f}"
        )
        try:
            outcome = await self._reserve(
                keys=[
                    *self._keys(request.tenant_id, request.key_id, request.month),
                    self._held(self.holder),
                    f"{self._ns}:holders",
                ],
                args=[
                    request.amount_micros,
                    -1 if request.tenant_cap_micros is None else request.tenant_cap_micros,
                    -1 if request.key_cap_micros is None else request.key_cap_micros,
                    MONTH_TTL_SECONDS,
                    held,
                    entry,
                    self.holder,
                ],
            )
        except RedisError as error:
            raise unreachable("Budgets") from error
        reason = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        return None if reason == "ok" else BudgetRefusal(reason)

    async def settle(self, request: BudgetRequest, actual_micros: int) -> None:
        held = request.request_id if request.amount_micros > 0 else ""
        if not held and actual_micros == request.amount_micros:
            return
        await self._settle(
            keys=[self._held(self.holder)],
            args=[
                self._ns, MONTH_TTL_SECONDS, DONE_TTL_SECONDS, held, actual_micros,
                request.tenant_id, request.key_id, request.month, request.amount_micros,
            ],
        )  # fmt: skip

    async def reclaim(self, costs: Sequence[tuple[str, int]]) -> int:
        args: list[Any] = [self._ns, MONTH_TTL_SECONDS, DONE_TTL_SECONDS, self.holder]
        for request_id, cost in costs:
            args += [request_id, cost]
        keys = [self._held(self.holder), f"{self._ns}:holders"]
        return int(await self._reclaim(keys=keys, args=args))

    async def expire(self) -> int:
        expired = 0
        for raw in await self._redis.smembers(f"{self._ns}:holders"):
            holder = raw.decode() if isinstance(raw, bytes) else str(raw)
            expired += int(
                await self._expire(
                    keys=[self._held(holder), f"{self._ns}:holders"],
                    args=[self._ns, MONTH_TTL_SECONDS, DONE_TTL_SECONDS, holder, self._now()],
                )
            )
        return expired

    async def credit(self, tenant_id: str, entry_id: int, amount_micros: int) -> bool:
        keys = [f"{self._ns}:credited", f"{self._ns}:avail:{tenant_id}"]
        return bool(await self._credit(keys=keys, args=[entry_id, amount_micros]))

    async def state(self, tenant_id: str, key_id: str, month: str) -> BudgetState:
        values = await self._redis.mget(self._keys(tenant_id, key_id, month))
        available, tenant_month, key_month = (int(v) if v is not None else 0 for v in values)
        return BudgetState(available, tenant_month, key_month)

    async def close(self) -> None:
        await self._redis.aclose()
