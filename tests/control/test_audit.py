"""The audit log: entries chained by hashes from seq 1, ``verify`` finding the first entry that
was changed, removed or moved, secrets replaced before anything is hashed or stored, appends
from many threads (and, on PostgreSQL, many gateways) in one chain, and ``list``'s filters."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, replace
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from tests.conftest import postgres_schema
from tokenmill.clock import ManualClock
from tokenmill.control.audit import (
    GENESIS,
    REDACTED,
    Action,
    AuditLog,
    Record,
    Verification,
    entry_hash,
    redact,
)
from tokenmill.store.audit_tables import AuditEntry
from tokenmill.store.db import Database

SECRET = "tm-Qm9vYmFyLXNlY3JldC1rZXktZm9yLWF1ZGl0"
TENANT_A, TENANT_B, PLATFORM = "ten_alpha", "ten_beta", "ten_admin"


@pytest.fixture
def audit(database: Database, clock: ManualClock) -> AuditLog:
    return AuditLog(database, clock)


def action(n: int = 0, **fields: object) -> Action:
    """A platform admin setting tenant alpha's rpm_limit to ``n``."""
    made = Action(
        actor_key_id="key_root",
        actor_role="platform_admin",
        actor_tenant_id=PLATFORM,
        tenant_id=TENANT_A,
        method="PATCH",
        path=f"/admin/v1/tenants/{TENANT_A}",
        status=200,
        address="10.0.0.7",
        request={"rpm_limit": n},
        before={"id": TENANT_A, "rpm_limit": None},
        after={"id": TENANT_A, "rpm_limit": n},
    )
    return replace(made, **fields)  # type: ignore[arg-type]


def fill(audit: AuditLog, clock: ManualClock, count: int) -> list[Record]:
    records = []
    for n in range(count):
        clock.advance(1.25)
        records.append(audit.append(action(n)))
    return records


def test_entries_chain_from_genesis(audit: AuditLog, clock: ManualClock) -> None:
    records = fill(audit, clock, 5)

    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS == "0" * 64
    for prev, record in zip([None, *records], records, strict=False):
        assert record.prev_hash == (prev.hash if prev else GENESIS)
        body = {"seq": record.seq, "created_at": record.created_at.isoformat()}
        canonical = json.dumps(
            {**body, **asdict(record.action)}, sort_keys=True, separators=(",", ":")
        )
        assert record.hash == hashlib.sha256((record.prev_hash + canonical).encode()).hexdigest()
        assert record.hash == entry_hash(
            record.prev_hash, record.seq, record.created_at, record.action
        )
    assert records[2].created_at == clock.utcnow() - timedelta(seconds=2 * 1.25)
    assert audit.list() == records[::-1]  # what was stored is what append returned
    assert records[0].as_json() == {
        "object": "audit.entry",
        "seq": 1,
        "created_at": records[0].created_at.isoformat(),
        **asdict(action(0)),
        "prev_hash": GENESIS,
        "hash": records[0].hash,
    }


def test_verify_an_empty_and_a_filled_log(audit: AuditLog, clock: ManualClock) -> None:
    assert audit.verify() == Verification(0, True, None)
    fill(audit, clock, 7)
    assert audit.verify() == Verification(7, True, None)
    assert audit.verify(batch=2) == Verification(7, True, None)  # across pages
    assert audit.verify().as_json() == {
        "object": "audit.verification",
        "entries": 7,
        "intact": True,
        "first_broken_seq": None,
    }


def _set(seq: int, **values: object) -> Callable[[Session], object]:
    return lambda s: s.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(**values))


def _delete(seq: int) -> Callable[[Session], object]:
    return lambda s: s.execute(delete(AuditEntry).where(AuditEntry.seq == seq))


def _swap(a: int, b: int, columns: tuple[str, ...]) -> Callable[[Session], object]:
    """Rows ``a`` and ``b`` exchange the values of ``columns``; their seqs stay put."""

    def swap(session: Session) -> None:
        rows = {
            r.seq: r for r in session.scalars(select(AuditEntry).where(AuditEntry.seq.in_((a, b))))
        }
        taken = {seq: {c: getattr(row, c) for c in columns} for seq, row in rows.items()}
        for c in columns:
            setattr(rows[a], c, taken[b][c])
            setattr(rows[b], c, taken[a][c])

    return swap


