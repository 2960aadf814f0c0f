"""Tenants: the organisations that share the platform, each with its own keys and usage."""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tokenmill.clock import Clock, SystemClock
from tokenmill.errors import Conflict, InvalidRequest
from tokenmill.store.db import Database
from tokenmill.store.tables import Tenant

MAX_TENANT_NAME_CHARS = 200


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: str
    name: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Tenant) -> TenantInfo:
        return cls(id=row.id, name=row.name, created_at=row.created_at)


def new_tenant_id() -> str:
    return f"ten_{secrets.token_hex(12)}"


def validate_tenant_name(name: str) -> str:
    """Returns the name stripped of surrounding blanks, or raises ``InvalidRequest``."""
    stripped = name.strip()
    if not stripped:
        raise InvalidRequest("A tenant name must not be empty.", param="name")
    if len(stripped) > MAX_TENANT_NAME_CHARS:
        raise InvalidRequest(
            f"A tenant name has at most {MAX_TENANT_NAME_CHARS} characters.", param="name"
        )
    if not stripped.isprintable():
        raise InvalidRequest("A tenant name must not contain control characters.", param="name")
    return stripped


class TenantRepository:
    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    def create(self, name: str) -> TenantInfo:
        """Raises ``Conflict`` (an ``InvalidRequest``, HTTP 409) when the name is taken."""
        name = validate_tenant_name(name)
        row = Tenant(id=new_tenant_id(), name=name, created_at=self._clock.utcnow())
        with self._db.session() as session:
            # The unique constraint decides, so two concurrent creates cannot both win.
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"A tenant named {name!r} already exists.", param="name") from None
            return TenantInfo.from_row(row)

    def get(self, tenant_id: str) -> TenantInfo | None:
        with self._db.session() as session:
            row = session.get(Tenant, tenant_id)
            return TenantInfo.from_row(row) if row is not None else None

    def get_by_name(self, name: str) -> TenantInfo | None:
        with self._db.session() as session:
            row = session.scalars(select(Tenant).where(Tenant.name == name.strip())).one_or_none()
            return TenantInfo.from_row(row) if row is not None else None

    def list(self) -> builtins.list[TenantInfo]:
        with self._db.session() as session:
            rows = session.scalars(select(Tenant).order_by(Tenant.name))
            return [TenantInfo.from_row(row) for row in rows]
