"""Budget counters: credit available per tenant, monthly spend per tenant and per key.

One interface, two implementations: ``LocalBudgetCounters`` (this process; the default) and
``RedisBudgetCounters`` (shared by every gateway; ``tokenmill.billing.redis_counters``).
A reservation and its check are one atomic step; settling moves a reservation to the real
cost, and releasing is settling at zero, so both are the same operation.

Numbers, all in micros: ``available`` is credit minus settled spend minus reservations;
a month's spend counts settled costs plus reservations. Top-ups reach the counters through
``credit``, which is idempotent by ledger entry id.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tokenmill.billing.budget import BudgetRefusal, BudgetRequest, BudgetState, decide


@dataclass(frozen=True, slots=True)
class BudgetSeed:
    """What the ledger says at start: balances, this month's usage, credits already counted."""

    month: str
    balances_micros: dict[str, int] = field(default_factory=dict)
    tenant_spend_micros: dict[str, int] = field(default_factory=dict)
    key_spend_micros: dict[str, int] = field(default_factory=dict)
    credit_entry_ids: tuple[int, ...] = ()


class BudgetCounters(Protocol):
    async def seed(self, seed: BudgetSeed) -> bool:
        """Loads the ledger's numbers unless the counters already hold some (shared ones)."""
        ...

    async def seeded(self) -> bool:
        """Whether the counters hold the ledger's numbers; False again once shared counters
        lost them (a Redis that restarted without its data): then they are seeded again."""
        ...

    async def reserve(self, request: BudgetRequest) -> BudgetRefusal | None: ...

    async def settle(self, request: BudgetRequest, actual_micros: int) -> None:
        """Turns the reservation of ``request`` into a charge of ``actual_micros``."""
        ...

    async def credit(self, tenant_id: str, entry_id: int, amount_micros: int) -> bool:
        """Adds a ledger entry's amount once; ``False`` if that entry was already counted."""
        ...

    async def reclaim(self, costs: Sequence[tuple[str, int]]) -> int:
        """After a restart in the same place (journal slot): what the process before held
        is settled to the costs its journal replayed (request id, cost), and the rest given
        back; how many reservations that was."""
        ...

    async def expire(self) -> int:
        """Gives back reservations held past their lease (their gateway died); how many."""
        ...

    async def state(self, tenant_id: str, key_id: str, month: str) -> BudgetState: ...

    async def close(self) -> None: ...


class LocalBudgetCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._available: dict[str, int] = {}
        self._tenant_month: dict[tuple[str, str], int] = {}
        self._key_month: dict[tuple[str, str], int] = {}
        self._credited: set[int] = set()
        self._seeded = False

    async def seed(self, seed: BudgetSeed) -> bool:
        with self._lock:
            if self._seeded:
                return False
            self._seeded = True
            self._available.update(seed.balances_micros)
            for tenant, spent in seed.tenant_spend_micros.items():
                self._tenant_month[tenant, seed.month] = spent
            for key, spent in seed.key_spend_micros.items():
                self._key_month[key, seed.month] = spent
            self._credited.update(seed.credit_entry_ids)
            return True

    async def seeded(self) -> bool:
        return self._seeded

    async def reserve(self, request: BudgetRequest) -> BudgetRefusal | None:
        with self._lock:
            refusal = decide(request, self._state(request.tenant_id, request.key_id, request.month))
            if refusal is None:
                self._move(request, request.amount_micros)
            return refusal

    async def settle(self, request: BudgetRequest, actual_micros: int) -> None:
        with self._lock:
            self._move(request, actual_micros - request.amount_micros)

    async def reclaim(self, costs: Sequence[tuple[str, int]]) -> int:
        return 0  # in-process counters die with the process that held their reservations

    async def expire(self) -> int:
        return 0

    async def credit(self, tenant_id: str, entry_id: int, amount_micros: int) -> bool:
        with self._lock:
            if entry_id in self._credited:
                return False
            self._credited.add(entry_id)
            self._available[tenant_id] = self._available.get(tenant_id, 0) + amount_micros
            return True

    async def state(self, tenant_id: str, key_id: str, month: str) -> BudgetState:
        with self._lock:
            return self._state(tenant_id, key_id, month)

    async def close(self) -> None:
        pass

    def _state(self, tenant_id: str, key_id: str, month: str) -> BudgetState:
        return BudgetState(
            self._available.get(tenant_id, 0),
            self._tenant_month.get((tenant_id, month), 0),
            self._key_month.get((key_id, month), 0),
        )

    def _move(self, request: BudgetRequest, spend_micros: int) -> None:
        """Spends ``spend_micros`` more (negative: gives back) for the request's tenant and key."""
        tenant, key, month = request.tenant_id, request.key_id, request.month
        self._available[tenant] = self._available.get(tenant, 0) - spend_micros
        self._tenant_month[tenant, month] = (
            self._tenant_month.get((tenant, month), 0) + spend_micros
        )
        self._key_month[key, month] = self._key_month.get((key, month), 0) + spend_micros
