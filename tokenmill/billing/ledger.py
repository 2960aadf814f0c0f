"""The ledger: append-only money movements per tenant; a balance is the sum of its entries.

Kinds: ``topup`` (positive), ``usage`` (a request's cost, negative), ``adjustment``
(either sign, with a note), ``accelerator`` and ``storage`` (dedicated hours and stored
files, negative). Every entry has a unique idempotency key, so any write can be
repeated safely: usage debits use ``usage:<request id>`` and are written by usage ingestion
in the same transaction as the usage record (``usage_debit_rows``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import func, select

from tokenmill.clock import Clock
from tokenmill.errors import Conflict, InvalidRequest, NotFound
from tokenmill.store.db import Database
from tokenmill.store.tables import LedgerEntry, Tenant


class EntryKind(StrEnum):
    TOPUP = "topup"
    USAGE = "usage"
    ADJUSTMENT = "adjustment"
    ACCELERATOR = "accelerator"
    STORAGE = "storage"
    TRAINING = "training"


def usage_idempotency_key(request_id: str) -> str:
    return f"usage:{request_id}"


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    id: int
    tenant_id: str
    kind: EntryKind
    amount_micros: int
    idempotency_key: str
    key_id: str | None
    model: str | None
    note: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: LedgerEntry) -> LedgerRecord:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            kind=EntryKind(row.kind),
            amount_micros=row.amount_micros,
            idempotency_key=row.idempotency_key,
            key_id=row.key_id,
            model=row.model,
            note=row.note,
            created_at=row.created_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "kind": self.kind.value,
            "amount_micros": self.amount_micros,
            "idempotency_key": self.idempotency_key,
            "key_id": self.key_id,
            "model": self.model,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
        }


class UsageCost(Protocol):
    """What ``usage_debit_rows`` needs from a usage event."""

    @property
    def request_id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def cost_micros(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...


def usage_debit_rows(events: Iterable[UsageCost]) -> list[dict[str, Any]]:
    """Ledger rows debiting what the events cost (events that cost nothing have none)."""
    return [
        {
            "tenant_id": e.tenant_id,
            "kind": EntryKind.USAGE.value,
            "amount_micros": -e.cost_micros,
            "idempotency_key": usage_idempotency_key(e.request_id),
            "key_id": e.key_id,
            "model": e.model,
            "note": None,
            "created_at": e.created_at,
        }
        for e in events
        if e.cost_micros > 0
    ]


class LedgerRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def top_up(
        self,
        tenant_id: str,
        amount_micros: int,
        *,
        idempotency_key: str | None = None,
        note: str | None = None,
    ) -> LedgerRecord:
        if amount_micros <= 0:
            raise InvalidRequest("A top-up is a positive amount.", param="amount_micros")
        return self._append(tenant_id, EntryKind.TOPUP, amount_micros, idempotency_key, note)

    def adjust(
        self,
        tenant_id: str,
        amount_micros: int,
        *,
        note: str,
        idempotency_key: str | None = None,
    ) -> LedgerRecord:
        if amount_micros == 0:
            raise InvalidRequest("An adjustment is a non-zero amount.", param="amount_micros")
        if not note.strip():
            raise InvalidRequest("An adjustment needs a note saying why.", param="note")
        return self._append(tenant_id, EntryKind.ADJUSTMENT, amount_micros, idempotency_key, note)

    def charge_accelerator_time(
        self, tenant_id: str, amount_micros: int, *, idempotency_key: str, note: str
    ) -> LedgerRecord:
        """A dedicated replica's hours, debited once per replica run (the key says which)."""
        if amount_micros < 0:
            raise InvalidRequest("A charge is not negative.", param="amount_micros")
        return self._append(tenant_id, EntryKind.ACCELERATOR, -amount_micros, idempotency_key, note)

    def charge_storage(
        self, tenant_id: str, amount_micros: int, *, idempotency_key: str, note: str
    ) -> LedgerRecord:
        """A day of stored files, debited once per tenant and day (the key says which)."""
        if amount_micros < 0:
            raise InvalidRequest("A charge is not negative.", param="amount_micros")
        return self._append(tenant_id, EntryKind.STORAGE, -amount_micros, idempotency_key, note)

    def charge_training(
        self, tenant_id: str, amount_micros: int, *, idempotency_key: str, note: str
    ) -> LedgerRecord:
        """A fine-tuning job's trained tokens, debited once per job (the key says which)."""
        if amount_micros < 0:
            raise InvalidRequest("A charge is not negative.", param="amount_micros")
        return self._append(tenant_id, EntryKind.TRAINING, -amount_micros, idempotency_key, note)

    def _append(
        self,
        tenant_id: str,
        kind: EntryKind,
        amount_micros: int,
        idempotency_key: str | None,
        note: str | None,
    ) -> LedgerRecord:
        """Idempotent: the same key again returns the first entry (a different one: 409)."""
        key = idempotency_key or f"{kind.value}:{secrets.token_hex(12)}"
        if len(key) > 100 or (note is not None and len(note) > 500):
            raise InvalidRequest("idempotency_key or note is too long.")
        with self._db.session() as session:
            if session.get(Tenant, tenant_id) is None:
                raise NotFound(f"No tenant with id {tenant_id!r}.", param="tenant_id")
            found = session.scalars(
                select(LedgerEntry).where(LedgerEntry.idempotency_key == key)
            ).one_or_none()
            if found is not None:
                if (found.tenant_id, found.kind, found.amount_micros) != (
                    tenant_id,
                    kind.value,
                    amount_micros,
                ):
                    raise Conflict(
                        f"Idempotency key {key!r} was used for a different entry.",
                        param="idempotency_key",
                    )
                return LedgerRecord.from_row(found)
            row = LedgerEntry(
                tenant_id=tenant_id,
                kind=kind.value,
                amount_micros=amount_micros,
                idempotency_key=key,
                note=note,
                created_at=self._clock.utcnow(),
            )
            session.add(row)
            session.flush()
            return LedgerRecord.from_row(row)

    def balance(self, tenant_id: str) -> int:
        query = select(func.coalesce(func.sum(LedgerEntry.amount_micros), 0)).where(
            LedgerEntry.tenant_id == tenant_id
        )
        with self._db.session() as session:
            return int(session.execute(query).scalar_one())

    def balances(self) -> dict[str, int]:
        query = select(LedgerEntry.tenant_id, func.sum(LedgerEntry.amount_micros)).group_by(
            LedgerEntry.tenant_id
        )
        with self._db.session() as session:
            return {tenant: int(total) for tenant, total in session.execute(query)}

    def entries(
        self,
        tenant_id: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        kinds: Iterable[EntryKind] | None = None,
        limit: int | None = None,
    ) -> list[LedgerRecord]:
        """Oldest first; ``since`` inclusive, ``until`` exclusive."""
        query = select(LedgerEntry).order_by(LedgerEntry.created_at, LedgerEntry.id)
        if tenant_id is not None:
            query = query.where(LedgerEntry.tenant_id == tenant_id)
        if since is not None:
            query = query.where(LedgerEntry.created_at >= since)
        if until is not None:
            query = query.where(LedgerEntry.created_at < until)
        if kinds is not None:
            query = query.where(LedgerEntry.kind.in_([k.value for k in kinds]))
        if limit is not None:
            query = query.limit(limit)
        with self._db.session() as session:
            return [LedgerRecord.from_row(row) for row in session.scalars(query)]

    def usage_spend_since(self, since: datetime) -> tuple[dict[str, int], dict[str, int]]:
        """Usage spent since ``since`` (positive micros), per tenant and per key."""
        query = (
            select(LedgerEntry.tenant_id, LedgerEntry.key_id, func.sum(LedgerEntry.amount_micros))
            .where(LedgerEntry.kind == EntryKind.USAGE.value, LedgerEntry.created_at >= since)
            .group_by(LedgerEntry.tenant_id, LedgerEntry.key_id)
        )
        per_tenant: dict[str, int] = {}
        per_key: dict[str, int] = {}
        with self._db.session() as session:
            for tenant_id, key_id, total in session.execute(query):
                per_tenant[tenant_id] = per_tenant.get(tenant_id, 0) - int(total)
                if key_id is not None:
                    per_key[key_id] = per_key.get(key_id, 0) - int(total)
        return per_tenant, per_key
