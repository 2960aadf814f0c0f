"""Server processes started by tests: waiting until they answer on ``/health``."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tokenmill.fleet.local import stop_process


def wait_healthy(
    url: str, process: subprocess.Popen[Any], log_path: Path, timeout_seconds: float = 30
) -> None:
    """Returns once ``url``/health answers 200; fails with the process's log otherwise."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{url} did not become healthy:\n{log_path.read_text()}")


@contextmanager
def serving(command: list[str], port: int, log_path: Path, timeout_seconds: float) -> Iterator[str]:
    """Run a server on 127.0.0.1:``port`` while the block runs; yields its URL once healthy."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log_path, timeout_seconds)
        yield url
    finally:
        stop_process(process, grace_seconds=30)
