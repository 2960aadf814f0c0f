"""Tenants: the organisations that share the platform, each with its own keys and usage."""

from __future__ import annotations

import builtins
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tokenmill.clock import Clock, SystemClock
from tokenmill.control.keys import validate_terms
from tokenmill.errors import Conflict, InvalidRequest, NotFound
from tokenmill.protocol.tiers import TIER_TERMS, validate_tier_terms
from tokenmill.store.db import Database
from tokenmill.store.tables import Tenant

MAX_TENANT_NAME_CHARS = 200


TENANT_TERMS = ("monthly_budget_micros", "rpm_limit", "tpm_limit", "concurrency_limit")
LIMIT_NAMES = ("rpm", "tpm", "concurrency")
MAX_SHARE_WEIGHT = 1000


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: str
    name: str
    created_at: datetime
    monthly_budget_micros: int | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    concurrency_limit: int | None = None
    model_limits: dict[str, dict[str, int | None]] | None = None
    share_weight: int | None = None  # against other tenants on a shared replica (None: 1)
    service_tier: str | None = None  # its keys' default tier (None: default)
    service_tiers: list[str] | None = None  # tiers its keys may use (None: all)

    @classmethod
    def from_row(cls, row: Tenant) -> TenantInfo:
        return cls(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            monthly_budget_micros=row.monthly_budget_micros,
            rpm_limit=row.rpm_limit,
            tpm_limit=row.tpm_limit,
            concurrency_limit=row.concurrency_limit,
            model_limits=row.model_limits,
            share_weight=row.share_weight,
            service_tier=row.service_tier,
            service_tiers=row.service_tiers,
        )

    def as_json(self) -> dict[str, Any]:
        return {"object": "tenant", **asdict(self), "created_at": self.created_at.isoformat()}


def validate_model_limits(value: Any) -> dict[str, dict[str, int | None]] | None:
    """``{model: {"rpm": n, "tpm": n, "concurrency": n}}`` with non-negative integers."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("model_limits maps model ids to limits.", param="model_limits")
    result: dict[str, dict[str, int | None]] = {}
    for model, limits in value.items():
        if not isinstance(limits, dict) or set(limits) - set(LIMIT_NAMES):
            raise InvalidRequest(
                f"Limits of {model!r} take only {', '.join(LIMIT_NAMES)}.", param="model_limits"
            )
        result[str(model)] = validate_terms(dict(limits))
    return result


def validate_share_weight(value: Any) -> int | None:
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SHARE_WEIGHT
    ):
        raise InvalidRequest(
            f"share_weight is an integer from 1 to {MAX_SHARE_WEIGHT}, or null.",
            param="share_weight",
        )
    return value


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

    def update_terms(self, tenant_id: str, terms: dict[str, Any]) -> TenantInfo:
        """Sets the named caps, limits, share and tiers (``None`` clears one); the others are
        kept."""
        unknown = set(terms) - {*TENANT_TERMS, *TIER_TERMS, "model_limits", "share_weight"}
        if unknown:
            raise InvalidRequest(f"Unknown tenant settings: {', '.join(sorted(unknown))}.")
        plain = validate_terms({k: v for k, v in terms.items() if k in TENANT_TERMS})
        weight = validate_share_weight(terms.get("share_weight"))
        tiers = validate_tier_terms(terms)
        with self._db.session() as session:
            row = session.get(Tenant, tenant_id, with_for_update=True)
            if row is None:
                raise NotFound(f"No tenant with id {tenant_id!r}.", param="tenant_id")
            for name, value in plain.items():
                setattr(row, name, value)
            if "model_limits" in terms:
                row.model_limits = validate_model_limits(terms["model_limits"])
            if "share_weight" in terms:
                row.share_weight = weight
            for name, value in tiers.items():
                setattr(row, name, value)
            session.flush()
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
