"""First start: an empty platform gets an ``admin`` tenant and one platform-admin key."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tokenmill.clock import Clock
from tokenmill.control.keys import (
    ALL_SCOPES,
    Role,
    display_prefix,
    generate_secret,
    hash_secret,
    new_key_id,
)
from tokenmill.control.tenants import new_tenant_id
from tokenmill.store.db import Database
from tokenmill.store.tables import ApiKey, Tenant

ADMIN_TENANT_NAME = "admin"
BOOTSTRAP_KEY_NAME = "bootstrap-admin"


def ensure_admin(db: Database, clock: Clock) -> str | None:
    """Returns the new key's secret (to be shown once) if this call created it, else ``None``.

    Check and writes happen in one transaction under a database lock, so processes starting
    together create one key between them.
    """
    now = clock.utcnow()
    secret = generate_secret()
    try:
        with db.session() as session:
            db.lock(session, "tokenmill.bootstrap")
            if session.scalars(select(ApiKey.id).limit(1)).first() is not None:
                return None
            tenant = session.scalars(
                select(Tenant).where(Tenant.name == ADMIN_TENANT_NAME)
            ).one_or_none()
            if tenant is None:
                tenant = Tenant(id=new_tenant_id(), name=ADMIN_TENANT_NAME, created_at=now)
                session.add(tenant)
                session.flush()
            session.add(
                ApiKey(
                    id=new_key_id(),
                    tenant_id=tenant.id,
                    name=BOOTSTRAP_KEY_NAME,
                    prefix=display_prefix(secret),
                    secret_hash=hash_secret(secret),
                    role=Role.PLATFORM_ADMIN.value,
                    scopes=[ALL_SCOPES],
                    allowed_models=None,
                    created_at=now,
                    expires_at=None,
                    revoked_at=None,
                )
            )
    except IntegrityError:
        return None  # the admin tenant appeared meanwhile: another process bootstrapped
    return secret
