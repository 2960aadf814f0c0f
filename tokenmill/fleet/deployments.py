"""Deployments: what should run. A deployment serves one model version, shared or dedicated.

``serverless`` deployments are shared by every tenant and billed per token; ``dedicated``
ones are reserved for one tenant, with that tenant's engine settings, and billed per
accelerator-hour from ready to stopped.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.fleet.autoscale import AUTOSCALERS
from tokenmill.store.db import Database
from tokenmill.store.tables import Deployment

MODES = ("serverless", "dedicated")
ENGINE_SETTINGS = {
    "context_tokens": int,
    "max_running": int,
    "threads": int,
    "speculative_tokens": int,
    "kv_cache_tokens": int,
    "accelerators": int,
    "memory_bytes": int,
}
SCALING_SETTINGS = ("target_load_per_replica", "scale_out_delay_seconds", "scale_in_delay_seconds")


@dataclass(frozen=True, slots=True)
class Binding:
    """Which pool serves a model version: a shared one (``tenant_id`` None) or one tenant's."""

    pool_key: str
    tenant_id: str | None = None


def bindings(deployments: list[DeploymentInfo]) -> dict[str, list[Binding]]:
    """Each served name's active deployments as router pools (keyed by deployment id)."""
    found: dict[str, list[Binding]] = {}
    for info in deployments:
        if info.active:
            found.setdefault(info.served_name, []).append(
                Binding(info.id, info.tenant_id if info.dedicated else None)
            )
    return found


@dataclass(frozen=True, slots=True)
class DeploymentInfo:
    id: str
    model_id: str
    version: str
    mode: str
    tenant_id: str | None
    engine: str
    settings: dict[str, Any]
    min_replicas: int
    max_replicas: int
    idle_seconds: int
    status: str
    created_at: datetime
    scaling: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, Any] = field(default_factory=dict)
    # What the fleet found, not what an operator asked for: not part of equality.
    failing_reason: str | None = field(default=None, compare=False)

    @property
    def served_name(self) -> str:
        return f"{self.model_id}@{self.version}"

    @property
    def dedicated(self) -> bool:
        return self.mode == "dedicated"

    @property
    def active(self) -> bool:
        return self.status == "active"

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "deployment",
            "id": self.id,
            "model": self.model_id,
            "version": self.version,
            "mode": self.mode,
            "tenant_id": self.tenant_id,
            "engine": self.engine,
            "settings": self.settings,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "idle_seconds": self.idle_seconds,
            "scaling": self.scaling,
            "constraints": self.constraints,
            "status": self.status,
            "health": "failing" if self.failing_reason else "ok",
            "health_reason": self.failing_reason,
            "created_at": self.created_at.isoformat(),
        }


def _info(row: Deployment) -> DeploymentInfo:
    return DeploymentInfo(
        id=row.id,
        model_id=row.model_id,
        version=row.version or "1",
        mode=row.mode,
        tenant_id=row.tenant_id,
        engine=row.engine,
        settings=dict(row.settings or {}),
        min_replicas=row.min_replicas,
        max_replicas=row.max_replicas,
        idle_seconds=row.idle_seconds,
        status=row.status,
        created_at=row.created_at,
        scaling=dict(row.scaling or {}),
        constraints=dict(row.constraints or {}),
        failing_reason=row.failing_reason,
    )


def check_terms(
    mode: str, tenant_id: str | None, min_replicas: int, max_replicas: int, idle_seconds: int
) -> None:
    if mode not in MODES:
        raise InvalidRequest(f"mode is one of {', '.join(MODES)}.", param="mode")
    if mode == "dedicated" and tenant_id is None:
        raise InvalidRequest("A dedicated deployment names its tenant.", param="tenant_id")
    if mode == "serverless" and tenant_id is not None:
        raise InvalidRequest(
            "A serverless deployment is shared; it has no tenant.", param="tenant_id"
        )
    if not 0 <= min_replicas <= max_replicas or max_replicas > 64:
        raise InvalidRequest(
            "Replicas need 0 <= min_replicas <= max_replicas <= 64.", param="max_replicas"
        )
    if idle_seconds < 1:
        raise InvalidRequest("idle_seconds is at least 1.", param="idle_seconds")


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    for name, value in settings.items():
        kind = ENGINE_SETTINGS.get(name)
        if kind is None:
            known = ", ".join(ENGINE_SETTINGS)
            raise InvalidRequest(f"Unknown engine setting '{name}' (known: {known}).", param=name)
        if not isinstance(value, kind) or isinstance(value, bool) or value < 0:
            raise InvalidRequest(f"{name} is a non-negative integer.", param=f"settings.{name}")
    return settings