def _forge(seq: int) -> Callable[[Session], object]:
    """Row ``seq`` changed, and its own hash recomputed to match (but not the next row's)."""

    def forge(session: Session) -> None:
        row = session.get(AuditEntry, seq)
        assert row is not None
        row.status = 201
        row.hash = entry_hash(row.prev_hash, seq, row.created_at, Record.from_row(row).action)

    return forge


def _later(seq: int) -> Callable[[Session], object]:
    def later(session: Session) -> None:
        row = session.get(AuditEntry, seq)
        assert row is not None
        row.created_at += timedelta(seconds=1)

    return later


ACTION_COLUMNS = tuple(asdict(action()))
ALL_COLUMNS = (*ACTION_COLUMNS, "created_at", "prev_hash", "hash")


TAMPERING: list[tuple[str, Callable[[Session], object], int, int]] = [
    # what was done, to which rows; then the entries still intact, and the first broken seq
    ("status changed", _set(3, status=403), 2, 3),
    ("request changed", _set(3, request={"rpm_limit": 999}), 2, 3),
    ("created_at moved", _later(3), 2, 3),
    ("row changed and rehashed", _forge(3), 3, 4),
    ("row deleted", _delete(3), 2, 4),
    ("first row deleted", _delete(1), 0, 2),
    ("contents swapped", _swap(2, 3, ACTION_COLUMNS), 1, 2),
    ("rows swapped with their hashes", _swap(2, 3, ALL_COLUMNS), 1, 2),
]


def test_tampering_is_found_at_its_entry(
    audit: AuditLog, database: Database, clock: ManualClock
) -> None:
    fill(audit, clock, 5)
    with database.session() as session:
        rows = [
            {c.name: getattr(row, c.name) for c in AuditEntry.__table__.columns}
            for row in session.scalars(select(AuditEntry))
        ]
    for name, tamper, intact, broken_at in TAMPERING:
        with database.session() as session:
            tamper(session)
        assert audit.verify() == Verification(intact, False, broken_at), name
        assert audit.verify(batch=2) == Verification(intact, False, broken_at), name
        with database.session() as session:  # as it was, for the next
            session.execute(delete(AuditEntry))
            session.execute(insert(AuditEntry), rows)
        assert audit.verify() == Verification(5, True, None), name


def test_redact_replaces_secret_fields_at_any_depth() -> None:
    given = {
        "name": "ci",
        "Authorization": f"Bearer {SECRET}",
        "servers": [{"label": "wiki", "Headers": {"X-Api-Key": SECRET}, "API_KEY": SECRET}],
        "deep": {"deeper": {"password": SECRET, "Secret_Key": SECRET, "token": SECRET}},
        "secret": None,  # nothing to hide
        "keys": ["key", "token"],  # names as values are no secrets
    }
    assert redact(given) == {
        "name": "ci",
        "Authorization": REDACTED,
        "servers": [{"label": "wiki", "Headers": REDACTED, "API_KEY": REDACTED}],
        "deep": {"deeper": {"password": REDACTED, "Secret_Key": REDACTED, "token": REDACTED}},
        "secret": None,
        "keys": ["key", "token"],
    }
    assert given["Authorization"] == f"Bearer {SECRET}"  # the caller's value is left alone
    assert redact([{"key": SECRET}, 3, "x", None]) == [{"key": REDACTED}, 3, "x", None]
    assert redact("plain") == "plain"


def test_a_secret_inside_a_tuple_is_redacted_too() -> None:
    """At any depth: a tuple is a container like a list (and is stored as a JSON array)."""
    assert SECRET not in json.dumps(redact({"created": ({"id": "key_1", "key": SECRET},)}))


