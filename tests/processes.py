"""Server processes started by tests: started so they die with the test process, and waited
for until they answer on ``/health``."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tokenmill.fleet.local import die_with_parent, stop_process


def start_process(command: list[str], **options: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` for a test's server: it gets SIGTERM when the test process dies,
    however it dies (a crash in a kernel, kill -9), so nothing a test started outlives it."""
    return subprocess.Popen(command, preexec_fn=die_with_parent, **options)


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
        process = start_process(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log_path, timeout_seconds)
        yield url
    finally:
        stop_process(process, grace_seconds=30)
