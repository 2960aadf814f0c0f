"""Simulated time: a heap-ordered event loop and the clock it drives.

Events at the same instant run in the order they were scheduled, so a run is deterministic.
Cancelling is lazy: a cancelled event stays in the heap and is skipped when it comes up,
which keeps ``cancel`` O(1).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

SIM_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class SimClock:
    """A ``tokenmill.clock.Clock`` whose time only the event loop moves."""

    def __init__(self, start_seconds: float = 0.0, wall: datetime = SIM_EPOCH) -> None:
        self._now_seconds = start_seconds
        self._origin_seconds = start_seconds
        self._wall = wall

    def monotonic(self) -> float:
        return self._now_seconds

    def utcnow(self) -> datetime:
        return self._wall + timedelta(seconds=self._now_seconds - self._origin_seconds)

    def _move_to(self, at_seconds: float) -> None:
        if at_seconds < self._now_seconds:
            raise ValueError("simulated time does not go backwards")
        self._now_seconds = at_seconds


@dataclass(slots=True)
class Event:
    at_seconds: float
    action: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(slots=True)
class EventLoop:
    clock: SimClock = field(default_factory=SimClock)
    _heap: list[tuple[float, int, Event]] = field(default_factory=list)
    _sequence: int = 0
    events_run: int = 0

    @property
    def now_seconds(self) -> float:
        return self.clock.monotonic()

    def at(self, at_seconds: float, action: Callable[[], None]) -> Event:
        """Run ``action`` at ``at_seconds`` (now, if that is in the past)."""
        event = Event(max(at_seconds, self.now_seconds), action)
        self._sequence += 1
        heapq.heappush(self._heap, (event.at_seconds, self._sequence, event))
        return event

    def after(self, delay_seconds: float, action: Callable[[], None]) -> Event:
        return self.at(self.now_seconds + max(0.0, delay_seconds), action)

    def run(self, until_seconds: float | None = None) -> None:
        """Run events in time order until none is left or the next is after ``until_seconds``."""
        heap = self._heap
        while heap:
            at_seconds, _, event = heap[0]
            if until_seconds is not None and at_seconds > until_seconds:
                break
            heapq.heappop(heap)
            if event.cancelled:
                continue
            self.clock._move_to(at_seconds)
            self.events_run += 1
            event.action()
        if until_seconds is not None and until_seconds > self.now_seconds:
            self.clock._move_to(until_seconds)

    def pending(self) -> int:
        return sum(1 for _, _, event in self._heap if not event.cancelled)
