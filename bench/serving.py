"""A whole ``tokenmill serve`` for a benchmark: its own data directory, port and models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tokenmill.fleet.local import free_port


def start_platform(
    data_dir: Path,
    models: list[str],
    *,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    startup_seconds: float = 120,
) -> tuple[subprocess.Popen[str], str, str]:
    """Starts the platform with the bundled ``models``; returns it, its URL and the admin key
    it prints. ``env``: more settings (``TOKENMILL_…``)."""
    port = free_port()
    settings = {
        **os.environ,
        "TOKENMILL_DATA_DIR": str(data_dir),
        "TOKENMILL_PORT": str(port),
        "TOKENMILL_CONFIG": str(data_dir / "none.toml"),
        "TOKENMILL_BUNDLED_MODELS": json.dumps(models),
        "TOKENMILL_LOG_LEVEL": "warning",
        **(env or {}),
    }
    settings.pop("TOKENMILL_DATABASE_URL", None)
    if database_url:
        settings["TOKENMILL_DATABASE_URL"] = database_url
    log = open(data_dir / "serve.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenmill.cli.main", "serve"],
        env=settings, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    key = ""
    for line in process.stdout:
        if "TOKENMILL_API_KEY=" in line:
            key = line.strip().split("=", 1)[1]
        if "tokenmill is serving" in line:
            break
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base, key
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the platform did not start; see {data_dir / 'serve.log'}")
