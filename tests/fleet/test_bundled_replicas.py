"""Every bundled model, launched as the fleet launches a replica, answers the fleet's warm-up
request on the machine the tests run on (on AMX CPUs, llama.cpp's extra buffers crash here).

Each replica is its own process, so a crash in a kernel fails only its own test, with the
signal and the end of the replica's log in the message.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.processes import start_process, wait_healthy
from tokenmill.catalog.bundled import BUNDLED, BundledModel
from tokenmill.fleet.engines import adapter_for
from tokenmill.fleet.engines.base import LaunchSettings
from tokenmill.fleet.local import describe_exit, free_port, stop_process, tail_lines
from tokenmill.fleet.warmup import warm_up

pytestmark = pytest.mark.model
STARTUP_SECONDS = 180


@pytest.mark.parametrize(
    "bundled", sorted(BUNDLED.values(), key=lambda m: m.id), ids=lambda m: m.id
)
def test_the_bundled_model_answers_as_a_replica(bundled: BundledModel, tmp_path: Path) -> None:
    adapter = adapter_for(bundled.engine)
    settings = LaunchSettings(
        model_path=bundled.path(),
        served_name=bundled.id,
        port=free_port(),
        context_tokens=min(512, bundled.context_tokens),
        max_running=2,
        threads=2,
        extra_buffers="auto",
    )
    log_path = tmp_path / "replica.log"
    with log_path.open("wb") as log:
        process = start_process(
            adapter.command(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **adapter.env(settings)},
        )
    url = f"http://127.0.0.1:{settings.port}"
    try:
        wait_healthy(url, process, log_path, STARTUP_SECONDS)
        try:
            measured = warm_up(url, bundled.id, bundled.task)
        except OSError as error:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)  # a replica that crashed mid-answer ends at once
            raise AssertionError(
                f"{bundled.id}: the warm-up request failed ({error}); the replica "
                f"{describe_exit(process.poll())}:\n{tail_lines(log_path, 30)}"
            ) from error
        assert measured, f"{bundled.id} answered its warm-up request with no output"
        assert process.poll() is None
    finally:
        stop_process(process, grace_seconds=10)
    if bundled.engine == "tokenmill":
        assert "extra buffers" in log_path.read_text()  # the replica says which it chose
