"""The audit log: every admin action (who, with which key, from where, what it asked, the
object before and after, the answer's status), appended to a hash chain.

Each entry's ``hash`` is sha256 of the previous entry's hash and the entry's own fields in
canonical JSON, so an entry edited, removed or moved breaks the chain from there on, and
``verify`` says where. Appends are serialized (a PostgreSQL advisory lock across gateways, a
lock within a process) so the chain never forks. Secrets never enter the log: values of
fields such as ``key``, ``headers`` or ``authorization`` are replaced before hashing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text

from tokenmill.clock import Clock
from tokenmill.store.audit_tables import AuditEntry
from tokenmill.store.db import Database

GENESIS = "0" * 64
REDACTED = "[redacted]"
SECRET_FIELDS = frozenset(
    {"key", "secret", "secret_key", "token", "api_key", "authorization", "headers", "password"}
)
ADVISORY_LOCK = 0x746D_6175  # "tmau": one writer of the chain at a time, across gateways


def redact(value: Any) -> Any:
    """``value`` with every secret field's value replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SECRET_FIELDS and v is not None else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Action:
    """What an admin did, before it is chained."""

    actor_key_id: str
    actor_role: str
    actor_tenant_id: str | None
    tenant_id: str | None
    method: str
    path: str
    status: int
    address: str | None
    request: Any = None
    before: Any = None
    after: Any = None


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    created_at: datetime
    action: Action
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "audit.entry",
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            **asdict(self.action),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_row(cls, row: AuditEntry) -> Record:
        action = Action(
            row.actor_key_id, row.actor_role, row.actor_tenant_id, row.tenant_id, row.method,
            row.path, row.status, row.address, row.request, row.before, row.after,
        )  # fmt: skip
        return cls(row.seq, row.created_at, action, row.prev_hash, row.hash)


def entry_hash(prev_hash: str, seq: int, created_at: datetime, action: Action) -> str:
    body = {"seq": seq, "created_at": created_at.isoformat(), **asdict(action)}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    intact: bool
    first_broken_seq: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"object": "audit.verification", **asdict(self)}


class AuditLog:
    _lock = threading.Lock()  # appends within this process (SQLite has no advisory lock)

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def append(self, action: Action) -> Record:
        action = Action(**{**asdict(action), **{
            "request": redact(action.request), "before": redact(action.before),
            "after": redact(action.after),
        }})  # fmt: skip
        with self._lock, self._db.session() as session:
            if self._db.dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK})
            last = session.scalars(
                select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)
            ).first()
            seq = last.seq + 1 if last is not None else 1
            prev_hash = last.hash if last is not None else GENESIS
            now = self._clock.utcnow()
            # JSON round trip: what is hashed is exactly what the database gives back
            stored = Action(**json.loads(json.dumps(asdict(action), default=str)))
            digest = entry_hash(prev_hash, seq, now, stored)
            row = AuditEntry(
                seq=seq, created_at=now, prev_hash=prev_hash, hash=digest, **asdict(stored)
            )
            session.add(row)
            session.flush()
            return Record(seq, now, stored, prev_hash, digest)

    def list(
        self,
        tenant_id: str | None = None,
        *,
        since: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[Record]:
        """Newest first; ``tenant_id``: the entries about that tenant (a tenant admin's own
        actions are about its tenant)."""
        query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(AuditEntry.tenant_id == tenant_id)
        if since is not None:
            query = query.where(AuditEntry.created_at >= since)
        if before_seq is not None:
            query = query.where(AuditEntry.seq < before_seq)
        with self._db.session() as session:
            return [Record.from_row(row) for row in session.scalars(query)]

    def verify(self, batch: int = 1000) -> Verification:
        """Recomputes the chain from the first entry."""
        prev_hash, count, after = GENESIS, 0, 0
        while True:
            with self._db.session() as session:
                rows = list(
                    session.scalars(
                        select(AuditEntry)
                        .where(AuditEntry.seq > after)
                        .order_by(AuditEntry.seq)
                        .limit(batch)
                    )
                )
            if not rows:
                return Verification(count, True)
            for row in rows:
                record = Record.from_row(row)
                expected = entry_hash(prev_hash, row.seq, row.created_at, record.action)
                if row.seq != count + 1 or row.prev_hash != prev_hash or row.hash != expected:
                    return Verification(count, False, row.seq)
                prev_hash, count, after = row.hash, count + 1, row.seq
