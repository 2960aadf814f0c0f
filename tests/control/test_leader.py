"""The leader lease and election: one leader at a time, a standby takes over when the leader's
lease runs out or is released, and an old leader stands down."""

from __future__ import annotations

import asyncio

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.leader import LeaderElection, LeaderLease
from tokenmill.store.db import Database

TTL = 6.0


def lease(database: Database, clock: ManualClock, holder: str) -> LeaderLease:
    return LeaderLease(database, clock, holder, ttl_seconds=TTL)


def test_first_claim_leads_and_others_wait(database: Database, clock: ManualClock) -> None:
    a, b = lease(database, clock, "a"), lease(database, clock, "b")
    assert a.claim() == 1
    assert b.claim() is None
    assert a.claim() == 1  # renewing keeps the epoch
    assert a.current() == ("a", 1)


def test_standby_takes_over_only_after_the_lease_expires(
    database: Database, clock: ManualClock
) -> None:
    a, b = lease(database, clock, "a"), lease(database, clock, "b")
    assert a.claim() == 1
    clock.advance(TTL - 0.5)
    assert b.claim() is None
    assert a.claim() == 1  # renewed in time: another TTL from now
    clock.advance(TTL - 0.5)
    assert b.claim() is None
    clock.advance(1.0)  # a stopped renewing
    assert b.claim() == 2
    assert a.claim() is None  # the old leader learns it lost
    assert a.current() == ("b", 2)


def test_release_hands_over_at_once(database: Database, clock: ManualClock) -> None:
    a, b = lease(database, clock, "a"), lease(database, clock, "b")
    assert a.claim() == 1
    b.release()  # not b's to give up: nothing changes
    assert b.claim() is None
    a.release()
    assert b.claim() == 2


def test_leases_of_other_names_are_apart(database: Database, clock: ManualClock) -> None:
    a = LeaderLease(database, clock, "a", name="controller")
    b = LeaderLease(database, clock, "b", name="other")
    assert a.claim() == 1
    assert b.claim() == 1


class Leader:
    """What a controller does while it leads, recorded."""

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.running = False
        self.stopped = 0

    async def lead(self, epoch: int) -> None:
        self.epochs.append(epoch)
        self.running = True
        try:
            await asyncio.Event().wait()
        finally:
            self.running = False
            self.stopped += 1


async def test_two_controllers_one_leads_then_the_standby_takes_over(
    database: Database, clock: ManualClock
) -> None:
    first, second = Leader(), Leader()
    changes: list[tuple[str, bool]] = []
    one = LeaderElection(
        lease(database, clock, "one"),
        first.lead,
        monotonic=clock.monotonic,
        on_change=lambda leading: changes.append(("one", leading)),
    )
    two = LeaderElection(
        lease(database, clock, "two"),
        second.lead,
        monotonic=clock.monotonic,
        on_change=lambda leading: changes.append(("two", leading)),
    )
    await one.step()
    await two.step()
    await asyncio.sleep(0)
    assert (one.leading, two.leading) == (True, False)
    assert first.running and not second.running

    for _ in range(5):  # both keep trying; only the leader's claims succeed
        clock.advance(2.0)
        await one.step()
        await two.step()
    assert (one.leading, two.leading) == (True, False)

    clock.advance(TTL + 0.1)  # the leader stalls (e.g. a long pause): its lease runs out
    await two.step()
    await asyncio.sleep(0)
    assert two.leading and two.epoch == 2 and second.running
    await one.step()  # when it comes back, it stands down
    assert not one.leading and not first.running and first.stopped == 1
    assert changes == [("one", True), ("two", True), ("one", False)]
    await asyncio.to_thread(two.lease.release)
    await one.step()
    assert one.leading and one.epoch == 3
    await two.step()
    assert not two.leading and second.stopped == 1


async def test_a_leader_that_cannot_renew_stands_down_once_its_lease_ran_out(
    database: Database, clock: ManualClock
) -> None:
    leader = Leader()
    election = LeaderElection(lease(database, clock, "one"), leader.lead, monotonic=clock.monotonic)
    await election.step()
    assert election.leading

    def unreachable() -> int | None:
        raise ConnectionError("the database is down")

    election.lease.claim = unreachable  # type: ignore[method-assign]
    clock.advance(TTL / 2)
    await election.step()
    assert election.leading  # its lease still holds: keep leading
    clock.advance(TTL / 2 + 0.1)
    await election.step()
    assert not election.leading and leader.stopped == 1


async def test_a_leaders_failed_work_is_started_again(
    database: Database, clock: ManualClock
) -> None:
    runs: list[int] = []

    async def lead(epoch: int) -> None:
        runs.append(epoch)
        raise RuntimeError("the fleet crashed")

    election = LeaderElection(lease(database, clock, "one"), lead, monotonic=clock.monotonic)
    await election.step()
    await asyncio.sleep(0)
    await election.step()
    await asyncio.sleep(0)
    assert runs == [1, 1] and election.leading


async def test_stopping_releases_the_lease(database: Database, clock: ManualClock) -> None:
    leader = Leader()
    election = LeaderElection(
        lease(database, clock, "one"), leader.lead, renew_seconds=0.01, monotonic=clock.monotonic
    )
    task = asyncio.create_task(election.run())
    while not leader.running:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leader.stopped == 1
    assert lease(database, clock, "two").claim() == 2
