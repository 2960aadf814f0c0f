"""API keys: issued once, stored as a SHA-256 hash, resolved to the principal a request acts as."""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.protocol.tiers import TIER_NAMES, TIER_TERMS, allowed_within, validate_tier_terms
from tokenmill.store.db import Database
from tokenmill.store.tables import ApiKey, Tenant

KEY_PREFIX = "tm-"
APP_KEY_PREFIX = "tm-app-"
APP_SCOPE = "app:"
DISPLAY_PREFIX_CHARS = 11
ALL_SCOPES = "*"
MAX_KEY_NAME_CHARS = 200
MAX_SCOPE_CHARS = 64


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    TENANT_ADMIN = "tenant_admin"
    INFERENCE = "inference"


def generate_secret(app: bool = False) -> str:
    """An App's key reads ``tm-app-…``: the gateway tells it apart without a lookup."""
    return (APP_KEY_PREFIX if app else KEY_PREFIX) + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of the whole secret. Secrets carry 256 random bits, so no salt is needed."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    """What listings show so a person can tell keys apart: ``tm-`` and 8 more characters."""
    return secret[:DISPLAY_PREFIX_CHARS]


def new_key_id() -> str:
    return f"key_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as. Revoked and expired keys are represented too, so auth can say why."""

    tenant_id: str
    key_id: str
    key_name: str
    role: Role
    scopes: tuple[str, ...]
    allowed_models: tuple[str, ...] | None
    expires_at: datetime | None
    revoked: bool
    monthly_budget_micros: int | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    concurrency_limit: int | None = None
    share_weight: int = 1  # the tenant's, in fair share between tenants on a replica
    service_tier: str | None = None  # the key's default tier, else its tenant's
    service_tiers: frozenset[str] = frozenset(TIER_NAMES)  # what the key and tenant allow

    def has_scope(self, scope: str) -> bool:
        return ALL_SCOPES in self.scopes or scope in self.scopes

    def may_use_model(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    @property
    def app_id(self) -> str | None:
        """The one App an App's key may call; None for a key not bound to an App."""
        if ALL_SCOPES in self.scopes:
            return None
        for scope in self.scopes:
            if scope.startswith(APP_SCOPE):
                return scope.removeprefix(APP_SCOPE)
        return None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as listings show it: never the secret, never its hash."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    role: Role
    scopes: tuple[str, ...]
    allowed_models: tuple[str, ...] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    monthly_budget_micros: int | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    concurrency_limit: int | None = None
    service_tier: str | None = None
    service_tiers: tuple[str, ...] | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_json(self) -> dict[str, object]:
        return {
            "object": "api_key",
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "prefix": self.prefix,
            "role": self.role.value,
            "scopes": list(self.scopes),
            "allowed_models": list(self.allowed_models) if self.allowed_models else None,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            **{name: getattr(self, name) for name in KEY_TERMS},
            "service_tier": self.service_tier,
            "service_tiers": list(self.service_tiers) if self.service_tiers else None,
        }

    @classmethod
    def from_row(cls, row: ApiKey) -> KeyInfo:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            prefix=row.prefix,
            role=Role(row.role),
            scopes=tuple(row.scopes),
            allowed_models=_optional_tuple(row.allowed_models),
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            service_tier=row.service_tier,
            service_tiers=_optional_tuple(row.service_tiers),
            **key_terms(row),
        )


def principal_from_row(row: ApiKey, tenant: Tenant | None = None) -> Principal:
    """Who a key acts as; ``tenant`` gives its share weight and the tiers it allows."""
    return Principal(
        share_weight=(tenant.share_weight if tenant is not None else None) or 1,
        service_tier=row.service_tier or (tenant.service_tier if tenant is not None else None),
        service_tiers=allowed_within(
            tenant.service_tiers if tenant is not None else None, row.service_tiers
        ),
        tenant_id=row.tenant_id,
        key_id=row.id,
        key_name=row.name,
        role=Role(row.role),
        scopes=tuple(row.scopes),
        allowed_models=_optional_tuple(row.allowed_models),
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None,
        **key_terms(row),
    )


KEY_TERMS = ("monthly_budget_micros", "rpm_limit", "tpm_limit", "concurrency_limit")


def key_terms(row: ApiKey) -> dict[str, int | None]:
    """A key's own spending cap and rate limits (``None``: none of its own)."""
    return {name: getattr(row, name) for name in KEY_TERMS}


def validate_terms(terms: dict[str, int | None]) -> dict[str, int | None]:
    for name, value in terms.items():
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise InvalidRequest(f"{name} is a non-negative integer or null.", param=name)
    return terms


