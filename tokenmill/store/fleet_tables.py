"""The tables that let gateways and controllers run as separate processes.

``leases``: who leads (one row per lease name; a holder renews it before ``expires_at`` and a
standby takes it once that has passed; ``epoch`` grows with every new holder, so what an
old leader writes late can be told apart). ``fleet_routes``: what the leading controller
publishes for gateways (each served name's pools, each pool's ready replicas, a pool that
fails to start, the fleet's status). ``gateway_loads``: what each gateway reports of its
pools, which the controller's autoscalers sum. These tables join ``tables.Base``'s metadata
when ``tokenmill.store`` is imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenmill.store.tables import Base


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    epoch: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class FleetRoute(Base):
    __tablename__ = "fleet_routes"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)  # kind:name
    payload: Mapped[Any] = mapped_column(JSON)
    epoch: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class GatewayLoad(Base):
    __tablename__ = "gateway_loads"

    gateway_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    pool_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    waiting: Mapped[int] = mapped_column(Integer)
    in_flight: Mapped[int] = mapped_column(Integer)
    arrived_total: Mapped[int] = mapped_column(Integer)
    idle_seconds: Mapped[float | None] = mapped_column(Float)  # since its last request
    replicas: Mapped[dict[str, int]] = mapped_column(JSON)  # in flight per replica id
    updated_at: Mapped[datetime]
