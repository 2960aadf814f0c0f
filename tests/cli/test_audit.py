"""``tokenmill audit`` against a fresh data directory: the entries the admin API appended
(here appended directly, through the same log), listed newest first and filtered, and the chain
verified, with a non-zero exit once a row was changed behind the log's back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from tokenmill.cli.main import main
from tokenmill.clock import ManualClock
from tokenmill.control.audit import Action, AuditLog
from tokenmill.control.tenants import TenantRepository
from tokenmill.settings import Settings
from tokenmill.store.audit_tables import AuditEntry
from tokenmill.store.db import Database

SECRET = "tm-c2VjcmV0LWZvci10aGUtY2xpLXRlc3Q"
NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(cli: CliRunner) -> Iterator[Database]:
    """The data directory's database, as the CLI opens it."""
    made = Database.from_settings(Settings())
    made.migrate()
    try:
        yield made
    finally:
        made.dispose()


@pytest.fixture
def logged(db: Database, acme: str) -> str:
    """Three entries an hour apart: acme's rpm_limit set by the platform, a key made in acme
    by acme's admin (its secret in the answer), and a refused change to ``other``: its id."""
    other = TenantRepository(db, ManualClock()).get_by_name("other")
    assert other is not None
    clock = ManualClock(wall=NOON)
    log = AuditLog(db, clock)
    root = partial(Action, "key_root", "platform_admin", None)  # the platform admin's key
    made = [
        root(tenant_id=acme, method="PATCH", path=f"/admin/v1/tenants/{acme}", status=200,
             address="10.0.0.7", request={"rpm_limit": 60}),
        Action(actor_key_id="key_acme", actor_role="tenant_admin", actor_tenant_id=acme,
               tenant_id=acme, method="POST", path=f"/admin/v1/tenants/{acme}/keys", status=200,
               address="10.0.0.8", request={"name": "ci"},
               after={"id": "key_ci", "secret": SECRET}),
        root(tenant_id=other.id, method="PATCH", path=f"/admin/v1/tenants/{other.id}",
             status=403, address=None),
    ]  # fmt: skip
    for action in made:
        log.append(action)
        clock.advance(3600)
    return other.id


def test_list_shows_the_newest_first(cli: CliRunner, acme: str, logged: str) -> None:
    listed = cli.invoke(main, ["audit", "list"])
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert [h.lower() for h in header.split()] == [
        "seq", "time", "actor", "role", "tenant", "action", "status", "from",
    ]  # fmt: skip
    assert [row.split() for row in rows] == [
        ["3", "2026-03-01", "14:00:00", "key_root", "platform_admin", logged, "PATCH",
         f"/admin/v1/tenants/{logged}", "403", "-"],
        ["2", "2026-03-01", "13:00:00", "key_acme", "tenant_admin", acme, "POST",
         f"/admin/v1/tenants/{acme}/keys", "200", "10.0.0.8"],
        ["1", "2026-03-01", "12:00:00", "key_root", "platform_admin", acme, "PATCH",
         f"/admin/v1/tenants/{acme}", "200", "10.0.0.7"],
    ]  # fmt: skip
    assert SECRET not in listed.output

    mine = cli.invoke(main, ["audit", "list", "--tenant", "acme"])
    assert [row.split()[0] for row in mine.output.splitlines()[1:]] == ["2", "1"]
    newest = cli.invoke(main, ["audit", "list", "--limit", "1"])
    assert [row.split()[0] for row in newest.output.splitlines()[1:]] == ["3"]
    later = cli.invoke(main, ["audit", "list", "--since", "2026-03-01T12:30:00"])
    assert [row.split()[0] for row in later.output.splitlines()[1:]] == ["3", "2"]


def test_list_as_json(cli: CliRunner, acme: str, logged: str) -> None:
    shown = cli.invoke(main, ["audit", "list", "--json", "--tenant", "acme", "--limit", "1"])
    assert shown.exit_code == 0, shown.output
    (entry,) = orjson.loads(shown.output)
    assert entry["object"] == "audit.entry" and entry["seq"] == 2
    assert entry["created_at"] == "2026-03-01T13:00:00+00:00"
    assert entry["after"] == {"id": "key_ci", "secret": "[redacted]"}
    assert len(entry["hash"]) == len(entry["prev_hash"]) == 64
    assert SECRET not in shown.output


def test_an_empty_log_lists_nothing_and_is_intact(cli: CliRunner) -> None:
    listed = cli.invoke(main, ["audit", "list"])
    assert listed.exit_code == 0 and listed.output.splitlines()[1:] == []
    verified = cli.invoke(main, ["audit", "verify"])
    assert verified.exit_code == 0 and verified.output.strip() == "intact: 0 entries"


def test_verify_finds_a_changed_row(cli: CliRunner, db: Database, acme: str, logged: str) -> None:
    verified = cli.invoke(main, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert verified.output.strip() == "intact: 3 entries"
    with db.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(status=201))
    broken = cli.invoke(main, ["audit", "verify"])
    assert broken.exit_code == 1
    assert broken.output.strip() == "Error: broken at entry 2 (after 1 intact entries)"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--tenant", "ghost"], 1, "No tenant named 'ghost'."),
        (["--limit", "0"], 2, "Invalid value for '--limit'"),
        (["--since", "yesterday"], 2, "Invalid value for '--since'"),
    ],
)
def test_a_bad_option_is_one_clear_error(
    cli: CliRunner, acme: str, args: list[str], code: int, message: str
) -> None:
    refused = cli.invoke(main, ["audit", "list", *args])
    assert refused.exit_code == code and message in refused.output, refused.output
    assert "Traceback" not in refused.output
