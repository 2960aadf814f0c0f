"""The CLI against a fresh data directory (SQLite in it), as a user would run it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenmill.cli.main import main
from tokenmill.clock import SystemClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.settings import Settings
from tokenmill.store.db import Database


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TOKENMILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TOKENMILL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("TOKENMILL_DATABASE_URL", raising=False)
    return CliRunner()


@pytest.fixture
def acme(cli: CliRunner) -> str:
    """The tenant ``acme`` (and ``other``), made with the CLI: acme's id."""
    for name in ("acme", "other"):
        assert cli.invoke(main, ["tenants", "create", name]).exit_code == 0
    db = Database.from_settings(Settings())
    try:
        tenant = TenantRepository(db, SystemClock()).get_by_name("acme")
    finally:
        db.dispose()
    assert tenant is not None
    return tenant.id
