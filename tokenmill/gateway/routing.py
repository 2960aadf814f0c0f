"""Picks a replica for a model: the ready one with the fewest requests in flight.

The choice is a pure function of the candidates; the ``Router`` only keeps the in-flight
counts, which a lease returns on every path (safe to release twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenmill.errors import ServiceUnavailable


@dataclass(slots=True)
class ReplicaEndpoint:
    url: str
    in_flight: int = 0


@dataclass(slots=True)
class Lease:
    endpoint: ReplicaEndpoint
    released: bool = False

    @property
    def url(self) -> str:
        return self.endpoint.url

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.endpoint.in_flight -= 1


def least_loaded(candidates: list[ReplicaEndpoint]) -> ReplicaEndpoint | None:
    return min(candidates, key=lambda e: e.in_flight, default=None)


@dataclass(slots=True)
class Router:
    replicas: dict[str, list[ReplicaEndpoint]] = field(default_factory=dict)

    def set_replicas(self, model_id: str, urls: list[str]) -> None:
        current = {e.url: e for e in self.replicas.get(model_id, [])}
        self.replicas[model_id] = [current.get(url) or ReplicaEndpoint(url) for url in urls]

    def acquire(self, model_id: str) -> Lease:
        endpoint = least_loaded(self.replicas.get(model_id, []))
        if endpoint is None:
            raise ServiceUnavailable(
                f"No replica of '{model_id}' is running; try again shortly.",
                headers={"Retry-After": "5"},
            )
        endpoint.in_flight += 1
        return Lease(endpoint)