def test_secrets_never_reach_the_stored_row(audit: AuditLog, database: Database) -> None:
    created = action(
        method="POST",
        path=f"/admin/v1/tenants/{TENANT_A}/keys",
        request={"name": "ci", "Authorization": f"Bearer {SECRET}"},
        before=None,
        after={
            "object": "api_key",
            "id": "key_ci",
            "prefix": SECRET[:11],
            "key": SECRET,
            "secret": SECRET,
            "config": {"headers": {"X-Api-Key": SECRET}},
        },
    )
    record = audit.append(created)

    with database.session() as session:
        raw = session.execute(text("SELECT * FROM audit_log")).mappings().one()
    assert SECRET not in str(dict(raw))
    assert "key_ci" in str(dict(raw))
    assert record.action.request == {"name": "ci", "Authorization": REDACTED}
    assert record.action.after == {
        "object": "api_key",
        "id": "key_ci",
        "prefix": SECRET[:11],
        "key": REDACTED,
        "secret": REDACTED,
        "config": {"headers": REDACTED},
    }
    assert audit.list() == [record]
    assert audit.verify() == Verification(1, True, None)  # the hash covers what was stored


def _append_from_threads(logs: list[AuditLog], threads: int, each: int) -> None:
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        start.wait()
        for i in range(each):
            logs[t % len(logs)].append(action(request={"thread": t, "i": i}))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


def _assert_one_chain(audit: AuditLog, threads: int, each: int) -> None:
    total = threads * each
    assert audit.verify() == Verification(total, True, None)
    found = audit.list(limit=total + 1)
    assert sorted(r.seq for r in found) == list(range(1, total + 1))
    asked = sorted((r.action.request["thread"], r.action.request["i"]) for r in found)
    assert asked == [(t, i) for t in range(threads) for i in range(each)]


def test_appends_from_eight_threads_make_one_chain(audit: AuditLog) -> None:
    _append_from_threads([audit], 8, 10)
    _assert_one_chain(audit, 8, 10)


@pytest.fixture
def gateways(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Database]]:
    """Two gateways' databases on one PostgreSQL schema, without the in-process lock between
    them: only the advisory lock keeps their appends in line."""
    monkeypatch.setattr(AuditLog, "_lock", nullcontext())
    with postgres_schema(postgres_server) as url:
        made = [Database(url), Database(url)]
        made[0].migrate()
        try:
            yield made
        finally:
            for db in made:
                db.dispose()


@pytest.mark.postgres
def test_appends_from_two_gateways_make_one_chain_on_postgres(gateways: list[Database]) -> None:
    logs = [AuditLog(db, ManualClock()) for db in gateways]
    _append_from_threads(logs, 8, 10)
    _assert_one_chain(logs[0], 8, 10)


def test_list_filters(audit: AuditLog, clock: ManualClock) -> None:
    a_key = {"actor_key_id": "key_a", "actor_role": "tenant_admin", "actor_tenant_id": TENANT_A}
    done = []
    for made in [
        action(1),  # about alpha, by the platform
        action(2, tenant_id=TENANT_B, path=f"/admin/v1/tenants/{TENANT_B}"),
        action(3, tenant_id=TENANT_B, status=403, **a_key),  # alpha's key tried beta
        action(4, tenant_id=None, method="POST", path="/admin/v1/prices"),
        action(5, **a_key),
    ]:
        clock.advance(60)
        done.append(audit.append(made))
    r1, r2, r3, r4, r5 = done

    assert audit.list() == [r5, r4, r3, r2, r1]
    assert audit.list(TENANT_A) == [r5, r1]  # about alpha, whoever acted
    assert audit.list(TENANT_B) == [r3, r2]  # alpha's key trying beta is about beta
    assert audit.list(PLATFORM) == []  # the platform's own tenant was not acted upon
    assert audit.list(since=r3.created_at) == [r5, r4, r3]
    assert audit.list(since=r5.created_at + timedelta(microseconds=1)) == []
    assert audit.list(before_seq=4) == [r3, r2, r1]
    assert audit.list(before_seq=1) == []
    assert audit.list(limit=2) == [r5, r4]
    assert audit.list(limit=2, before_seq=r4.seq) == [r3, r2]  # the next page
    assert audit.list(TENANT_B, since=r3.created_at, before_seq=4, limit=5) == [r3]
