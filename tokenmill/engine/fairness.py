"""Fair share between tenants: a virtual token counter per tenant (VTC, Sheng et al., OSDI 2024).

A tenant's counter grows with the service it receives, divided by its weight: each prompt
token computed (prefix-cache hits are free) counts 1, each generated token 2. The next sequence
admitted is the oldest waiting one of the tenant with the smallest counter; under memory
pressure the newest running sequence of the tenant with the largest is preempted. A tenant that
arrives with nothing waiting or running has its counter lifted to the smallest among the
tenants that have, so time spent idle is not banked as credit for a burst later.

When every running place is taken, a tenant holding fewer places than its weighted share of
them is still admitted (``peek(places)``), up to twice the places in all: a flood that took every
place does not make the next tenant wait for one of its sequences to end, and nothing computed
is thrown away. The batch shrinks back as the flood's sequences end and are not replaced.

With ``fair=False`` every sequence counts as one tenant's: first come, first served.
Pure bookkeeping: no clock, no threads.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator

from tokenmill.engine.sequence import Sequence

OUTPUT_TOKEN_COST = 2.0
PRUNE_AT = 4096  # forget idle tenants' counters past this many tenants


class FairQueue:
    """The waiting sequences, one queue per tenant, and every tenant's counter."""

    def __init__(self, *, fair: bool = True) -> None:
        self.fair = fair
        self._queues: dict[str, deque[Sequence]] = {}
        self._active: Counter[str] = Counter()  # sequences waiting or running, per tenant
        self._counters: dict[str, float] = {}
        self._weights: dict[str, float] = {}  # of active tenants, as their last request said
        self._floor = 0.0  # the smallest active counter when the engine last had work
        self._size = 0

    def tenant(self, seq: Sequence) -> str:
        return seq.request.tenant if self.fair else ""

    def counter(self, tenant: str) -> float:
        return self._counters.get(tenant, 0.0)

    def arrive(self, seq: Sequence) -> None:
        """A new sequence joins the back of its tenant's queue."""
        tenant = self.tenant(seq)
        if not self._active[tenant]:
            self._lift(tenant)
        self._active[tenant] += 1
        self._weights[tenant] = seq.request.weight
        self._push(tenant, seq, front=False)

    def requeue(self, seq: Sequence) -> None:
        """A preempted sequence goes back to the front of its tenant's queue."""
        self._push(self.tenant(seq), seq, front=True)

    def peek(self, places: int | None = None) -> Sequence | None:
        """The sequence to admit next, or None when nothing waits.

        ``places``: every running place is taken; only a tenant below its weighted share of
        these places may have one more.
        """
        tenants = [
            tenant
            for tenant, queue in self._queues.items()
            if places is None or self._entitled(tenant, places)
        ]
        if not tenants:
            return None
        return self._queues[min(tenants, key=self.counter)][0]

    def take(self, seq: Sequence) -> None:
        """Take ``seq`` (from ``peek``) out of the queue to run it."""
        tenant = self.tenant(seq)
        queue = self._queues[tenant]
        queue.remove(seq)
        self._size -= 1
        if not queue:
            del self._queues[tenant]

    def discard(self, seq: Sequence, *, running: bool) -> None:
        """A sequence ends, waiting or running: it no longer counts as its tenant's work."""
        tenant = self.tenant(seq)
        queue = self._queues.get(tenant)
        if queue is not None and seq in queue:
            self.take(seq)
        elif not running:
            return  # it never arrived here
        self._active[tenant] -= 1
        if self._active[tenant] <= 0:
            del self._active[tenant]
            self._weights.pop(tenant, None)
            if not self._active:
                self._floor = max(self._floor, self.counter(tenant))
            if len(self._counters) > PRUNE_AT:
                self._prune()

    def charge_prompt(self, seq: Sequence, tokens: int) -> None:
        self._charge(seq, tokens)

    def charge_output(self, seq: Sequence, tokens: int = 1) -> None:
        self._charge(seq, OUTPUT_TOKEN_COST * tokens)

    def victim(self, running: list[Sequence]) -> Sequence:
        """The running sequence to preempt: the newest of the tenant furthest above its share."""
        if not self.fair:
            return running[-1]
        tenant = max({self.tenant(seq) for seq in running}, key=self.counter)
        return next(seq for seq in reversed(running) if self.tenant(seq) == tenant)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Sequence]:
        for queue in self._queues.values():
            yield from queue

    def _entitled(self, tenant: str, places: int) -> bool:
        """Whether the tenant runs fewer sequences than its weighted share of ``places``."""
        if not self.fair:
            return False
        running = self._active[tenant] - len(self._queues.get(tenant, ()))
        return running < places * self._weights[tenant] / sum(self._weights.values())

    def _push(self, tenant: str, seq: Sequence, *, front: bool) -> None:
        queue = self._queues.setdefault(tenant, deque())
        if front:
            queue.appendleft(seq)
        else:
            queue.append(seq)
        self._size += 1

    def _charge(self, seq: Sequence, cost: float) -> None:
        tenant = self.tenant(seq)
        self._counters[tenant] = self.counter(tenant) + cost / seq.request.weight

    def _lift(self, tenant: str) -> None:
        others = [self.counter(t) for t in self._active if t != tenant]
        floor = min(others) if others else self._floor
        self._counters[tenant] = max(self.counter(tenant), floor)

    def _prune(self) -> None:
        """Idle tenants at or below every active counter would be lifted anyway: drop them."""
        floor = min((self.counter(t) for t in self._active), default=self._floor)
        for tenant in [t for t, c in self._counters.items() if t not in self._active]:
            if self._counters[tenant] <= floor:
                del self._counters[tenant]