def check_scaling(scaling: dict[str, Any]) -> dict[str, Any]:
    for name, value in scaling.items():
        if name == "policy":
            if value not in AUTOSCALERS:
                known = ", ".join(sorted(AUTOSCALERS))
                raise InvalidRequest(f"scaling.policy is one of {known}.", param="scaling.policy")
        elif name not in SCALING_SETTINGS:
            known = ", ".join(("policy", *SCALING_SETTINGS))
            raise InvalidRequest(f"Unknown scaling setting '{name}' (known: {known}).", param=name)
        elif not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise InvalidRequest(f"{name} is a positive number.", param=f"scaling.{name}")
    return scaling


class DeploymentRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def create(
        self,
        model_id: str,
        version: str,
        *,
        mode: str = "serverless",
        tenant_id: str | None = None,
        engine: str = "tokenmill",
        settings: dict[str, Any] | None = None,
        min_replicas: int = 0,
        max_replicas: int = 1,
        idle_seconds: int = 300,
        scaling: dict[str, Any] | None = None,
        constraints: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        check_terms(mode, tenant_id, min_replicas, max_replicas, idle_seconds)
        now = self._clock.utcnow()
        row = Deployment(
            id=f"dep_{secrets.token_hex(6)}",
            model_id=model_id,
            version=version,
            mode=mode,
            tenant_id=tenant_id,
            engine=engine,
            settings=check_settings(dict(settings or {})),
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            idle_seconds=idle_seconds,
            scaling=check_scaling(dict(scaling or {})),
            constraints=dict(constraints or {}),
            status="active",
            created_at=now,
            updated_at=now,
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            return _info(row)

    def update(self, deployment_id: str, **changes: Any) -> DeploymentInfo:
        """Changes replicas, idle time, settings, scaling, constraints or status."""
        allowed = {
            "min_replicas", "max_replicas", "idle_seconds", "settings", "scaling",
            "constraints", "status", "version",
        }  # fmt: skip
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidRequest(f"Cannot change {sorted(unknown)}.", param=sorted(unknown)[0])
        with self._db.session() as session:
            row = session.get(Deployment, deployment_id)
            if row is None:
                raise NotFound(f"No deployment '{deployment_id}'.", code="deployment_not_found")
            for name, value in changes.items():
                if value is not None:
                    setattr(row, name, value)
            check_terms(
                row.mode, row.tenant_id, row.min_replicas, row.max_replicas, row.idle_seconds
            )
            check_settings(dict(row.settings or {}))
            check_scaling(dict(row.scaling or {}))
            if row.status not in ("active", "stopped"):
                raise InvalidRequest("status is active or stopped.", param="status")
            row.updated_at = self._clock.utcnow()
            session.flush()
            return _info(row)

    def set_failing(self, deployment_id: str, reason: str | None) -> None:
        """Records why a deployment's replicas keep failing to come up (None: they no longer
        do), for the admin API and the CLI of any process."""
        with self._db.session() as session:
            row = session.get(Deployment, deployment_id)
            if row is None:
                return
            if reason is None:
                row.failing_reason, row.failing_since = None, None
            else:
                row.failing_since = row.failing_since or self._clock.utcnow()
                row.failing_reason = reason

    def get(self, deployment_id: str) -> DeploymentInfo | None:
        with self._db.session() as session:
            row = session.get(Deployment, deployment_id)
            return _info(row) if row else None

    def list(self, *, active_only: bool = False) -> list[DeploymentInfo]:
        with self._db.session() as session:
            query = select(Deployment).order_by(Deployment.created_at, Deployment.id)
            if active_only:
                query = query.where(Deployment.status == "active")
            return [_info(r) for r in session.scalars(query)]
