"""A deployment whose engine crashes says so at once, and heals by itself once the host is fixed.

The engine is a stand-in for llama-server (tests/fleet/engines/standin.py) found on ``PATH``,
as the platform would find the real one; it kills itself with SIGSEGV on its first request
while a marker file exists, the way llama.cpp dies in a kernel on an AMX CPU.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.conftest import Platform, launch_platform
from tests.fleet.engines import standin

MODEL = "smollm2-135m-instruct"
HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def crash_marker(tmp_path: Path) -> Path:
    marker = tmp_path / "crash"
    marker.touch()
    return marker


@pytest.fixture
def platform_with_crashing_engine(tmp_path: Path, crash_marker: Path) -> Iterator[Platform]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    engine = bin_dir / "llama-server"
    launcher = [*standin.launcher("llama-server"), "--crash-if-exists", str(crash_marker)]
    engine.write_text(f'#!/bin/sh\nexec {shlex.join(launcher)} "$@"\n')
    engine.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "TOKENMILL_BUNDLED_MIN_REPLICAS": "0",
        "TOKENMILL_FLEET_BACKOFF_SECONDS": "[0.2, 0.5]",
        "TOKENMILL_FLEET_FAILING_BACKOFF_SECONDS": "[2]",
    }
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with launch_platform(data_dir, env=env) as live:
        yield live


def _until(condition: Callable[[], Any], timeout_seconds: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")


def test_a_crashing_engine_fails_its_deployment_at_once_and_it_recovers_when_fixed(
    platform_with_crashing_engine: Platform, crash_marker: Path
) -> None:
    live = platform_with_crashing_engine
    with live.http() as http:
        for deployment in http.get("/admin/v1/deployments").json()["data"]:
            if deployment["model"] == MODEL:
                http.post(f"/admin/v1/deployments/{deployment['id']}/stop").raise_for_status()
        created = http.post(
            "/admin/v1/deployments",
            json={"model": MODEL, "engine": "llama-server", "min_replicas": 1, "max_replicas": 1},
        )
        created.raise_for_status()
        deployment_id = created.json()["id"]

        def failing() -> dict[str, Any] | None:
            found = http.get(f"/admin/v1/deployments/{deployment_id}").json()
            return found if found["health"] == "failing" else None

        started = time.monotonic()
        found = _until(failing, 30, "the deployment to turn failing")
        assert time.monotonic() - started < 15
        assert "signal 11 (SIGSEGV)" in found["health_reason"]
        assert "while starting" in found["health_reason"]
        listed = live.cli("deployments")
        row = next(line for line in listed.splitlines() if deployment_id in line)
        assert "failing" in row and "signal 11" in row

        client = live.client()
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4)
        # Refused at once as failing (a request queued for a replica would time out instead,
        # with another code): the code says so, whatever the machine's load.
        assert refused.value.status_code == 503
        assert refused.value.code == "deployment_failing"
        assert "signal 11" in refused.value.message
        assert int(refused.value.response.headers["retry-after"]) >= 1

        crash_marker.unlink()  # the host is fixed; nobody restarts the platform

        def answered() -> Any:
            try:
                return client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4)
            except openai.APIStatusError as error:
                assert error.code == "deployment_failing", error
                return None

        answer = _until(answered, 30, "the deployment to serve again")
        assert answer.choices[0].message.content
        healed = http.get(f"/admin/v1/deployments/{deployment_id}").json()
        assert healed["health"] == "ok" and healed["health_reason"] is None
        assert "failing" not in next(
            line for line in live.cli("deployments").splitlines() if deployment_id in line
        )
