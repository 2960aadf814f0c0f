"""The files table on SQLite and PostgreSQL: records, pages, tenants apart, quota, deletion."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import InvalidRequest, PayloadTooLarge
from tokenmill.files.objects import FileInfo, new_file_id
from tokenmill.files.repository import FileRepository
from tokenmill.store.db import Database


def info(
    clock: ManualClock, tenant_id: str, size: int = 10, purpose: str = "assistants"
) -> FileInfo:
    return FileInfo(
        id=new_file_id(),
        tenant_id=tenant_id,
        key_id="key_1",
        purpose=purpose,
        filename="data.jsonl",
        size_bytes=size,
        sha256=hashlib.sha256(b"x").hexdigest(),
        created_at=clock.utcnow(),
    )


@pytest.fixture
def tenants(database: Database, clock: ManualClock) -> tuple[str, str]:
    repo = TenantRepository(database, clock)
    return repo.create("alpha").id, repo.create("beta").id


def nothing() -> None:
    pass


def test_a_recorded_file_reads_back_for_its_tenant_only(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    repo = FileRepository(database, clock)
    added = repo.add(info(clock, alpha), 1000, nothing)
    assert repo.get(alpha, added.id) == added
    assert repo.get(beta, added.id) is None
    assert repo.list(beta).data == []
    assert repo.mark_deleted(beta, added.id) is None
    assert repo.get(alpha, added.id) == added


def test_pages_follow_the_order_and_the_cursor(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    repo = FileRepository(database, clock)
    made = []
    for i in range(5):
        made.append(
            repo.add(info(clock, alpha, purpose="batch" if i % 2 else "assistants"), 10**6, nothing)
        )
        clock.advance(1)
    ids = [f.id for f in made]
    assert [f.id for f in repo.list(alpha).data] == ids[::-1]  # newest first by default
    first = repo.list(alpha, limit=2, order="asc")
    assert [f.id for f in first.data] == ids[:2] and first.has_more
    page = first.as_openai()
    assert page["first_id"] == ids[0] and page["last_id"] == ids[1]
    second = repo.list(alpha, limit=2, order="asc", after=ids[1])
    assert [f.id for f in second.data] == ids[2:4] and second.has_more
    last = repo.list(alpha, limit=2, order="asc", after=ids[3])
    assert [f.id for f in last.data] == ids[4:] and not last.has_more
    back = repo.list(alpha, limit=10, order="desc", after=ids[2])
    assert [f.id for f in back.data] == [ids[1], ids[0]]
    assert [f.id for f in repo.list(alpha, purpose="batch", order="asc").data] == [ids[1], ids[3]]
    assert repo.list(alpha, purpose="vision").as_openai() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_files_made_in_the_same_instant_page_without_loss(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    repo = FileRepository(database, clock)
    ids = sorted(repo.add(info(clock, alpha), 10**6, nothing).id for _ in range(4))
    seen: list[str] = []
    after = None
    while True:
        page = repo.list(alpha, limit=1, order="asc", after=after)
        seen += [f.id for f in page.data]
        if not page.has_more:
            break
        after = page.data[-1].id
    assert seen == ids


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "file-000000000000000000000000"}, "after"),
    ],
)
def test_bad_list_arguments_are_refused(
    database: Database,
    clock: ManualClock,
    tenants: tuple[str, str],
    kwargs: dict[str, object],
    param: str,
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        FileRepository(database, clock).list(tenants[0], **kwargs)  # type: ignore[arg-type]
    assert refused.value.param == param


def test_the_quota_counts_live_files_and_refuses_what_does_not_fit(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    repo = FileRepository(database, clock)
    kept = repo.add(info(clock, alpha, size=60), 100, nothing)
    placed: list[str] = []
    with pytest.raises(PayloadTooLarge) as refused:
        repo.add(info(clock, alpha, size=41), 100, lambda: placed.append("x"))
    assert refused.value.status == 413 and refused.value.code == "storage_quota_exceeded"
    assert "100 bytes" in refused.value.message and "60 bytes" in refused.value.message
    assert placed == [] and len(repo.list(alpha).data) == 1
    repo.add(info(clock, alpha, size=40), 100, nothing)  # exactly full
    repo.add(info(clock, beta, size=100), 100, nothing)  # beta has its own quota
    assert repo.stored_bytes(alpha) == 100
    repo.mark_deleted(alpha, kept.id)
    assert repo.stored_bytes(alpha) == 40
    assert repo.stored_bytes_by_tenant() == {alpha: 40, beta: 100}


def test_a_failed_placement_records_nothing(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    repo = FileRepository(database, clock)

    def broken() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        repo.add(info(clock, alpha), 1000, broken)
    assert repo.list(alpha).data == [] and repo.stored_bytes(alpha) == 0


def test_deleted_and_expired_files_are_gone_from_reads(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    repo = FileRepository(database, clock)
    deleted = repo.add(info(clock, alpha), 1000, nothing)
    assert repo.mark_deleted(alpha, deleted.id) == deleted
    assert repo.mark_deleted(alpha, deleted.id) is None
    assert repo.get(alpha, deleted.id) is None
    base = info(clock, alpha)
    expiring = repo.add(
        replace(base, expires_at=clock.utcnow() + timedelta(hours=1)), 1000, nothing
    )
    assert repo.get(alpha, expiring.id) == expiring and repo.expired() == []
    clock.advance(3600)
    assert repo.get(alpha, expiring.id) is None
    assert repo.list(alpha).data == [] and repo.stored_bytes(alpha) == 0
    assert [f.id for f in repo.expired()] == [expiring.id]
    repo.mark_expired_deleted(expiring.id)
    assert repo.expired() == []
