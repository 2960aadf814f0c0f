"""The fleet controller's seams: the router it publishes ready replicas to, and its options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tokenmill.fleet.retries import RetryPolicy


class ReadySink(Protocol):
    """The gateway's router as the controller sees it."""

    def bind(self, served_name: str, bindings: Sequence[Any]) -> None: ...

    def set_replicas(self, key: str, urls: Sequence[str | tuple[str, str]]) -> None: ...

    def pool_load(self, key: str) -> tuple[int, int, float | None, int]:
        """(waiting, in flight, last request monotonic time, arrived total)."""
        ...

    def in_flight_of(self, key: str, replica_id: str) -> int: ...

    def set_failing(self, key: str, reason: str | None, retry_at: float = 0.0) -> None: ...


@dataclass(frozen=True, slots=True)
class FleetOptions:
    threads: int = 2
    autoscaler: str = "reactive"
    placement: str = "binpack"
    tick_seconds: float = 0.25
    reload_seconds: float = 2.0
    start_timeout_seconds: float = 180.0
    drain_timeout_seconds: float = 60.0
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    target_load_per_replica: float = 8.0
    scale_out_delay_seconds: float = 5.0
    scale_in_delay_seconds: float = 30.0
    extra_buffers: str | None = None  # passed to engines that take it (ours)
    scheduling: str | None = None  # ours: fair (tenants' shares, tier classes) or fcfs
    adapters_dir: Path | None = None  # ours: fine-tunes' adapters, applied per request
