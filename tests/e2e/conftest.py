"""One live ``tokenmill serve`` per test session, started as a user would start it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import openai
import pytest

from tests.conftest import postgres_schema
from tests.processes import start_process, wait_healthy
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.fleet.local import free_port, stop_process
from tokenmill.store.db import Database

START_TIMEOUT_SECONDS = 180


@dataclass
class Platform:
    base_url: str
    admin_key: str
    data_dir: Path
    env: dict[str, str]
    db: Database
    process: subprocess.Popen[str]

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=key or self.admin_key, max_retries=0, timeout=60
        )

    def http(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            timeout=60,
            headers={"authorization": f"Bearer {key or self.admin_key}"},
        )

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "tokenmill.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    def usage(self, request_id: str, timeout_seconds: float = 10.0) -> UsageEvent:
        """The usage record of a request, once the gateway's recorder has written it."""
        repo = UsageRepository(self.db)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            event = repo.get(request_id)
            if event is not None:
                return event
            time.sleep(0.05)
        raise AssertionError(f"no usage record for {request_id}")


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The platform's database: SQLite in its data directory, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_schema(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None
) -> Iterator[Platform]:
    with launch_platform(tmp_path_factory.mktemp("tokenmill-data"), database_url) as live:
        yield live


@contextmanager
def launch_platform(
    data_dir: Path, database_url: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Platform]:
    """``tokenmill serve`` as a user starts it, with its data in ``data_dir``; ``env`` adds to
    (or overrides) its environment."""
    port = free_port()
    env = {
        **os.environ,
        "TOKENMILL_DATA_DIR": str(data_dir),
        "TOKENMILL_PORT": str(port),
        "TOKENMILL_ENGINE_CONTEXT_TOKENS": "2048",
        "TOKENMILL_CONFIG": str(data_dir / "absent.toml"),
        **(env or {}),
    }
    env.pop("TOKENMILL_DATABASE_URL", None)
    if database_url is not None:
        env["TOKENMILL_DATABASE_URL"] = database_url
    log = open(data_dir / "serve.log", "w")  # noqa: SIM115
    process = start_process(
        [sys.executable, "-m", "tokenmill.cli.main", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdout is not None
    key = _read_banner(process)
    threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
    base_url = f"http://127.0.0.1:{port}"
    wait_healthy(base_url, process, data_dir / "serve.log")
    db = Database(database_url or f"sqlite:///{data_dir / 'tokenmill.db'}")
    try:
        yield Platform(base_url, key, data_dir, env, db, process)
    finally:
        stop_process(process, grace_seconds=30)
        db.dispose()
        log.close()


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def _read_banner(process: subprocess.Popen[str]) -> str:
    key = None
    lines: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "TOKENMILL_API_KEY=" in line:
            key = line.strip().split("=", 1)[1]
        if "tokenmill is serving" in line or time.monotonic() > deadline:
            break
    if key is None:
        raise AssertionError("tokenmill serve printed no admin key:\n" + "".join(lines))
    return key
