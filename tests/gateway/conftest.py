"""Helpers shared by the in-process API tests of the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tokenmill.clock import Clock
from tokenmill.control.bootstrap import ensure_admin
from tokenmill.control.keys import KeyRepository
from tokenmill.control.tenants import TenantRepository
from tokenmill.store.db import Database


def two_tenants(database: Database, clock: Clock) -> tuple[str, str, str]:
    """Tenants ``alpha`` and ``beta`` with a key each: (alpha's key, beta's key, alpha's id)."""
    tenants, keys = TenantRepository(database, clock), KeyRepository(database, clock)
    alpha, beta = tenants.create("alpha"), tenants.create("beta")
    _, alpha_key = keys.create(alpha.id, "alpha-app")
    _, beta_key = keys.create(beta.id, "beta-app")
    return alpha_key, beta_key, alpha.id


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error of a refused request, checked to be in OpenAI's shape."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


@dataclass(frozen=True, slots=True)
class AdminKeys:
    """The platform admin's key; tenant alpha's admin and inference keys; beta's admin key."""

    platform: str
    alpha_id: str
    alpha_admin_id: str
    alpha_admin: str
    alpha_inference: str
    beta_id: str
    beta_admin: str


def admin_keys(database: Database, clock: Clock) -> AdminKeys:
    platform = ensure_admin(database, clock)
    assert platform is not None
    tenants, keys = TenantRepository(database, clock), KeyRepository(database, clock)
    alpha, beta = tenants.create("alpha"), tenants.create("beta")
    alpha_key, alpha_admin = keys.create(alpha.id, "alpha-admin", role="tenant_admin")
    _, alpha_inference = keys.create(alpha.id, "alpha-app")
    _, beta_admin = keys.create(beta.id, "beta-admin", role="tenant_admin")
    return AdminKeys(
        platform, alpha.id, alpha_key.id, alpha_admin, alpha_inference, beta.id, beta_admin
    )