def _optional_tuple(values: Iterable[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None


def _known_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """Validated caps, limits and tier settings."""
    unknown = set(terms) - {*KEY_TERMS, *TIER_TERMS}
    if unknown:
        raise InvalidRequest(f"Unknown key settings: {', '.join(sorted(unknown))}.")
    limits = validate_terms({k: v for k, v in terms.items() if k in KEY_TERMS})
    return {**limits, **validate_tier_terms(terms)}


def _validate_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidRequest(
            f"Unknown role {role!r}; expected one of {allowed}.", param="role"
        ) from None


def _validate_name(name: str) -> str:
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_KEY_NAME_CHARS or not stripped.isprintable():
        raise InvalidRequest(
            f"A key name has 1 to {MAX_KEY_NAME_CHARS} printable characters.", param="name"
        )
    return stripped


def _validate_scopes(scopes: Iterable[str]) -> list[str]:
    result = list(dict.fromkeys(scopes))
    for scope in result:
        if not isinstance(scope, str) or not scope or len(scope) > MAX_SCOPE_CHARS:
            raise InvalidRequest(f"Invalid scope {scope!r}.", param="scopes")
    return result


def _validate_models(models: Iterable[str] | None) -> list[str] | None:
    if models is None:
        return None
    result = list(dict.fromkeys(models))
    for model in result:
        if not isinstance(model, str) or not model:
            raise InvalidRequest(f"Invalid model id {model!r}.", param="allowed_models")
    return result


class KeyRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def create(
        self,
        tenant_id: str,
        name: str,
        role: Role | str = Role.INFERENCE,
        scopes: Iterable[str] = (ALL_SCOPES,),
        allowed_models: Iterable[str] | None = None,
        expires_at: datetime | None = None,
        terms: dict[str, Any] | None = None,
    ) -> tuple[KeyInfo, str]:
        """Issues a key. The secret is returned here and never again: only its hash is kept.

        ``allowed_models=None`` allows every model the tenant can see; ``scopes`` default to
        everything the role permits (``"*"``).
        """
        now = self._clock.utcnow()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidRequest("expires_at must carry a time zone.", param="expires_at")
            if expires_at <= now:
                raise InvalidRequest("expires_at must be in the future.", param="expires_at")
        scopes = list(scopes)
        secret = generate_secret(app=any(scope.startswith(APP_SCOPE) for scope in scopes))
        row = ApiKey(
            id=new_key_id(),
            tenant_id=tenant_id,
            name=_validate_name(name),
            prefix=display_prefix(secret),
            secret_hash=hash_secret(secret),
            role=_validate_role(role).value,
            scopes=_validate_scopes(scopes),
            allowed_models=_validate_models(allowed_models),
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            **_known_terms(terms or {}),
        )
        with self._db.session() as session:
            if session.get(Tenant, tenant_id) is None:
                raise NotFound(f"No tenant with id {tenant_id!r}.", param="tenant_id")
            session.add(row)
            session.flush()
            return KeyInfo.from_row(row), secret

    def list(self, tenant_id: str | None = None) -> builtins.list[KeyInfo]:
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        with self._db.session() as session:
            return [KeyInfo.from_row(row) for row in session.scalars(query)]

    def get(self, key_id: str) -> KeyInfo | None:
        with self._db.session() as session:
            row = session.get(ApiKey, key_id)
            return KeyInfo.from_row(row) if row is not None else None

    def revoke(self, key_id: str) -> KeyInfo:
        """Marks the key revoked; revoking it again keeps the first revocation time."""
        with self._db.session() as session:
            row = session.get(ApiKey, key_id, with_for_update=True)
            if row is None:
                raise NotFound(f"No API key with id {key_id!r}.", param="key_id")
            if row.revoked_at is None:
                row.revoked_at = self._clock.utcnow()
                session.flush()
            return KeyInfo.from_row(row)

    def update_terms(self, key_id: str, terms: dict[str, Any]) -> KeyInfo:
        """Sets the named caps, limits and tiers (``None`` clears one); the others are kept."""
        values = _known_terms(terms)
        with self._db.session() as session:
            row = session.get(ApiKey, key_id, with_for_update=True)
            if row is None:
                raise NotFound(f"No API key with id {key_id!r}.", param="key_id")
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = self._clock.utcnow()
            session.flush()
            return KeyInfo.from_row(row)

    def changed_since(self, since: datetime) -> builtins.list[str]:
        """Ids of the keys revoked, or whose terms changed, at or after ``since``."""
        query = select(ApiKey.id).where(or_(ApiKey.revoked_at >= since, ApiKey.updated_at >= since))
        with self._db.session() as session:
            return list(session.scalars(query.order_by(ApiKey.id)))

    def principal(self, key_id: str) -> Principal | None:
        """Who a key acts as, by its id: for work done later on its behalf (a batch, an
        App's public page)."""
        return self._principal(ApiKey.id == key_id)

    def principal_for_secret_hash(self, secret_hash: str) -> Principal | None:
        """One query on the unique index. Revoked and expired keys come back too."""
        return self._principal(ApiKey.secret_hash == secret_hash)

    def _principal(self, where: ColumnElement[bool]) -> Principal | None:
        query = select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id)
        with self._db.session() as session:
            found = session.execute(query.where(where)).one_or_none()
            return principal_from_row(found[0], found[1]) if found is not None else None
