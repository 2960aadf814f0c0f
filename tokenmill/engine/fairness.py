"""Who goes next: priority classes, then fair share between tenants within a class.

Classes first: a waiting sequence of a more urgent class (``priority`` before ``default``
before ``flex``) is admitted before any of a less urgent one. A class whose oldest sequence has
waited counts as one class more urgent, so nothing starves: ``default`` after
``AGING_SECONDS``, ``flex`` (batch work, which has hours) after ``FLEX_AGING_SECONDS``. Aging
orders classes only: within a class, a flood's old requests do not pass another tenant's new
ones.

Within a class, a virtual token counter per tenant (VTC, Sheng et al., OSDI 2024): a tenant's
counter grows with the service it receives, divided by its weight: each prompt token computed
(prefix-cache hits are free) counts 1, each generated token 2. The next sequence admitted is
the oldest waiting one of the tenant with the smallest counter. A tenant that arrives with
nothing waiting or running has its counter lifted to the smallest among the tenants that have,
so time spent idle is not banked as credit for a burst later. Under memory pressure the newest
running sequence of the least urgent class and, within it, of the tenant furthest ahead is
preempted.

When every running place is taken, a sequence is still admitted (``peek(places)``, up to twice
the places in all) if its tenant holds fewer places than its weighted share of them, or if a
less urgent class holds one: a flood or a batch that took every place does not make others wait
for one of its sequences to end, and nothing computed is thrown away. The batch shrinks back as
those sequences end and are not replaced.

With ``fair=False`` every sequence counts as one tenant's of one class: first come, first
served. Pure bookkeeping: no threads; the time for aging is passed in.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator

from tokenmill.engine.sequence import Sequence
from tokenmill.protocol.tenancy import Priority

OUTPUT_TOKEN_COST = 2.0
AGING_SECONDS = 15.0  # waiting this long moves default work up to priority
FLEX_AGING_SECONDS = 300.0  # and flex work up to default
PRUNE_AT = 4096  # forget idle tenants' counters past this many tenants

Key = tuple[int, str]  # a queue's class and tenant


class FairQueue:
    """The waiting sequences, one queue per class and tenant, and every tenant's counter."""

    def __init__(
        self,
        *,
        fair: bool = True,
        aging_seconds: float = AGING_SECONDS,
        flex_aging_seconds: float = FLEX_AGING_SECONDS,
    ) -> None:
        self.fair = fair
        self.aging_seconds = aging_seconds
        self.flex_aging_seconds = flex_aging_seconds
        self._queues: dict[Key, deque[Sequence]] = {}
        self._queued: Counter[str] = Counter()  # sequences waiting, per tenant
        self._active: Counter[str] = Counter()  # sequences waiting or running, per tenant
        self._running_classes: Counter[int] = Counter()
        self._counters: dict[str, float] = {}
        self._weights: dict[str, float] = {}  # of active tenants, as their last request said
        self._floor = 0.0  # the smallest active counter when the engine last had work
        self._size = 0

    def tenant(self, seq: Sequence) -> str:
        return seq.request.tenant if self.fair else ""

    def counter(self, tenant: str) -> float:
        return self._counters.get(tenant, 0.0)

    def arrive(self, seq: Sequence) -> None:
        """A new sequence joins the back of its class's and tenant's queue."""
        tenant = self.tenant(seq)
        if not self._active[tenant]:
            self._lift(tenant)
        self._active[tenant] += 1
        self._weights[tenant] = seq.request.weight
        self._push(seq, front=False)

    def requeue(self, seq: Sequence) -> None:
        """A preempted sequence goes back to the front of its queue."""
        self._running_classes[self._key(seq)[0]] -= 1
        self._push(seq, front=True)

    def peek(self, places: int | None = None, now: float | None = None) -> Sequence | None:
        """The sequence to admit next, or None when nothing (that may run) waits.

        The class first: the most urgent with work waiting, where a class's oldest sequence
        moves it up a class as it waits (``now``); then, within the class,
        the tenant with the smallest counter. ``places``: every running place is taken; only
        a sequence of a tenant below its weighted share of them, or of a more urgent class
        than one running, may have one more.
        """
        heads = [
            (priority, queue[0])
            for (priority, tenant), queue in self._queues.items()
            if places is None or self._entitled(tenant, places) or self.outranks(priority)
        ]
        if not heads:
            return None
        oldest: dict[int, float] = {}
        for priority, head in heads:
            oldest[priority] = min(oldest.get(priority, head.arrival_seconds), head.arrival_seconds)
        chosen = min(oldest, key=lambda c: (self._rank(c, oldest[c], now), oldest[c]))
        return min(
            (head for priority, head in heads if priority == chosen),
            key=lambda head: (self.counter(self.tenant(head)), head.arrival_seconds),
        )

    def take(self, seq: Sequence) -> None:
        """Take ``seq`` (from ``peek``) out of the queue to run it."""
        key = self._key(seq)
        queue = self._queues[key]
        queue.remove(seq)
        self._size -= 1
        self._queued[key[1]] -= 1
        self._running_classes[key[0]] += 1
        if not queue:
            del self._queues[key]

    def discard(self, seq: Sequence, *, running: bool) -> None:
        """A sequence ends, waiting or running: it no longer counts as its tenant's work."""
        key = self._key(seq)
        tenant = key[1]
        queue = self._queues.get(key)
        if queue is not None and seq in queue:
            self.take(seq)
        elif not running:
            return  # it never arrived here
        self._running_classes[key[0]] -= 1
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

    def order(self, seqs: list[Sequence]) -> list[Sequence]:
        """Running sequences in the order their prompts are computed: by class, by counter,
        then oldest first (as given, under first come, first served)."""
        if not self.fair:
            return seqs
        return sorted(
            seqs,
            key=lambda seq: (
                self._key(seq)[0],
                self.counter(self.tenant(seq)),
                seq.arrival_seconds,
            ),
        )

    def victim(self, running: list[Sequence]) -> Sequence:
        """The running sequence to preempt: the newest of the least urgent class and, in it,
        of the tenant furthest above its share."""
        if not self.fair:
            return running[-1]
        worst = max(running, key=lambda seq: (self._key(seq)[0], self.counter(self.tenant(seq))))
        key = self._key(worst)
        return next(seq for seq in reversed(running) if self._key(seq) == key)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Sequence]:
        for queue in self._queues.values():
            yield from queue

    def _key(self, seq: Sequence) -> Key:
        if not self.fair:
            return Priority.DEFAULT, ""
        return seq.request.priority, seq.request.tenant

    def _rank(self, priority: int, arrival: float, now: float | None) -> int:
        """A class, moved up for the time its oldest sequence has waited."""
        if now is None or not self.fair:
            return priority
        waited = now - arrival
        if priority == Priority.FLEX:
            if waited < self.flex_aging_seconds:
                return priority
            priority, waited = Priority.DEFAULT, waited - self.flex_aging_seconds
        return max(0, priority - int(waited / self.aging_seconds))

    def _entitled(self, tenant: str, places: int) -> bool:
        """Whether the tenant runs fewer sequences than its weighted share of ``places``."""
        if not self.fair:
            return False
        running = self._active[tenant] - self._queued[tenant]
        return running < places * self._weights[tenant] / sum(self._weights.values())

    def outranks(self, priority: int) -> bool:
        """Whether a sequence of a less urgent class than ``priority`` is running."""
        return self.fair and any(n > 0 and c > priority for c, n in self._running_classes.items())

    def _push(self, seq: Sequence, *, front: bool) -> None:
        key = self._key(seq)
        queue = self._queues.setdefault(key, deque())
        if front:
            queue.appendleft(seq)
        else:
            queue.append(seq)
        self._size += 1
        self._queued[key[1]] += 1

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
