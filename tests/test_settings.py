from __future__ import annotations

from pathlib import Path

import pytest

from tokenmill.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TOKENMILL_PORT", "TOKENMILL_DATA_DIR", "TOKENMILL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENMILL_CONFIG", str(tmp_path / "tokenmill.toml"))


def test_defaults_need_no_services(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.redis_url is None
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("tokenmill.db")


def test_toml_file_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "tokenmill.toml").write_text('port = 9000\nlog_level = "debug"\n')
    assert Settings().port == 9000
    monkeypatch.setenv("TOKENMILL_PORT", "9100")
    settings = Settings()
    assert settings.port == 9100
    assert settings.log_level == "debug"


def test_data_dir_places_the_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOKENMILL_DATA_DIR", str(tmp_path / "d"))
    settings = Settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'd' / 'tokenmill.db'}"
    assert settings.ensure_data_dir().is_dir()


def test_database_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENMILL_DATABASE_URL", "postgresql://u@h/db")
    assert Settings().resolved_database_url == "postgresql://u@h/db"


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENMILL_ENGINE_THREADS", "0")
    with pytest.raises(ValueError, match="engine_threads"):
        Settings()
