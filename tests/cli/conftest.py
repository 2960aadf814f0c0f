"""The CLI against a fresh data directory (SQLite in it), as a user would run it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TOKENMILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TOKENMILL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("TOKENMILL_DATABASE_URL", raising=False)
    return CliRunner()
