"""Usage per App: events carry the App a response ran for, reports group by it (``none``:
not through an App), and a request lost in a crash keeps its App through the journal."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from tests.billing.test_journal import Collect, Running, journal
from tests.billing.test_usage import T0, usage_event
from tokenmill.billing.journal import LOST_CODE, replay
from tokenmill.billing.statements import Reports, UsageRow
from tokenmill.billing.usage import UsageRepository
from tokenmill.store.db import Database

APP = "app_" + "a" * 24


def test_an_app_id_round_trips(database: Database) -> None:
    usage = UsageRepository(database)
    event = usage_event("req-1", app_id=APP)
    usage.insert_many([event, usage_event("req-2")])
    assert usage.get("req-1") == event
    stored = usage.get("req-2")
    assert stored is not None and stored.app_id is None


def test_an_app_id_longer_than_its_column_is_refused() -> None:
    with pytest.raises(ValueError):
        usage_event(app_id="a" * 41)


def test_usage_grouped_by_app(database: Database) -> None:
    UsageRepository(database).insert_many(
        [
            usage_event("r1", app_id=APP, prompt_tokens=10, completion_tokens=1, cost_micros=5),
            usage_event("r2", app_id=APP, prompt_tokens=20, completion_tokens=2, cost_micros=7),
            usage_event("r3", app_id="app_b", prompt_tokens=1, completion_tokens=3),
            usage_event("r4", prompt_tokens=2, completion_tokens=4, cost_micros=1),
            usage_event("r5", prompt_tokens=3, completion_tokens=5),
            usage_event("r6", app_id=APP, tenant_id="ten_2"),  # another tenant's
            usage_event("r7", app_id=APP, created_at=T0 + timedelta(days=2)),  # out of range
        ]
    )
    rows = Reports(database).usage("ten_1", "app", until=T0 + timedelta(days=1))
    assert rows == [
        UsageRow(APP, 2, 30, 8, 3, 12),
        UsageRow("app_b", 1, 1, 4, 3, 0),
        UsageRow("none", 2, 5, 8, 9, 1),
    ]


def test_usage_without_apps_is_all_none(database: Database) -> None:
    UsageRepository(database).insert_many([usage_event("r1"), usage_event("r2")])
    assert [(r.group, r.requests) for r in Reports(database).usage("ten_1", "app")] == [("none", 2)]


def test_the_app_id_survives_the_journals_replay(tmp_path: Path) -> None:
    sink = Collect()
    log = journal(tmp_path, sink, progress_interval_seconds=0.01)
    lost, plain = Running("req-lost", app_id=APP), Running("req-plain")
    log.begin(lost)
    log.begin(plain)
    lost.content_events = 4
    log.record(usage_event("req-done", app_id="app_b")).result(timeout=10)
    pause = threading.Event()
    for _ in range(1000):  # the writer journals progress on its own, within an interval
        if b'"completion_tokens":4' in b"".join(p.read_bytes() for p in tmp_path.glob("seg*")):
            break
        pause.wait(0.01)
    log.close()  # like a crash: neither began request ended
    events = {e.request_id: e for e in replay(tmp_path, lambda e: 0)}
    assert set(events) == {"req-lost", "req-plain", "req-done"}
    assert (events["req-lost"].error_code, events["req-lost"].app_id) == (LOST_CODE, APP)
    assert events["req-lost"].completion_tokens == 4
    assert events["req-plain"].app_id is None
    assert events["req-done"].app_id == "app_b"  # a finished event keeps its own


def test_a_statement_breaks_out_the_usage_through_apps(database: Database) -> None:
    UsageRepository(database).insert_many(
        [
            usage_event("r1", app_id=APP, completion_tokens=1),
            usage_event("r2", app_id=APP, completion_tokens=2),
            usage_event("r3", completion_tokens=4),  # not through an App: not listed
            usage_event("r4", app_id="app_b", created_at=T0 + timedelta(days=31)),  # February
        ]
    )
    statement = Reports(database).statement("ten_1", "2026-01")
    assert [(r.group, r.requests, r.completion_tokens) for r in statement.apps] == [(APP, 2, 3)]
    assert [line["group"] for line in statement.as_json()["apps"]] == [APP]
    assert sum(line.requests for line in statement.lines) == 3  # the lines still hold all
