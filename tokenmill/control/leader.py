"""Which controller leads: a lease in the database, renewed by its holder, taken by a standby.

A lease has a holder and an expiry. The holder renews it well before it expires; any other
contender takes it only once it has expired, in one conditional ``UPDATE``, so two contenders
cannot both win (on SQLite and PostgreSQL alike). Each new holder gets the next ``epoch``:
what the fleet publishes carries it, so a leader that was deposed while it was stalled cannot
overwrite its successor's routes. A holder that stops cleanly releases the lease, and a standby
takes over at its next attempt instead of after the expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, update
from sqlalchemy.exc import IntegrityError

from tokenmill.clock import Clock
from tokenmill.store.db import Database
from tokenmill.store.fleet_tables import Lease

log = logging.getLogger(__name__)

CONTROLLER_LEASE = "controller"


def _rows(result: Result[Any]) -> int:
    """How many rows an UPDATE changed."""
    return int(cast(CursorResult[Any], result).rowcount)


class LeaderLease:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        holder: str,
        *,
        name: str = CONTROLLER_LEASE,
        ttl_seconds: float = 6.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self.holder = holder
        self.name = name
        self.ttl = timedelta(seconds=ttl_seconds)

    def claim(self) -> int | None:
        """Renews the lease if this holder has it, takes it if it has expired; returns the
        epoch while this holder leads, None while another does."""
        now = self._clock.utcnow()
        expires = now + self.ttl
        with self._db.session() as session:
            renewed = _rows(
                session.execute(
                    update(Lease)
                    .where(Lease.name == self.name, Lease.holder == self.holder)
                    .values(expires_at=expires)
                )
            )
            if not renewed:
                session.execute(
                    update(Lease)
                    .where(Lease.name == self.name, Lease.expires_at <= now)
                    .values(
                        holder=self.holder,
                        epoch=Lease.epoch + 1,
                        acquired_at=now,
                        expires_at=expires,
                    )
                )
            row = session.get(Lease, self.name)
            if row is not None:
                return row.epoch if row.holder == self.holder else None
        return self._first(now, expires)

    def _first(self, now: datetime, expires: datetime) -> int | None:
        try:
            with self._db.session() as session:
                session.add(
                    Lease(
                        name=self.name,
                        holder=self.holder,
                        epoch=1,
                        acquired_at=now,
                        expires_at=expires,
                    )
                )
        except IntegrityError:  # another contender made it first
            return None
        return 1

    def release(self) -> None:
        """Gives the lease up now, if this holder has it."""
        with self._db.session() as session:
            session.execute(
                update(Lease)
                .where(Lease.name == self.name, Lease.holder == self.holder)
                .values(expires_at=self._clock.utcnow())
            )

    def current(self) -> tuple[str, int] | None:
        """(holder, epoch) of the lease as it stands, expired or not."""
        with self._db.session() as session:
            row = session.get(Lease, self.name)
            return None if row is None else (row.holder, row.epoch)


class LeaderElection:
    """Claims the lease every ``renew_seconds`` and runs ``lead(epoch)`` while it holds it.

    ``lead`` is cancelled when the lease is lost: another holder took it, or it could not be
    renewed (the database is unreachable) for longer than the lease lasts, after which a
    standby may hold it. On stop the lease is released.
    """

    def __init__(
        self,
        lease: LeaderLease,
        lead: Callable[[int], Coroutine[Any, Any, None]],
        *,
        renew_seconds: float = 2.0,
        on_change: Callable[[bool], None] = lambda leading: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self._lead = lead
        self.renew_seconds = renew_seconds
        self._on_change = on_change
        self._monotonic = monotonic
        self.epoch: int | None = None
        self._held_until = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return self.epoch is not None

    async def run(self) -> None:
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.renew_seconds)
        finally:
            await self._step_down()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.lease.release)

    async def step(self) -> None:
        started = self._monotonic()
        try:
            epoch = await asyncio.to_thread(self.lease.claim)
        except Exception:
            log.exception("could not renew the controller lease")
            if self.leading and self._monotonic() >= self._held_until:
                log.error("the controller lease has expired unrenewed; stepping down")
                await self._step_down()
            return
        if epoch is not None:
            self._held_until = started + self.lease.ttl.total_seconds()
        if epoch == self.epoch:
            self._restart_if_ended()
            return
        await self._step_down()
        if epoch is not None:
            log.info("leading as %s (epoch %d)", self.lease.holder, epoch)
            self.epoch = epoch
            self._task = asyncio.create_task(self._lead(epoch))
            self._on_change(True)

    def _restart_if_ended(self) -> None:
        """A leader whose work ended (it failed) starts it again rather than lead idle."""
        task = self._task
        if self.epoch is None or task is None or not task.done():
            return
        if not task.cancelled() and task.exception() is not None:
            log.error("the leader's work failed; starting it again", exc_info=task.exception())
        self._task = asyncio.create_task(self._lead(self.epoch))

    async def _step_down(self) -> None:
        if self.epoch is None:
            return
        log.info("no longer leading (epoch %d)", self.epoch)
        self.epoch = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._on_change(False)
