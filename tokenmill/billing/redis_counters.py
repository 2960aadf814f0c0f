"""Budget counters in Redis, shared by every gateway process; each step is one Lua script.

The scripts mirror ``tokenmill.billing.budget.decide`` (the same three checks, in the same
order) so a check and its reservation cannot interleave with another gateway's. Keys:

    {ns}:avail:{tenant}          credit available (micros)
    {ns}:tmonth:{tenant}:{month} tenant's spend this month, reservations included
    {ns}:kmonth:{key}:{month}    key's spend this month, reservations included
    {ns}:credited                ledger entry ids already added to ``avail``
    {ns}:seeded                  set once the ledger's numbers are loaded
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from tokenmill.billing.budget import BudgetRefusal, BudgetRequest, BudgetState
from tokenmill.billing.counters import BudgetSeed
from tokenmill.store.redisclient import connect

MONTH_TTL_SECONDS = 62 * 24 * 3600

# KEYS: avail, tmonth, kmonth. ARGV: amount, tenant cap (-1: none), key cap (-1: none), ttl.
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
return 'ok'
"""

# KEYS: avail, tmonth, kmonth. ARGV: spend (signed), ttl.
_MOVE = """
local spend = tonumber(ARGV[1])
redis.call('DECRBY', KEYS[1], spend)
redis.call('INCRBY', KEYS[2], spend)
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('INCRBY', KEYS[3], spend)
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
"""

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
    def __init__(self, client: aioredis.Redis, namespace: str = "tm:budget") -> None:
        self._redis = client
        self._ns = namespace
        self._reserve = client.register_script(_RESERVE)
        self._move = client.register_script(_MOVE)
        self._credit = client.register_script(_CREDIT)
        self._seed = client.register_script(_SEED)

    @classmethod
    def from_url(cls, url: str, namespace: str = "tm:budget") -> RedisBudgetCounters:
        return cls(connect(url), namespace)

    def _keys(self, tenant_id: str, key_id: str, month: str) -> list[str]:
        return [
            f"{self._ns}:avail:{tenant_id}",
            f"{self._ns}:tmonth:{tenant_id}:{month}",
            f"{self._ns}:kmonth:{key_id}:{month}",
        ]

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

    async def reserve(self, request: BudgetRequest) -> BudgetRefusal | None:
        outcome = await self._reserve(
            keys=self._keys(request.tenant_id, request.key_id, request.month),
            args=[
                request.amount_micros,
                -1 if request.tenant_cap_micros is None else request.tenant_cap_micros,
                -1 if request.key_cap_micros is None else request.key_cap_micros,
                MONTH_TTL_SECONDS,
            ],
        )
        reason = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        return None if reason == "ok" else BudgetRefusal(reason)

    async def settle(self, request: BudgetRequest, actual_micros: int) -> None:
        spend = actual_micros - request.amount_micros
        if spend:
            await self._move(
                keys=self._keys(request.tenant_id, request.key_id, request.month),
                args=[spend, MONTH_TTL_SECONDS],
            )

    async def credit(self, tenant_id: str, entry_id: int, amount_micros: int) -> bool:
        keys = [f"{self._ns}:credited", f"{self._ns}:avail:{tenant_id}"]
        return bool(await self._credit(keys=keys, args=[entry_id, amount_micros]))

    async def state(self, tenant_id: str, key_id: str, month: str) -> BudgetState:
        values = await self._redis.mget(self._keys(tenant_id, key_id, month))
        available, tenant_month, key_month = (int(v) if v is not None else 0 for v in values)
        return BudgetState(available, tenant_month, key_month)

    async def close(self) -> None:
        await self._redis.aclose()
